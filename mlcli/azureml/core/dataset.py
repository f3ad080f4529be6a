"""`azureml.core.dataset`: needs Azure itself; the names import, and raise on use."""

from mlcli.azureml._unavailable import Dataset

__all__ = ["Dataset"]
