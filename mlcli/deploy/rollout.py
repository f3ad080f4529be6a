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

import dataclasses
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlcli import db
from mlcli.deploy.background import hand_over
from mlcli.deploy.inputs import (
    App,
    DeployRequest,
    UpdateRequest,
    app_from_inference,
    app_from_record,
    model_from_id,
    resolve_models,
    updated_meta,
)
from mlcli.deploy.journal import deploy_log, journal
from mlcli.deploy.launch import prepare
from mlcli.deploy.no_code import framework_of, is_no_code
from mlcli.deploy.overrides import config_file_notes, deployment_notes, with_overrides
from mlcli.deploy.settings import deployment_from_settings, revision_of
from mlcli.deploy.settle import abandon, finish
from mlcli.errors import ConfigError, ConflictError
from mlcli.paths import Workspace
from mlcli.progress import Progress
from mlcli.services import (
    UNHEALTHY,
    Deployer,
    Pending,
    ServiceRecord,
    Services,
    check_service_name,
    deployer_alive,
)
from mlcli.targets import ComputeType, Endpoint, ServiceState, target_for

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig
    from mlcli.registry import ModelVersion, Registry
    from mlcli.revision import RevisionSpec


@dataclass(frozen=True, slots=True)
class Rollout:
    """One new revision to roll out: what deploy, update and restart each decided."""

    name: str
    models: list[ModelVersion]
    app: App
    deployment: DeploymentConfig
    meta: Mapping[str, Any]  # description, tags, properties for the record
    overwrite: bool
    wait: bool


