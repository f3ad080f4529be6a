"""Opt-in: unchanged `import azureml.core` lines resolve to mlcli.azureml, when the real v1
SDK is not installed.

    python -m mlcli.azureml pipeline.py [args]     # a script, unchanged
    %load_ext mlcli.azureml.alias                  # a notebook's first cell
    import mlcli.azureml.alias                     # or this line, first

A finder at the front of sys.meta_path answers for `azureml` and `azureml.*` with the module
of the same name under `mlcli.azureml` (one module object, two names), so `isinstance` and
`except WebserviceException` work whichever name a line used. It stands aside when another
finder can import the real `azureml.core`: the real SDK always wins.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType
from typing import Any

PREFIX = "azureml"
TARGET = "mlcli.azureml"


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The module ran when mlcli.azureml imported it."""


class AzuremlAlias(importlib.abc.MetaPathFinder):
    """Finds `azureml[.x.y]` as `mlcli.azureml[.x.y]`."""

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != PREFIX and not fullname.startswith(PREFIX + "."):
            return None
        name = TARGET + fullname[len(PREFIX) :]
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: mlcli stands in for the v1 SDK's azureml.core "
                "and azureml.exceptions only (install the real SDK for the rest).",
                name=fullname,
            )
        return importlib.util.spec_from_loader(fullname, _AliasLoader(name))


def real_sdk_installed() -> bool:
    """Whether a finder other than ours can import azureml.core."""
    if any(isinstance(f, AzuremlAlias) for f in sys.meta_path):
        return False
    try:
        return importlib.util.find_spec("azureml.core") is not None
    except ModuleNotFoundError:
        return False


def install() -> bool:
    """Put the alias in place (once); False when the real SDK is installed and wins."""
    if any(isinstance(f, AzuremlAlias) for f in sys.meta_path):
        return True
    if real_sdk_installed():
        return False
    sys.meta_path.insert(0, AzuremlAlias())
    return True


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext mlcli.azureml.alias` in a notebook."""
    install()


install()
