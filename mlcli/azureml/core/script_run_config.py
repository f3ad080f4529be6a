"""`azureml.core.script_run_config`: needs Azure itself; the names import, and raise on use."""

from mlcli.azureml._unavailable import ScriptRunConfig

__all__ = ["ScriptRunConfig"]
