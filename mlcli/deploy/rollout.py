"""Deploy and update: models + configs + environment -> a new revision of a service.

One roll-out, in order: check every input (inputs.py); record the service as Transitioning,
naming this process as its deployer (one transaction); build or reuse the environment and
lay out the app root (launch.py); start the server through the target; record it as
pending; then wait for it and make it the serving revision (settle.py), or, with --no-wait,
leave that to a helper process (background.py). An update (or deploy --overwrite) starts the
new revision beside the old one on the same port (SO_REUSEPORT), and stops the old only once
the new is healthy, so the scoring URI never stops answering.

If this process dies at any point, the next `ml` that reads the record finishes the job (see
services.Services.recover); Ctrl-C stops the half-started server here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mlcli import db
from mlcli.deploy.background import hand_over
from mlcli.deploy.inputs import (
    App,
    DeployRequest,
    app_from_inference,
    app_from_record,
    model_from_id,
    resolve_models,
    updated_meta,
)
from mlcli.deploy.journal import deploy_log, journal
from mlcli.deploy.launch import prepare
from mlcli.deploy.no_code import framework_of, is_no_code
from mlcli.deploy.overrides import with_overrides
from mlcli.deploy.settings import deployment_from_settings, spec_doc
from mlcli.deploy.settle import abandon, finish
from mlcli.errors import ConfigError, ConflictError
from mlcli.paths import Workspace
from mlcli.progress import Progress
from mlcli.services import (
    TRANSITIONING,
    UNHEALTHY,
    Services,
    check_service_name,
    deployer_alive,
    deployer_identity,
)
from mlcli.targets import Endpoint, target_for

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig, InferenceConfig
    from mlcli.registry import ModelRef, ModelVersion, Registry


def deploy(
    request: DeployRequest,
    *,
    workspace: str | Workspace | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Deploy (or, with `overwrite`, replace) a service; returns its `ml service show` JSON."""
    from mlcli.registry import Registry

    name = check_service_name(request.name)
    # With models named, they must be registered: the workspace exists already.
    registry = Registry.open(workspace, create=not request.models)
    services = Services(registry.workspace, registry.conn)
    models = resolve_models(registry, request.models)
    app = app_from_inference(request.inference, models)
    target_for(request.deployment.compute_type)  # unknown computeType: refuse before writing
    meta = {
        "description": request.description,
        "tags": dict(request.tags),
        "properties": dict(request.properties),
    }
    return roll_out(
        services,
        registry,
        name,
        models=models,
        app=app,
        deployment=request.deployment,
        meta=meta,
        overwrite=request.overwrite,
        wait=request.wait,
        on_progress=on_progress,
    )


