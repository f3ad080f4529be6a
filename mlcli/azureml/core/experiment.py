"""`azureml.core.experiment`: needs Azure itself; the names import, and raise on use."""

from mlcli.azureml._unavailable import Experiment

__all__ = ["Experiment"]
