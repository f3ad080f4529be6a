"""Tags and properties of models and services: Azure's rules for changing and filtering them,
written once for both."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from mlcli.errors import ConflictError


def changed_labels(
    tags: Mapping[str, str],
    properties: Mapping[str, str],
    *,
    add_tags: Mapping[str, str] | None,
    remove_tags: Iterable[str],
    add_properties: Mapping[str, str] | None,
    owner: str,
    fix: str,
    on_warning: Callable[[str], None] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(tags, properties) after an update, in Azure's order: tags added, then removed (a tag
    to remove that is not there is only reported, as Azure's SDK prints it); properties only
    added, never changed. `owner` names the model or service in messages."""
    new_tags = {**tags, **(add_tags or {})}
    for key in remove_tags:
        if new_tags.pop(key, None) is None and on_warning is not None:
            on_warning(f"--remove-tag: {owner} has no tag {key!r}.")
    new_properties = dict(properties)
    for key, value in (add_properties or {}).items():
        if key in new_properties and new_properties[key] != value:
            raise ConflictError(
                f"{owner} already has property {key}={new_properties[key]!r}; properties "
                "cannot be changed once set (Azure's rule).",
                where="--add-property",
                fix=fix,
            )
        new_properties[key] = value
    return new_tags, new_properties


def matches(values: Mapping[str, str], wanted: Mapping[str, str | None]) -> bool:
    """Every wanted key is there, with the wanted value (None: any value)."""
    return all(k in values and (v is None or values[k] == v) for k, v in wanted.items())
