"""What every class of the SDK face shares: turning the core's errors into v1's exception
types, warnings for arguments mlcli cannot honour, the errors for Azure-only APIs, and the
lines v1 prints when asked to show output."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from mlcli.azureml.exceptions import AzureMLException, NotAvailableHereException
from mlcli.errors import MlcliError


class MlcliSdkWarning(UserWarning):
    """A v1 argument mlcli accepts but cannot honour here (the CLI prints the same notes)."""


@contextlib.contextmanager
def raising_as(kind: type[AzureMLException]) -> Iterator[None]:
    """Re-raise the core's MlcliError as the v1 exception a caller of this API catches."""
    try:
        yield
    except MlcliError as err:
        raise kind(str(err), inner_exception=err) from err


def warn(message: str) -> None:
    """One note the user should see, pointing at the caller's line (not at mlcli's)."""
    warnings.warn(message, MlcliSdkWarning, stacklevel=_caller_level())


def warn_ignored(where: str, **arguments: Any) -> None:
    """Warn once per argument that was given (not None, not False) and does nothing here."""
    for name, (value, reason) in arguments.items():
        if value not in (None, False):
            warn(f"{where}: {name} {reason}")


def not_available(what: str, instead: str) -> NoReturn:
    """The one error for an API that needs Azure: what it was and what to use here."""
    raise NotAvailableHereException(
        f"{what} needs Azure Machine Learning itself; mlcli runs the deploy workflow on this "
        f"machine without it. {instead}"
    )


def azure_only_method(what: str, instead: str) -> Callable[..., NoReturn]:
    """A method (or static method) that raises NotAvailableHereException when called."""

    def method(*_args: Any, **_kwargs: Any) -> NoReturn:
        not_available(what, instead)

    method.__doc__ = f"Not available in mlcli: {instead}"
    return method


def azure_only_property(what: str, instead: str) -> property:
    """An attribute that raises NotAvailableHereException when read (never AttributeError)."""

    def getter(_self: Any) -> NoReturn:
        not_available(what, instead)

    return property(getter, doc=f"Not available in mlcli: {instead}")


def say(line: str) -> None:
    """A line v1 prints (show_output=True, registering): the SDK's own output, on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _caller_level() -> int:
    """The stack level of the first frame outside mlcli.azureml, for warnings.warn."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("mlcli.azureml"):
        frame = frame.f_back
        level += 1
    return level
