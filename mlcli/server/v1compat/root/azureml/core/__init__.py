"""azureml.core as a scoring container needs it: Model.get_model_path."""

from mlcli.server.v1compat.model import Model

__all__ = ["Model"]
