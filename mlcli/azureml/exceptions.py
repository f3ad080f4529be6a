"""`azureml.exceptions`: the v1 SDK's exception classes, with `.message` as v1 has it.

mlcli's core raises MlcliError (a problem, where it is and the fix); the SDK's classes carry
that one paragraph as their message, and the MlcliError as their `__cause__` and
`inner_exception`.
"""

from __future__ import annotations

from typing import Any


class AzureMLException(Exception):
    """The base of every SDK exception (v1: azureml._common.exceptions.AzureMLException)."""

    def __init__(
        self,
        exception_message: str,
        inner_exception: BaseException | None = None,
        target: str | None = None,
        details: Any = None,
        message_format: str | None = None,
        message_parameters: dict[str, Any] | None = None,
        reference_code: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(exception_message)
        self._message = exception_message
        self._inner_exception = inner_exception
        self._target = target
        self._details = details

    @property
    def message(self) -> str:
        return self._message

    @property
    def inner_exception(self) -> BaseException | None:
        return self._inner_exception

    def __str__(self) -> str:
        return self._message


class UserErrorException(AzureMLException):
    """The caller passed something wrong."""


class AuthenticationException(UserErrorException):
    """Credentials were refused (mlcli has none: services use keys)."""


class WebserviceException(AzureMLException):
    """Deploying, calling or changing a web service (and, in v1, a model) failed."""

    def __init__(
        self,
        exception_message: str,
        status_code: int | None = None,
        logger: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(exception_message, **kwargs)
        self.status_code = status_code


class ModelNotFoundException(AzureMLException):
    """No registered model matches."""

    def __init__(self, exception_message: str, logger: Any = None, **kwargs: Any) -> None:
        super().__init__(exception_message, **kwargs)


class ModelPathNotFoundException(AzureMLException):
    """Model.get_model_path found no such model on this machine."""

    def __init__(self, exception_message: str, logger: Any = None, **kwargs: Any) -> None:
        super().__init__(exception_message, **kwargs)


class WorkspaceException(AzureMLException):
    """A workspace could not be found or used."""

    def __init__(self, exception_message: str, found_multiple: bool = False, **kwargs: Any):
        super().__init__(exception_message, **kwargs)
        self.found_multiple = found_multiple


class ComputeTargetException(AzureMLException):
    """Compute targets (AmlCompute, AksCompute, ...): Azure resources mlcli does not have."""


class ExperimentExecutionException(AzureMLException):
    """Experiments and runs: Azure ML's training service, not part of mlcli."""


class ProjectSystemException(AzureMLException):
    """A workspace config file could not be read or written."""


class RunConfigurationException(AzureMLException):
    """Run configurations belong to training, which mlcli does not do."""


class SnapshotException(AzureMLException):
    """Snapshots belong to training runs, which mlcli does not do."""


class TrainingException(AzureMLException):
    """Training belongs to Azure ML's training service, not to mlcli."""


class ActivityFailedException(AzureMLException):
    """A long-running activity failed."""


class NotAvailableHereException(UserErrorException):
    """mlcli: a v1 API that needs Azure itself; the message names what to use instead."""


__all__ = [
    "ActivityFailedException",
    "AuthenticationException",
    "AzureMLException",
    "ComputeTargetException",
    "ExperimentExecutionException",
    "ModelNotFoundException",
    "ModelPathNotFoundException",
    "NotAvailableHereException",
    "ProjectSystemException",
    "RunConfigurationException",
    "SnapshotException",
    "TrainingException",
    "UserErrorException",
    "WebserviceException",
    "WorkspaceException",
]
