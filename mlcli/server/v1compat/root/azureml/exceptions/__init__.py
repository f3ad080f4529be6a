"""The azureml exceptions that Model.get_model_path raises."""

from mlcli.server.v1compat.model import (
    AzureMLException,
    ModelNotFoundException,
    WebserviceException,
)

__all__ = ["AzureMLException", "ModelNotFoundException", "WebserviceException"]