def update(
    name: str,
    *,
    models: Iterable[ModelRef] = (),
    inference: InferenceConfig | None = None,
    deployment: DeploymentConfig | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_names: Mapping[str, str] | None = None,
    add_tags: Mapping[str, str] | None = None,
    remove_tags: Iterable[str] = (),
    add_properties: Mapping[str, str] | None = None,
    description: str | None = None,
    wait: bool = True,
    workspace: str | Workspace | None = None,
    on_progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`ml service update`: new models, configs or settings roll out a new revision (same URI);
    tags, properties and description alone change only the record, unless the service's
    server is down (Unhealthy): then the update starts it again, as `restart` does.
    `overrides` (fields of DeploymentConfig) go on top of the serving settings; the ones this
    computeType ignores are reported to `on_warning`, named as in `override_names` (the face's
    words)."""
    from mlcli.registry import Registry

    registry = Registry.open(workspace, create=False)
    services = Services(registry.workspace, registry.conn)
    record = services.get(check_service_name(name))
    models = tuple(models)
    meta = updated_meta(record, add_tags, remove_tags, add_properties, description, on_warning)
    rollout = bool(models or inference or deployment or overrides)
    if not rollout and services.state_of(record) == UNHEALTHY and record.spec:
        if on_warning is not None:
            on_warning(f"service {record.name!r} is Unhealthy (its server is down): restarting it")
        rollout = True
    if not rollout:
        with db.immediate(services.conn):
            current = services.find(record.name) or record
            saved = services.save(
                current.name,
                compute_type=current.compute_type,
                state=current.state,
                document={**current.document, **meta},
                models=current.models,
                created_time=current.created_time,
            )
        return services.to_document(saved)
    if not record.spec:
        raise ConflictError(
            f"service {record.name!r} has no healthy revision to update (state {record.state}).",
            fix=f"Deploy it again: ml model deploy -n {record.name} ... --overwrite.",
        )
    spec = record.spec
    resolved = (
        resolve_models(registry, models)
        if models
        else [model_from_id(registry, m) for m in spec["models"]]
    )
    if inference:
        app = app_from_inference(inference)
    elif models and is_no_code(spec) and framework_of(resolved):
        app = app_from_inference(None, resolved)  # the new version's framework and its version
    else:
        app = app_from_record(services, record)
    base = deployment or deployment_from_settings(spec["settings"])
    if base.compute_type.upper() != record.compute_type:
        raise ConfigError(
            f"service {record.name!r} runs on {record.compute_type}; an update cannot move it "
            f"to {base.compute_type}.",
            where="--dc, field computeType",
            fix="Deploy it again with `ml model deploy ... --overwrite` to change computeType.",
        )
    if overrides:
        base, notes = with_overrides(base, overrides, override_names or {})
        for note in notes:
            if on_warning is not None:
                on_warning(note)
    return roll_out(
        services,
        registry,
        record.name,
        models=resolved,
        app=app,
        deployment=base,
        meta=meta,
        overwrite=True,
        wait=wait,
        on_progress=on_progress,
    )


def restart(
    name: str,
    *,
    wait: bool = True,
    workspace: str | Workspace | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """`ml service restart`: the current revision again (same models, app, settings and URI),
    a new server replacing the old one. For a server that died (killed, a reboot), or one
    that answers but should start afresh (init() again)."""
    from mlcli.registry import Registry

    registry = Registry.open(workspace, create=False)
    services = Services(registry.workspace, registry.conn)
    record = services.get(check_service_name(name))
    if not record.spec:
        raise ConflictError(
            f"service {record.name!r} never became healthy (state {record.state}); there is "
            "no revision to restart.",
            fix=f"Deploy it again: ml model deploy -n {record.name} ... --overwrite.",
        )
    spec = record.spec
    return roll_out(
        services,
        registry,
        record.name,
        models=[model_from_id(registry, m) for m in spec["models"]],
        app=app_from_record(services, record),
        deployment=deployment_from_settings(spec["settings"]),
        meta={},
        overwrite=True,
        wait=wait,
        on_progress=on_progress,
    )


def roll_out(
    services: Services,
    registry: Registry,
    name: str,
    *,
    models: list[ModelVersion],
    app: App,
    deployment: DeploymentConfig,
    meta: Mapping[str, Any],
    overwrite: bool,
    wait: bool,
    on_progress: Progress | None,
) -> dict[str, Any]:
    compute_type = deployment.compute_type.upper()
    target = target_for(compute_type)
    preflight = getattr(target, "preflight", None)  # optional: see mlcli/targets
    if preflight is not None:
        preflight(deployment)
    existing = services.find(name)
    if existing is not None:
        existing = services.recover(existing)
    token = uuid.uuid4().hex
    model_ids = [m.id for m in models]
    with db.immediate(services.conn):
        previous = services.find(name)
        if previous is not None and not overwrite:
            raise ConflictError(
                f"A service with name '{name}' already exists. If you want to overwrite the "
                "existing service, please use the --overwrite flag.",
                fix=f"Or choose another name; `ml service update -n {name}` changes it in place.",
            )
        if previous is not None and deployer_alive(previous.deployer):
            raise ConflictError(
                f"service {name!r} is being deployed by ml process {previous.deployer['pid']}.",
                fix="Wait for that deploy to finish, then try again.",
            )
        last = int((previous.document.get("lastRevision") if previous else 0) or 0)
        revision = last + 1
        document = dict(previous.document) if previous else {"revision": 0}
        document.update(meta)
        document.update(
            {
                "lastRevision": revision,
                "deployer": deployer_identity(),
                "pending": {
                    "revision": revision,
                    "computeType": compute_type,
                    "token": token,
                    "models": model_ids,
                    "previousState": previous.state if previous else None,
                },
                "error": None,
                "retired": document.get("retired") or [],
            }
        )
        if previous is None or not previous.spec:
            document["authEnabled"] = bool(deployment.auth_enabled)
        in_use = [*(previous.models if previous else ()), *model_ids]
        services.save(
            name,
            compute_type=previous.compute_type if previous and previous.spec else compute_type,
            state=TRANSITIONING,
            document=document,
            models=in_use,
            created_time=previous.created_time if previous else None,
        )
    # From here on the record names this process; every exit path below settles it.
    report = journal(deploy_log(services, name), on_progress)
    report(f"deploying revision {revision} of {name!r} ({compute_type}): {', '.join(model_ids)}")
    endpoint: Endpoint | None = None
    try:
        launch = prepare(
            services,
            registry,
            name,
            revision=revision,
            token=token,
            models=models,
            app=app,
            deployment=deployment,
            previous=previous,
            on_progress=report,
        )
        endpoint = target.start(launch, report)
        record_pending(services, name, endpoint, compute_type, spec_doc(launch, app, endpoint))
        if not wait:
            hand_over(services, name, revision)
            report("not waiting for it here: a background ml process finishes the deploy")
            return services.to_document(services.find(name) or previous, state=TRANSITIONING)
        return finish(services, name, revision, on_progress=report)
    except BaseException as exc:
        if endpoint is not None:
            target.stop(endpoint)
        abandon(services, name, revision, exc, endpoint=endpoint)
        raise


def record_pending(
    services: Services,
    name: str,
    endpoint: Endpoint,
    compute_type: str,
    spec: dict[str, Any],
) -> None:
    """The started server, in the record, before anything waits for it (kill -9 finds it)."""
    with db.immediate(services.conn):
        current = services.find(name)
        assert current is not None
        pending = {
            **(current.pending or {}),
            "endpoint": {"computeType": compute_type, **endpoint.to_dict()},
            "spec": spec,
        }
        services.save(
            name,
            compute_type=current.compute_type,
            state=current.state,
            document={**current.document, "pending": pending},
            models=current.models,
            created_time=current.created_time,
        )
