"""azureml.monitoring.modeldatacollector.ModelDataCollector (the module path Azure's docs use)."""

from mlcli.server.v1compat.datacollector import ModelDataCollector

__all__ = ["ModelDataCollector"]
