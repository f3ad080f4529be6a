"""azureml.core.model.Model, resolved against the container's azureml-models folder."""

from mlcli.server.v1compat.model import Model

__all__ = ["Model"]
