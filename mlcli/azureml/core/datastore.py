"""`azureml.core.datastore`: needs Azure itself; the names import, and raise on use."""

from mlcli.azureml._unavailable import Datastore

__all__ = ["Datastore"]