def deploy(
    request: DeployRequest,
    *,
    workspace: str | Workspace | None = None,
    on_progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Deploy (or, with `overwrite`, replace) a service; returns its `ml service show` JSON.
    What the configs ask for and this machine will not do is reported to `on_warning`."""
    from mlcli.registry import Registry

    name = check_service_name(request.name)
    deployment, notes = with_overrides(
        request.deployment, request.overrides, request.override_names
    )
    notes = [
        *config_file_notes(request.deployment),
        *notes,
        *deployment_notes(deployment, request.inference),
    ]
    _report(notes, on_warning)
    # With models named, they must be registered: the workspace exists already.
    registry = Registry.open(workspace, create=not request.models)
    services = Services(registry.workspace, registry.conn)
    models = resolve_models(registry, request.models)
    app = app_from_inference(request.inference, models)
    target_for(deployment.compute_type)  # unknown computeType: refuse before writing
    meta = {
        "description": request.description
        if request.description is not None
        else deployment.description,
        "tags": {**deployment.tags, **request.tags},
        "properties": {**deployment.properties, **request.properties},
    }
    plan = Rollout(name, models, app, deployment, meta, request.overwrite, request.wait)
    return roll_out(services, registry, plan, on_progress=on_progress)


def update(
    request: UpdateRequest,
    *,
    workspace: str | Workspace | None = None,
    on_progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """`ml service update`: new models, configs or settings roll out a new revision (same URI);
    tags, properties and description alone change only the record, unless the service's
    server is down (Unhealthy): then the update starts it again, as `restart` does.
    Overrides go on top of the new deploymentConfig or the serving settings; the notes on
    what this computeType ignores go to `on_warning`, as deploy's do."""
    from mlcli.registry import Registry

    registry = Registry.open(workspace, create=False)
    services = Services(registry.workspace, registry.conn)
    record = services.get(check_service_name(request.name))
    meta = updated_meta(record, request, on_warning)
    rollout = request.rolls_out
    spec = record.spec
    if not rollout and services.state_of(record) == UNHEALTHY and spec is not None:
        _report([f"service {record.name!r} is Unhealthy (its server is down): restarting it"],
                on_warning)  # fmt: skip
        rollout = True
    if not rollout:
        saved = services.change(record.name, lambda current: current.with_document(**meta))
        return services.to_document(saved)
    if spec is None:
        raise ConflictError(
            f"service {record.name!r} has no healthy revision to update (state {record.state}).",
            fix=f"Deploy it again: ml model deploy -n {record.name} ... --overwrite.",
        )
    resolved = (
        resolve_models(registry, request.models)
        if request.models
        else [model_from_id(registry, m) for m in spec.models]
    )
    if request.inference:
        app = app_from_inference(request.inference)
    elif request.models and is_no_code(spec) and framework_of(resolved):
        app = app_from_inference(None, resolved)  # the new version's framework and its version
    else:
        app = app_from_record(services, record)
    base = request.deployment or deployment_from_settings(spec.settings)
    if ComputeType.of(base.compute_type) != record.compute_type:
        raise ConfigError(
            f"service {record.name!r} runs on {record.compute_type}; an update cannot move it "
            f"to {base.compute_type}.",
            where="--dc, field computeType",
            fix="Deploy it again with `ml model deploy ... --overwrite` to change computeType.",
        )
    deployment, notes = base, []
    if request.deployment or request.overrides:  # the settings it serves with say nothing new
        deployment, notes = with_overrides(base, request.overrides, request.override_names)
    file_notes = config_file_notes(request.deployment) if request.deployment else []
    _report([*file_notes, *notes], on_warning)
    plan = Rollout(record.name, resolved, app, deployment, meta, True, request.wait)
    return roll_out(services, registry, plan, on_progress=on_progress)


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
    spec = record.spec
    if spec is None:
        raise ConflictError(
            f"service {record.name!r} never became healthy (state {record.state}); there is "
            "no revision to restart.",
            fix=f"Deploy it again: ml model deploy -n {record.name} ... --overwrite.",
        )
    plan = Rollout(
        record.name,
        models=[model_from_id(registry, m) for m in spec.models],
        app=app_from_record(services, record),
        deployment=deployment_from_settings(spec.settings),
        meta={},
        overwrite=True,
        wait=wait,
    )
    return roll_out(services, registry, plan, on_progress=on_progress)


def roll_out(
    services: Services,
    registry: Registry,
    plan: Rollout,
    *,
    on_progress: Progress | None,
) -> dict[str, Any]:
    name, models, deployment = plan.name, plan.models, plan.deployment
    compute_type = ComputeType.of(deployment.compute_type)
    target = target_for(compute_type)
    target.preflight(deployment)
    existing = services.find(name)
    if existing is not None:
        existing = services.recover(existing)
    token = uuid.uuid4().hex
    model_ids = [m.id for m in models]
    with db.immediate(services.conn):
        previous = services.find(name)
        if previous is not None and not plan.overwrite:
            raise ConflictError(
                f"A service with name '{name}' already exists. If you want to overwrite the "
                "existing service, please use the --overwrite flag.",
                fix=f"Or choose another name; `ml service update -n {name}` changes it in place.",
            )
        if previous is not None and deployer_alive(previous.deployer):
            raise ConflictError(
                f"service {name!r} is being deployed by ml process {previous.deployer.pid}.",
                fix="Wait for that deploy to finish, then try again.",
            )
        last = int((previous.document.get("lastRevision") if previous else 0) or 0)
        revision = last + 1
        document = dict(previous.document) if previous else {"revision": 0}
        document.update(plan.meta)
        document.update(
            {
                "lastRevision": revision,
                "deployer": Deployer.this_process().to_dict(),
                "pending": Pending(
                    revision=revision,
                    compute_type=compute_type,
                    token=token,
                    models=tuple(model_ids),
                    previous_state=previous.state if previous else None,
                ).to_dict(),
                "error": None,
                "retired": document.get("retired") or [],
            }
        )
        served_before = previous is not None and previous.spec is not None
        if not served_before:
            document["authEnabled"] = bool(deployment.auth_enabled)
        in_use = [*(previous.models if previous else ()), *model_ids]
        services.save(
            name,
            compute_type=previous.compute_type if served_before else compute_type,
            state=ServiceState.TRANSITIONING,
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
            app=plan.app,
            deployment=deployment,
            previous=previous,
            on_progress=report,
        )
        endpoint = target.start(launch, report)
        started = revision_of(launch, plan.app, endpoint)
        record_pending(services, name, endpoint, compute_type, started)
        if not plan.wait:
            hand_over(services, name, revision)
            report("not waiting for it here: a background ml process finishes the deploy")
            current = services.find(name) or previous
            return services.to_document(current, state=ServiceState.TRANSITIONING)
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
    spec: RevisionSpec,
) -> None:
    """The started server, in the record, before anything waits for it (kill -9 finds it)."""

    def started(current: ServiceRecord) -> ServiceRecord:
        assert current.pending is not None
        pending = dataclasses.replace(
            current.pending, endpoint={"computeType": compute_type, **endpoint.to_dict()}, spec=spec
        )
        return current.with_document(pending=pending.to_dict())

    services.change(name, started)


def _report(notes: list[str], on_warning: Callable[[str], None] | None) -> None:
    for note in notes if on_warning is not None else ():
        on_warning(note)
