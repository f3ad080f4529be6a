"""azureml.monitoring as a scoring container needs it: ModelDataCollector."""

from mlcli.server.v1compat.datacollector import ModelDataCollector

__all__ = ["ModelDataCollector"]
