"""What a deploy or update is asked to run, checked and resolved before anything is written.

Models are resolved in the registry, the entry script and source directory are checked
against the inference config, and an update that keeps its script, folder or environment
reads them back from the serving revision. Every mistake here is a ConfigError or
NotFoundError raised while the service is still untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.app_root import check_entry_script
from mlcli.errors import ConfigError, ConflictError, NotFoundError
from mlcli.services import ServiceRecord, Services

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig, InferenceConfig
    from mlcli.environments import EnvironmentSpec
    from mlcli.registry import ModelRef, ModelVersion, Registry


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """What `ml model deploy` asks for, parsed."""

    name: str
    models: tuple[ModelRef, ...]
    inference: InferenceConfig | None
    deployment: DeploymentConfig
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    overwrite: bool = False
    wait: bool = True


@dataclass(frozen=True, slots=True)
class App:
    """What goes into the app root besides the models: the script, its folder, its env."""

    entry_script: Path  # absolute, on this machine
    source_directory: Path | None
    environment: EnvironmentSpec
    variables: Mapping[str, str]  # inferenceConfig environment.environmentVariables
    inference: InferenceConfig | None


def resolve_models(registry: Registry, refs: Iterable[ModelRef]) -> list[ModelVersion]:
    refs = list(refs)
    if not refs:
        raise ConfigError(
            "no model to deploy.",
            where="-m/--model",
            fix="Name at least one registered model: -m NAME:N (repeat -m for several), "
            "or -f FILE written by `ml model register -t FILE`.",
        )
    resolved: dict[str, ModelVersion] = {}
    for ref in refs:
        model = registry.resolve(ref)
        resolved.setdefault(model.id, model)
    return list(resolved.values())


def model_from_id(registry: Registry, model_id: str) -> ModelVersion:
    name, _, version = model_id.rpartition(":")
    try:
        return registry.get(name, int(version))
    except NotFoundError as exc:
        raise NotFoundError(
            f"model {model_id}, which the service runs, is no longer registered.",
            where="ml service update",
            fix="Name the models to deploy with -m NAME:N.",
        ) from exc


def app_from_inference(ic: InferenceConfig | None, models: Sequence[ModelVersion] = ()) -> App:
    """The app an inference config describes; with none, a no-code app for a model registered
    with a no-code framework (deploy/no_code.py)."""
    from mlcli.deploy.no_code import NAMES, framework_of, no_code_app
    from mlcli.environments import spec_for

    if (ic is None or ic.entry_script is None) and framework_of(models):
        script, environment = no_code_app(models[0])
        return App(script, None, environment, variables={}, inference=None)
    if ic is None or ic.entry_script is None:
        raise ConfigError(
            "no entry script: a model registered with --model-framework "
            f"{NAMES} deploys without one (no-code deployment, as in Azure ML v1); any other "
            "deploy needs a score.py.",
            where="--ic/--inference-config-file",
            fix="Pass --ic inferenceConfig.json (with entryScript), or --es score.py.",
        )
    entry, source = check_entry_script(ic)
    variables = (ic.environment or {}).get("environmentVariables") or {}
    return App(
        entry_script=entry,
        source_directory=source,
        environment=spec_for(ic),
        variables={str(k): str(v) for k, v in variables.items()},
        inference=ic,
    )


def app_from_record(services: Services, record: ServiceRecord) -> App:
    """The serving revision's script, folder and environment, for an update that keeps them."""
    from mlcli.environments import EnvironmentSpec

    spec = record.spec
    app_root = services.service_dir(record.name) / f"r{record.revision}" / "app"
    source = spec.get("sourceDirectory")
    return App(
        entry_script=app_root / spec["entryScript"],
        source_directory=app_root / source if source else None,
        environment=EnvironmentSpec.from_dict(spec["environment"]["spec"]),
        variables=spec.get("variables") or {},
        inference=None,
    )


def updated_meta(
    record: ServiceRecord,
    add_tags: Mapping[str, str] | None,
    remove_tags: Iterable[str],
    add_properties: Mapping[str, str] | None,
    description: str | None,
    on_warning: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The record's tags, properties and description after an update: tags added, then
    removed (Azure's order; a tag to remove that is not there is only reported)."""
    tags = {**(record.document.get("tags") or {}), **(add_tags or {})}
    for key in remove_tags:
        if tags.pop(key, None) is None and on_warning is not None:
            on_warning(f"--remove-tag: service {record.name!r} has no tag {key!r}.")
    properties = dict(record.document.get("properties") or {})
    for key, value in (add_properties or {}).items():
        if key in properties and properties[key] != value:
            raise ConflictError(
                f"service {record.name!r} already has property {key}={properties[key]!r}; "
                "properties cannot be changed once set (Azure's rule).",
                where="--add-property",
                fix="Use a tag for values that change.",
            )
        properties[key] = value
    meta: dict[str, Any] = {"tags": tags, "properties": properties}
    meta["description"] = record.document.get("description") if description is None else description
    return meta
