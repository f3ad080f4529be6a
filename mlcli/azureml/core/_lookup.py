"""Finding models for the SDK face: the workspace's registry opened for one call, and v1's
tag and property filters (["key", ["key2", "value"]]) in the registry's terms."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mlcli.azureml._support import raising_as
from mlcli.azureml.exceptions import (
    ModelNotFoundException,
    UserErrorException,
    WebserviceException,
)

if TYPE_CHECKING:
    from mlcli.azureml.core.workspace import Workspace
    from mlcli.models import ModelVersion
    from mlcli.registry import Registry


def find_version(
    workspace: Workspace,
    name: str | None,
    version: int | None,
    tags: list[Any] | None,
    properties: list[Any] | None,
    framework: str | None,
) -> ModelVersion:
    assert name is not None
    with opened_registry(workspace) as registry:
        if version is not None:
            with raising_as(ModelNotFoundException):
                return registry.get(name, version)
        with raising_as(WebserviceException):
            matches = registry.list(
                name, tags=v1_filters(tags, "tags"), properties=v1_filters(properties, "properties")
            )
    matches = [m for m in matches if framework is None or m.framework == framework]
    if not matches:
        raise ModelNotFoundException(
            f"ModelNotFound: Model with name {name} not found in provided workspace"
            + (" with these tags/properties" if tags or properties or framework else "")
            + ". See the registered names with Model.list(ws) or `ml model list`."
        )
    return matches[0]


def v1_filters(values: Iterable[Any] | Mapping[str, Any] | None, what: str) -> dict:
    """v1's tag/property filters (["key", ["key2", "value"]]) as {key: value or None}."""
    if values is None:
        return {}
    if isinstance(values, Mapping):
        return {str(k): None if v is None else str(v) for k, v in values.items()}
    if isinstance(values, str):
        values = [values]
    wanted: dict[str, str | None] = {}
    for item in values:
        if isinstance(item, str):
            wanted[item] = None
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            wanted[str(item[0])] = str(item[1])
        else:
            raise UserErrorException(
                f"{what}: {item!r} is neither 'key' nor ['key', 'value'] "
                "(v1's form: ['key', ['key2', 'value']])."
            )
    return wanted


@contextlib.contextmanager
def opened_registry(workspace: Workspace) -> Iterator[Registry]:
    """The workspace's registry, opened for one call and closed after it."""
    from mlcli.registry import Registry

    with raising_as(UserErrorException):
        registry = Registry.open(workspace._folder)
    try:
        yield registry
    finally:
        registry.close()
