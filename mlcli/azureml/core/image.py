"""`azureml.core.image`: needs Azure itself; the names import, and raise on use."""

from mlcli.azureml._unavailable import Image

__all__ = ["Image"]
