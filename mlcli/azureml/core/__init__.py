"""`azureml.core`: Workspace, Model, Environment, Webservice over mlcli's core; the names that
need Azure (Experiment, Dataset, ComputeTarget, ...) import, and raise on use."""

from mlcli import __version__
from mlcli.azureml._unavailable import (
    ComputeTarget,
    Dataset,
    Datastore,
    Experiment,
    Image,
    Keyvault,
    LinkedService,
    PrivateEndPointConfig,
    Run,
    RunConfiguration,
    ScriptRun,
    ScriptRunConfig,
    get_run,
)
from mlcli.azureml.core.environment import ContainerRegistry, Environment
from mlcli.azureml.core.model import Model
from mlcli.azureml.core.webservice import Webservice
from mlcli.azureml.core.workspace import Workspace

VERSION = __version__

__all__ = [
    "VERSION",
    "ComputeTarget",
    "ContainerRegistry",
    "Dataset",
    "Datastore",
    "Environment",
    "Experiment",
    "Image",
    "Keyvault",
    "LinkedService",
    "Model",
    "PrivateEndPointConfig",
    "Run",
    "RunConfiguration",
    "ScriptRun",
    "ScriptRunConfig",
    "Webservice",
    "Workspace",
    "get_run",
]
