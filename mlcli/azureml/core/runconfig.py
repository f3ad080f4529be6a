"""`azureml.core.runconfig`: needs Azure itself; the names import, and raise on use."""

from mlcli.azureml._unavailable import RunConfiguration

__all__ = ["RunConfiguration"]
