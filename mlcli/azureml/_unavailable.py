"""Classes of the v1 SDK that need Azure itself (experiments, datasets, compute targets...):
importable, so a notebook's import lines work, and raising one NotAvailableHereException that
names what to use here as soon as they are used, never an AttributeError."""

from __future__ import annotations

from typing import Any, NoReturn

from mlcli.azureml._support import not_available


class _AzureOnlyMeta(type):
    """Any class attribute (Dataset.Tabular, ComputeTarget.create...) raises the same error."""

    def __getattr__(cls, name: str) -> NoReturn:
        if name.startswith("__"):
            raise AttributeError(name)
        not_available(f"{cls.__name__}.{name}", cls._instead)


class AzureOnly(metaclass=_AzureOnlyMeta):
    """Base of the placeholders; `_instead` says what to use."""

    _instead = ""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        not_available(type(self).__name__, self._instead)


def azure_only_class(name: str, instead: str) -> type[AzureOnly]:
    return _AzureOnlyMeta(name, (AzureOnly,), {"_instead": instead, "__doc__": instead})


_TRAIN = "Train anywhere (a script, a notebook), then register the result: Model.register(...)."
_DATA = "Read local files with pandas or pyarrow."
_COMPUTE = (
    "Services run on this machine: LocalWebservice/AciWebservice.deploy_configuration(), or "
    "AksWebservice.deploy_configuration() for the cluster of your kubeconfig."
)

Experiment = azure_only_class("Experiment", _TRAIN)
Run = azure_only_class("Run", _TRAIN)
ScriptRun = azure_only_class("ScriptRun", _TRAIN)
ScriptRunConfig = azure_only_class("ScriptRunConfig", _TRAIN)
RunConfiguration = azure_only_class("RunConfiguration", _TRAIN)
Dataset = azure_only_class("Dataset", _DATA)
TabularDataset = azure_only_class("TabularDataset", _DATA)
FileDataset = azure_only_class("FileDataset", _DATA)
Datastore = azure_only_class("Datastore", _DATA)
ComputeTarget = azure_only_class("ComputeTarget", _COMPUTE)
AksCompute = azure_only_class("AksCompute", _COMPUTE)
AmlCompute = azure_only_class("AmlCompute", _COMPUTE)
ComputeInstance = azure_only_class("ComputeInstance", _COMPUTE)
Image = azure_only_class("Image", "Use Model.package(...) or `ml model package` for images.")
Keyvault = azure_only_class("Keyvault", "Use environment variables or a local secrets file.")
LinkedService = azure_only_class("LinkedService", "There are no linked services here.")
PrivateEndPointConfig = azure_only_class(
    "PrivateEndPointConfig", "Services listen on 127.0.0.1 only."
)


def get_run(*_args: Any, **_kwargs: Any) -> NoReturn:
    not_available("get_run", _TRAIN)
