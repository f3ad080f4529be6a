"""`azureml.core.run`: needs Azure itself; the names import, and raise on use."""

from mlcli.azureml._unavailable import Run, ScriptRun, get_run

__all__ = ["Run", "ScriptRun", "get_run"]
