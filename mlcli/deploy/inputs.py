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
from mlcli.errors import ConfigError, NotFoundError
from mlcli.labels import changed_labels
from mlcli.services import ServiceRecord, Services

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig, InferenceConfig
    from mlcli.environments import EnvironmentSpec
    from mlcli.registry import ModelRef, ModelVersion, Registry


@dataclass(frozen=True, slots=True)
class DeployRequest:
    """What `ml model deploy` (or the SDK's Model.deploy) asks for, parsed.

    `overrides` (DeploymentConfig fields) go on top of `deployment`, and `tags`, `properties`
    and `description` on top of its own; `override_names` are the face's words for the
    overridden fields, used in the notes on what this machine does not honour.
    """

    name: str
    models: tuple[ModelRef, ...]
    inference: InferenceConfig | None
    deployment: DeploymentConfig
    description: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    properties: Mapping[str, str] = field(default_factory=dict)
    overwrite: bool = False
    wait: bool = True
    overrides: Mapping[str, Any] = field(default_factory=dict)
    override_names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UpdateRequest:
    """What `ml service update` (or the SDK's Webservice.update) asks for, parsed.

    New models, configs or overrides roll out a new revision; tags, properties and the
    description alone change only the record. `deployment` (a new deploymentConfig) or the
    serving revision's settings are the base the `overrides` go on.
    """

    name: str
    models: tuple[ModelRef, ...] = ()
    inference: InferenceConfig | None = None
    deployment: DeploymentConfig | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    override_names: Mapping[str, str] = field(default_factory=dict)
    add_tags: Mapping[str, str] = field(default_factory=dict)
    remove_tags: tuple[str, ...] = ()
    add_properties: Mapping[str, str] = field(default_factory=dict)
    description: str | None = None
    wait: bool = True

    @property
    def rolls_out(self) -> bool:
        """Whether the request asks for a new revision (not only new tags or description)."""
        return bool(self.models or self.inference or self.deployment or self.overrides)


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
    return App(
        entry_script=entry,
        source_directory=source,
        environment=spec_for(ic),
        variables=environment_variables(ic),
        inference=ic,
    )


def environment_variables(ic: InferenceConfig) -> dict[str, str]:
    """The inference config's environment.environmentVariables, as strings."""
    variables = (ic.environment or {}).get("environmentVariables") or {}
    return {str(k): str(v) for k, v in variables.items()}


def app_from_record(services: Services, record: ServiceRecord) -> App:
    """The serving revision's script, folder and environment, for an update that keeps them."""
    from mlcli.environments import EnvironmentSpec

    spec = record.spec
    assert spec is not None, "only a record with a started revision has an app to keep"
    app_root = services.service_dir(record.name) / f"r{record.revision}" / "app"
    source = spec.source_directory
    return App(
        entry_script=app_root / spec.entry_script,
        source_directory=app_root / source if source else None,
        environment=EnvironmentSpec.from_dict(dict(spec.environment.spec)),
        variables=dict(spec.variables),
        inference=None,
    )


def updated_meta(
    record: ServiceRecord,
    request: UpdateRequest,
    on_warning: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The record's tags, properties and description after an update (mlcli/labels.py)."""
    tags, properties = changed_labels(
        record.document.get("tags") or {},
        record.document.get("properties") or {},
        add_tags=request.add_tags,
        remove_tags=request.remove_tags,
        add_properties=request.add_properties,
        owner=f"service {record.name!r}",
        fix="Use a tag for values that change.",
        on_warning=on_warning,
    )
    description = request.description
    if description is None:
        description = record.document.get("description")
    return {"tags": tags, "properties": properties, "description": description}
