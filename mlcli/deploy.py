"""Deploy, update and delete services: models + configs + environment -> a target -> a record.

One deploy, in order: check every input; record the service as Transitioning, naming this
process as its deployer (one transaction); build or reuse the environment; lay out the app
root as Azure's /var/azureml-app; start the server through the target; wait until it answers;
then, in one transaction, make it the serving revision. An update (or deploy --overwrite)
starts the new revision beside the old one on the same port (SO_REUSEPORT), and stops the old
only once the new is healthy, so the scoring URI never stops answering.

If this process dies at any point, the next `ml` that reads the record finishes the job (see
services.Services.recover); Ctrl-C stops the half-started server here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli import db
from mlcli.errors import ConfigError, ConflictError, DeployError, MlcliError, NotFoundError
from mlcli.keys import ensure_keys, read_keys, regenerate
from mlcli.paths import Workspace
from mlcli.services import (
    FAILED,
    TRANSITIONING,
    ServiceRecord,
    Services,
    check_service_name,
    deployer_alive,
    deployer_identity,
    now,
    prune_revisions,
    remove_tree,
    stop_endpoint,
)
from mlcli.targets import DOWN, HEALTHY, Endpoint, LaunchSpec, Progress, target_for
from mlcli.targets.process import TOKEN_VARIABLE

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig, InferenceConfig
    from mlcli.environments import Environment, EnvironmentSpec
    from mlcli.registry import ModelRef, ModelVersion, Registry

DEPLOY_TIMEOUT_S = float(os.environ.get("MLCLI_DEPLOY_TIMEOUT_S", "600"))
LOG_TAIL_LINES = 30
_IGNORED_IN_SOURCE = shutil.ignore_patterns("__pycache__", ".git", ".ipynb_checkpoints")


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
class _App:
    """What goes into the app root besides the models: the script, its folder, its env."""

    entry_script: Path  # absolute, on this machine
    source_directory: Path | None
    environment: EnvironmentSpec
    variables: Mapping[str, str]  # inferenceConfig environment.environmentVariables
    inference: InferenceConfig | None


# --- public API -----------------------------------------------------------------------------


def deploy(
    request: DeployRequest,
    *,
    workspace: str | Workspace | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Deploy (or, with `overwrite`, replace) a service; returns its `ml service show` JSON."""
    from mlcli.registry import Registry

    name = check_service_name(request.name)
    registry = Registry.open(workspace)
    services = Services(registry.workspace, registry.conn)
    models = _resolve_models(registry, request.models)
    app = _app_from_inference(request.inference)
    target_for(request.deployment.compute_type)  # unknown computeType: refuse before writing
    meta = {
        "description": request.description,
        "tags": dict(request.tags),
        "properties": dict(request.properties),
    }
    return _roll_out(
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
    add_tags: Mapping[str, str] | None = None,
    remove_tags: Iterable[str] = (),
    add_properties: Mapping[str, str] | None = None,
    description: str | None = None,
    wait: bool = True,
    workspace: str | Workspace | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """`ml service update`: new models, configs or settings roll out a new revision (same URI);
    tags, properties and description alone change only the record."""
    from mlcli.registry import Registry

    registry = Registry.open(workspace)
    services = Services(registry.workspace, registry.conn)
    record = services.get(check_service_name(name))
    models = tuple(models)
    meta = _updated_meta(record, add_tags, remove_tags, add_properties, description)
    rollout = bool(models or inference or deployment or overrides)
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
        _resolve_models(registry, models)
        if models
        else [_model_from_id(registry, m) for m in spec["models"]]
    )
    app = _app_from_inference(inference) if inference else _app_from_record(services, record)
    base = deployment or _deployment_from_settings(spec["settings"])
    if base.compute_type.upper() != record.compute_type:
        raise ConfigError(
            f"service {record.name!r} runs on {record.compute_type}; an update cannot move it "
            f"to {base.compute_type}.",
            where="--dc, field computeType",
            fix="Deploy it again with `ml model deploy ... --overwrite` to change computeType.",
        )
    if overrides:
        base = dataclasses.replace(base, **overrides)
    return _roll_out(
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


def delete(name: str, *, workspace: str | Workspace | None = None) -> dict[str, Any]:
    """Stop the service's server(s), then remove its record and folder."""
    services = Services.open(workspace)
    record = services.get(name)
    if record.deployer and deployer_alive(record.deployer):
        raise ConflictError(
            f"service {name!r} is being deployed by ml process {record.deployer['pid']}.",
            fix="Wait for that deploy to finish (or stop it), then delete.",
        )
    document = services.to_document(record, state=record.state)
    for data in [record.document.get("endpoint"), *(record.document.get("retired") or [])]:
        if data:
            stop_endpoint(data.get("computeType") or record.compute_type, data)
    with db.immediate(services.conn):
        services.remove(name)
    remove_tree(services.service_dir(name))
    return document


def show(name: str, *, workspace: str | Workspace | None = None) -> dict[str, Any]:
    services = Services.open(workspace)
    return services.to_document(services.get(name))


def list_services(*, workspace: str | Workspace | None = None, **filters: Any) -> list[dict]:
    services = Services.open(workspace)
    return [services.to_document(r) for r in services.list(**filters)]


def logs(
    name: str,
    *,
    tail: int | None = None,
    follow: bool = False,
    init: bool = False,
    workspace: str | Workspace | None = None,
) -> Iterable[str]:
    """The server's log lines; with `init`, the deploy log (environment build, start-up)."""
    services = Services.open(workspace)
    record = services.get(name)
    if init:
        from mlcli.targets.process import follow_file

        path = services.service_dir(name) / "deploy.log"
        return follow_file(path, tail=tail) if path.is_file() else iter(())
    data = record.document.get("endpoint") or (record.pending or {}).get("endpoint")
    if not data:
        return iter(())
    target = target_for(data.get("computeType") or record.compute_type)
    return target.logs(Endpoint.from_dict(data), tail=tail, follow=follow)


def get_keys(name: str, *, workspace: str | Workspace | None = None) -> dict[str, str]:
    services = Services.open(workspace)
    record = services.get(name)
    return read_keys(_keys_file_of(services, record))


def regen_key(
    name: str, key: str, *, value: str | None = None, workspace: str | Workspace | None = None
) -> dict[str, str]:
    """New Primary or Secondary key; the server re-reads the keys file, no redeploy."""
    services = Services.open(workspace)
    record = services.get(name)
    return regenerate(_keys_file_of(services, record), key, value)


def run(name: str, data: bytes, *, workspace: str | Workspace | None = None) -> Any:
    """POST `data` to the scoring URI, as `az ml service run` does; the parsed answer."""
    import http.client

    services = Services.open(workspace)
    record = services.get(name)
    endpoint = record.endpoint
    if endpoint is None or record.state in (FAILED, TRANSITIONING):
        raise ConflictError(
            f"service {name!r} is {record.state} and has no scoring URI to call.",
            fix=f"See why with `ml service get-logs -n {name}`.",
        )
    headers = {"Content-Type": "application/json"}
    if record.document.get("authEnabled"):
        headers["Authorization"] = f"Bearer {get_keys(name, workspace=workspace)['primaryKey']}"
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=DEPLOY_TIMEOUT_S)
    try:
        conn.request("POST", "/score", body=data, headers=headers)
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise DeployError(
            f"service {name!r} did not answer at {endpoint.base_url}/score ({exc}).",
            fix=f"Check its state with `ml service show -n {name}` and its log with "
            f"`ml service get-logs -n {name}`.",
        ) from exc
    finally:
        conn.close()
    text = body.decode("utf-8", "replace")
    if response.status != 200:
        raise DeployError(
            f"received bad response from service {name!r}: status {response.status}, "
            f"body {text[:2000]}",
            fix=f"See `ml service get-logs -n {name}`.",
        )
    try:
        return json.loads(text)
    except ValueError:
        return text


# --- the roll-out ---------------------------------------------------------------------------


def _roll_out(
    services: Services,
    registry: Registry,
    name: str,
    *,
    models: list[ModelVersion],
    app: _App,
    deployment: DeploymentConfig,
    meta: Mapping[str, Any],
    overwrite: bool,
    wait: bool,
    on_progress: Progress | None,
) -> dict[str, Any]:
    compute_type = deployment.compute_type.upper()
    target = target_for(compute_type)
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
    journal = _journal(services.service_dir(name) / "deploy.log", on_progress)
    journal(f"deploying revision {revision} of {name!r} ({compute_type}): {', '.join(model_ids)}")
    endpoint: Endpoint | None = None
    try:
        launch = _prepare(
            services,
            registry,
            name,
            revision=revision,
            token=token,
            models=models,
            app=app,
            deployment=deployment,
            previous=previous,
            on_progress=journal,
        )
        endpoint = target.start(launch, journal)
        _record_pending(services, name, revision, endpoint, compute_type, _spec_doc(launch, app))
        if not wait:
            _hand_over(services, name, revision)
            journal("not waiting (--no-wait): a background ml process finishes the deploy")
            return services.to_document(services.find(name) or previous, state=TRANSITIONING)
        return _finish(services, name, revision, on_progress=journal)
    except BaseException as exc:
        if endpoint is not None:
            target.stop(endpoint)
        _abandon(services, name, revision, exc, endpoint=endpoint)
        raise


def _prepare(
    services: Services,
    registry: Registry,
    name: str,
    *,
    revision: int,
    token: str,
    models: list[ModelVersion],
    app: _App,
    deployment: DeploymentConfig,
    previous: ServiceRecord | None,
    on_progress: Progress,
) -> LaunchSpec:
    """Environment, app root, keys and server settings for one revision."""
    from mlcli.environments import ensure_environment

    env = ensure_environment(app.environment, on_progress=on_progress)
    revision_dir = services.service_dir(name) / f"r{revision}"
    remove_tree(revision_dir)  # a leftover of an interrupted attempt with this number
    app_root = revision_dir / "app"
    on_progress(f"laying out the app root {app_root}")
    app_root.mkdir(parents=True)
    if app.source_directory is not None:
        source_name = app.source_directory.name or "source"
        shutil.copytree(app.source_directory, app_root / source_name, ignore=_IGNORED_IN_SOURCE)
        entry = f"{source_name}/{app.entry_script.relative_to(app.source_directory).as_posix()}"
        source_rel: str | None = source_name
    else:
        shutil.copy2(app.entry_script, app_root / app.entry_script.name)
        entry, source_rel = app.entry_script.name, None
    for model in models:
        on_progress(f"copying model {model.id}")
        registry.materialize(
            model, app_root / "azureml-models" / model.name / str(model.version), link=False
        )
    if len(models) == 1:
        model_dir = f"azureml-models/{models[0].name}/{models[0].version}"
    else:
        model_dir = "azureml-models"
        (app_root / model_dir).mkdir(exist_ok=True)
    keys_file = None
    if deployment.auth_enabled:
        keys_file = services.keys_file(name)
        ensure_keys(keys_file, primary=deployment.primary_key, secondary=deployment.secondary_key)
    reuse = None
    if previous is not None and previous.endpoint is not None and previous.spec:
        reuse = previous.endpoint.port
    port = deployment.port or reuse
    return LaunchSpec(
        workspace=services.workspace.name,
        service=name,
        revision=revision,
        compute_type=deployment.compute_type.upper(),
        app_root=app_root,
        entry_script=entry,
        source_directory=source_rel,
        model_dir=model_dir,
        models=tuple((m.name, m.version) for m in models),
        environment=env,
        port=port,
        reuse_port=port is not None and port == reuse,
        server_env={**app.variables, **server_settings(deployment), TOKEN_VARIABLE: token},
        keys_file=keys_file,
        log_file=revision_dir / "server.log",
        deployment=deployment,
        inference=app.inference,
    )


def _finish(
    services: Services, name: str, revision: int, *, on_progress: Progress | None
) -> dict[str, Any]:
    """Wait for the pending revision to answer, then make it the serving one."""
    record = services.find(name)
    if record is None or (record.pending or {}).get("revision") != revision:
        raise DeployError(f"service {name!r} has no pending revision {revision}.")
    pending = record.pending or {}
    compute_type = pending["computeType"]
    target = target_for(compute_type)
    endpoint = Endpoint.from_dict(pending["endpoint"])
    _await_healthy(services, name, target, endpoint, on_progress)
    with db.immediate(services.conn):
        current = services.find(name)
        assert current is not None
        document = dict(current.document)
        old = document.get("endpoint")
        retired = list(document.get("retired") or [])
        if old and (old.get("handle") != pending["endpoint"].get("handle")):
            retired.append(old)
        document.update(
            {
                "endpoint": pending["endpoint"],
                "spec": pending["spec"],
                "revision": revision,
                "retired": retired,
                "error": None,
            }
        )
        document.pop("pending", None)
        document["authEnabled"] = bool(pending["spec"].get("authEnabled"))
        saved = services.save(
            name,
            compute_type=compute_type,
            state=HEALTHY,
            document=document,
            models=pending["models"],
            created_time=current.created_time,
        )
    for data in retired:
        if on_progress:
            on_progress(f"stopping the previous server (port {data['port']})")
        old_type = data.get("computeType") or compute_type
        hand_over = getattr(target, "hand_over", None)  # optional: see mlcli/targets
        if hand_over is not None and old_type == compute_type:
            hand_over(endpoint, Endpoint.from_dict(data))
        stop_endpoint(old_type, data)
    with db.immediate(services.conn):
        current = services.find(name)
        assert current is not None
        document = {**current.document, "retired": []}
        document.pop("deployer", None)
        saved = services.save(
            name,
            compute_type=current.compute_type,
            state=current.state,
            document=document,
            models=current.models,
            created_time=current.created_time,
        )
    if not saved.document.get("authEnabled"):
        services.keys_file(name).unlink(missing_ok=True)
    prune_revisions(services.service_dir(name), keep={f"r{revision}"})
    if on_progress:
        on_progress(f"revision {revision} is healthy at {endpoint.base_url}/score")
    return services.to_document(saved, state=HEALTHY)


def _await_healthy(
    services: Services,
    name: str,
    target: Any,
    endpoint: Endpoint,
    on_progress: Progress | None,
) -> None:
    started = time.monotonic()
    last_report = -1
    while True:
        state = target.state(endpoint)
        if state == HEALTHY:
            return
        elapsed = time.monotonic() - started
        if state == DOWN:
            cause, report = _failure_report(target, endpoint)
            raise DeployError(
                f"service {name!r} failed: its scoring server exited during start-up"
                + (f": {cause}" if cause else " (see the log below).")
                + f"\n{report}\n",
                fix=f"Fix the cause and deploy again; full log: `ml service get-logs -n {name}`.",
            )
        if elapsed > DEPLOY_TIMEOUT_S:
            _, report = _failure_report(target, endpoint)
            raise DeployError(
                f"service {name!r} did not become healthy within {DEPLOY_TIMEOUT_S:.0f} s "
                f"(GET {endpoint.base_url}/ never answered 200).\n{report}\n",
                fix="Check init() in the log; raise the limit with MLCLI_DEPLOY_TIMEOUT_S.",
            )
        if on_progress and int(elapsed) != last_report:
            last_report = int(elapsed)
            on_progress(f"waiting for init() and the health check ({last_report} s)")
        time.sleep(0.05 if elapsed < 2 else 0.2)


def _abandon(
    services: Services,
    name: str,
    revision: int,
    exc: BaseException,
    *,
    endpoint: Endpoint | None,
) -> None:
    """Settle the record after a failed or interrupted deploy of `revision`.

    A first deploy whose server ran and failed stays as Failed (its log explains why, as in
    Azure); one that never got that far, or was interrupted, leaves nothing behind. A failed
    update leaves the previous revision serving, with the error noted.
    """
    service_dir = services.service_dir(name)
    with db.immediate(services.conn):
        current = services.find(name)
        if current is None or (current.pending or {}).get("revision") != revision:
            return
        pending = current.pending or {}
        document = dict(current.document)
        document.pop("pending", None)
        document.pop("deployer", None)
        message = exc.problem.splitlines()[0] if isinstance(exc, MlcliError) else "interrupted"
        if current.spec:  # an update: the old revision keeps serving
            document["error"] = f"the update to revision {revision} failed: {message}"
            services.save(
                name,
                compute_type=current.compute_type,
                state=FAILED
                if pending.get("previousState") == FAILED
                else services.state_of(dataclasses.replace(current, state=HEALTHY)),
                document=document,
                models=current.spec.get("models") or [],
                created_time=current.created_time,
            )
            keep = {f"r{current.revision}"}
        elif endpoint is not None and isinstance(exc, DeployError):
            document.update(
                {
                    "endpoint": {"computeType": pending["computeType"], **endpoint.to_dict()},
                    "spec": pending.get("spec") or {},
                    "revision": revision,
                    "error": message,
                }
            )
            services.save(
                name,
                compute_type=pending["computeType"],
                state=FAILED,
                document=document,
                models=pending.get("models") or [],
                created_time=current.created_time,
            )
            keep = {f"r{revision}"}
        else:
            services.remove(name)
            keep = set()
    if keep:
        prune_revisions(service_dir, keep=keep)
    else:
        remove_tree(service_dir)


def _record_pending(
    services: Services,
    name: str,
    revision: int,
    endpoint: Endpoint,
    compute_type: str,
    spec: dict[str, Any],
) -> None:
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


def _hand_over(services: Services, name: str, revision: int) -> None:
    """--no-wait: a detached `python -m mlcli.deploy` waits and promotes; it becomes the deployer
    in the record before this process returns, so nobody takes the deploy for abandoned."""
    from mlcli.targets.process import process_start_time

    log = (services.service_dir(name) / "deploy.log").open("ab")
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcli.deploy", services.workspace.name, name, str(revision)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLCLI_HOME": str(services.workspace.root.parent.parent)},
        )
    from mlcli.targets.process import _SPAWNED

    _SPAWNED.append(proc)
    with db.immediate(services.conn):
        current = services.find(name)
        assert current is not None
        services.save(
            name,
            compute_type=current.compute_type,
            state=current.state,
            document={
                **current.document,
                "deployer": {"pid": proc.pid, "startTime": process_start_time(proc.pid)},
            },
            models=current.models,
            created_time=current.created_time,
        )


def finish_in_background(workspace: str, name: str, revision: int) -> int:
    """Entry of the --no-wait helper process."""
    services = Services.open(workspace)
    journal = _journal(services.service_dir(name) / "deploy.log", None)
    record = services.find(name)
    endpoint = None
    if record and record.pending and record.pending.get("endpoint"):
        endpoint = Endpoint.from_dict(record.pending["endpoint"])
    try:
        _finish(services, name, revision, on_progress=journal)
    except BaseException as exc:
        if endpoint is not None and record is not None:
            target_for(record.pending["computeType"]).stop(endpoint)
        _abandon(services, name, revision, exc, endpoint=endpoint)
        journal(f"deploy failed: {exc}")
        return 1
    return 0


# --- inputs ---------------------------------------------------------------------------------


def _resolve_models(registry: Registry, refs: Iterable[ModelRef]) -> list[ModelVersion]:
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


def _model_from_id(registry: Registry, model_id: str) -> ModelVersion:
    name, _, version = model_id.rpartition(":")
    try:
        return registry.get(name, int(version))
    except NotFoundError as exc:
        raise NotFoundError(
            f"model {model_id}, which the service runs, is no longer registered.",
            where="ml service update",
            fix="Name the models to deploy with -m NAME:N.",
        ) from exc


def _app_from_inference(ic: InferenceConfig | None) -> _App:
    from mlcli.environments import spec_for

    if ic is None or ic.entry_script is None:
        raise ConfigError(
            "no entry script: mlcli deploys a model with a score.py, as Azure ML v1 does.",
            where="--ic/--inference-config-file",
            fix="Pass --ic inferenceConfig.json (with entryScript), or --es score.py.",
        )
    where = f"{ic.path or 'inference config'}, field entryScript"
    entry = Path(ic.entry_script)
    if not entry.is_file():
        raise ConfigError(
            f"the entry script {entry} does not exist.",
            where=where,
            fix="Point entryScript at a .py file (relative to sourceDirectory when set).",
        )
    source = Path(ic.source_directory) if ic.source_directory else None
    if source is not None:
        if not source.is_dir():
            raise ConfigError(
                f"the source directory {source} does not exist.",
                where=f"{ic.path or 'inference config'}, field sourceDirectory",
                fix="Point sourceDirectory at the folder holding the entry script.",
            )
        if not entry.resolve().is_relative_to(source.resolve()):
            raise ConfigError(
                f"the entry script {entry} is outside sourceDirectory {source}.",
                where=where,
                fix="Put the entry script inside sourceDirectory (paths are relative to it).",
            )
        entry = source.resolve() / entry.resolve().relative_to(source.resolve())
        source = source.resolve()
    variables = (ic.environment or {}).get("environmentVariables") or {}
    return _App(
        entry_script=entry.resolve(),
        source_directory=source,
        environment=spec_for(ic),
        variables={str(k): str(v) for k, v in variables.items()},
        inference=ic,
    )


def _app_from_record(services: Services, record: ServiceRecord) -> _App:
    """The serving revision's script, folder and environment, for an update that keeps them."""
    from mlcli.environments import EnvironmentSpec

    spec = record.spec
    app_root = services.service_dir(record.name) / f"r{record.revision}" / "app"
    source = spec.get("sourceDirectory")
    return _App(
        entry_script=app_root / spec["entryScript"],
        source_directory=app_root / source if source else None,
        environment=EnvironmentSpec.from_dict(spec["environment"]["spec"]),
        variables=spec.get("variables") or {},
        inference=None,
    )


def _updated_meta(
    record: ServiceRecord,
    add_tags: Mapping[str, str] | None,
    remove_tags: Iterable[str],
    add_properties: Mapping[str, str] | None,
    description: str | None,
) -> dict[str, Any]:
    tags = dict(record.document.get("tags") or {})
    for key in remove_tags:
        if key not in tags:
            raise NotFoundError(
                f"service {record.name!r} has no tag {key!r} to remove.",
                where="--remove-tag",
                fix=f"Its tags: {', '.join(sorted(tags)) or '(none)'}.",
            )
        del tags[key]
    tags.update(add_tags or {})
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


def server_settings(dc: DeploymentConfig) -> dict[str, str]:
    """deploymentConfig -> the scoring server's environment variables (see INTERFACES.md)."""
    env = {"WORKER_COUNT": str(dc.workers or 1)}
    if dc.scoring_timeout_ms is not None:
        env["SCORING_TIMEOUT_MS"] = str(dc.scoring_timeout_ms)
    if dc.max_concurrent_requests_per_container is not None:
        env["MLCLI_MAX_CONCURRENT_REQUESTS"] = str(dc.max_concurrent_requests_per_container)
    if dc.max_queue_wait_ms is not None:
        env["MLCLI_MAX_QUEUE_WAIT_MS"] = str(dc.max_queue_wait_ms)
    if dc.max_request_body_mb is not None:
        env["MLCLI_MAX_REQUEST_BYTES"] = str(dc.max_request_bytes)
    batching = getattr(dc, "batching", None)
    if batching is not None:
        env["MLCLI_BATCH_MAX_SIZE"] = str(batching.max_batch_size)
        env["MLCLI_BATCH_MAX_LATENCY_MS"] = str(batching.max_latency_ms)
    return env


def _settings_doc(dc: DeploymentConfig) -> dict[str, Any]:
    batching = getattr(dc, "batching", None)
    return {
        "computeType": dc.compute_type.upper(),
        "port": dc.port,
        "authEnabled": bool(dc.auth_enabled),
        "scoringTimeoutMs": dc.scoring_timeout_ms,
        "maxConcurrentRequestsPerContainer": dc.max_concurrent_requests_per_container,
        "maxQueueWaitMs": dc.max_queue_wait_ms,
        "maxRequestBodyMB": dc.max_request_body_mb,
        "workers": dc.workers or 1,
        "cpu": dc.cpu,
        "memoryInGB": dc.memory_in_gb,
        "batching": dataclasses.asdict(batching) if batching is not None else None,
        "raw": dc.raw,
        "path": str(dc.path) if dc.path else None,
    }


def _deployment_from_settings(settings: Mapping[str, Any]) -> DeploymentConfig:
    """Rebuild the serving revision's effective deployment config (for an update).

    Keys are left out on purpose: the keys file holds the current ones (regen-key may have
    changed them since), and ensure_keys keeps it.
    """
    from mlcli import config

    raw = dict(settings.get("raw") or {"computeType": settings["computeType"]})
    path = Path(settings["path"]) if settings.get("path") else None
    base = config.deployment_config_from_dict(raw, path)
    batching = settings.get("batching")
    return dataclasses.replace(
        base,
        compute_type=settings["computeType"],
        port=settings.get("port"),
        auth_enabled=bool(settings.get("authEnabled")),
        primary_key=None,
        secondary_key=None,
        scoring_timeout_ms=settings.get("scoringTimeoutMs", base.scoring_timeout_ms),
        max_concurrent_requests_per_container=settings.get(
            "maxConcurrentRequestsPerContainer", base.max_concurrent_requests_per_container
        ),
        max_queue_wait_ms=settings.get("maxQueueWaitMs", base.max_queue_wait_ms),
        max_request_body_mb=settings.get("maxRequestBodyMB", base.max_request_body_mb),
        workers=settings.get("workers") or 1,
        cpu=settings.get("cpu"),
        memory_in_gb=settings.get("memoryInGB"),
        batching=config.Batching(**batching) if batching else None,
    )


def _spec_doc(launch: LaunchSpec, app: _App) -> dict[str, Any]:
    env: Environment = launch.environment
    return {
        "models": [f"{n}:{v}" for n, v in launch.models],
        "entryScript": launch.entry_script,
        "sourceDirectory": launch.source_directory,
        "modelDir": launch.model_dir,
        "variables": dict(app.variables),
        "environment": {
            "key": env.key,
            "python": str(env.python),
            "pythonVersion": env.python_version,
            "source": app.environment.source,
            "spec": app.environment.to_dict(),
        },
        "settings": _settings_doc(launch.deployment),
        "authEnabled": launch.keys_file is not None,
    }


def _keys_file_of(services: Services, record: ServiceRecord) -> Path:
    path = services.keys_file(record.name)
    if not record.document.get("authEnabled") or not path.is_file():
        raise ConflictError(
            f"service {record.name!r} does not have key auth enabled, so it has no keys.",
            fix=f"Turn it on: ml service update -n {record.name} --ae true.",
        )
    return path


def _failure_report(target: Any, endpoint: Endpoint) -> tuple[str, str]:
    """(the cause, the log's last lines made readable) for a server that did not come up.

    The server logs JSON lines; the first ERROR is the cause (later ones repeat it as workers
    are retried), and its traceback is shown once.
    """
    raw = list(target.logs(endpoint, tail=LOG_TAIL_LINES * 4))
    cause, traceback, shown = "", "", []
    for line in raw:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or "message" not in entry:
            shown.append(line)
            continue
        level = str(entry.get("level", "")).upper()
        if level in ("ERROR", "CRITICAL") and not cause:
            cause = str(entry["message"]).splitlines()[0]
            traceback = str(entry.get("exception") or "").rstrip()
        shown.append(f"{level:<7} {entry['message']}")
    if not raw:
        return "", "(the server wrote no log lines)"
    text = "\n".join(shown[-LOG_TAIL_LINES:])
    text = f"{traceback}\nLast log lines:\n{text}" if traceback else f"Last log lines:\n{text}"
    return cause, text


def _journal(path: Path, on_progress: Progress | None) -> Callable[[str], None]:
    """Progress to the caller and, with a timestamp, to the service's deploy.log."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def report(message: str) -> None:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"{now()} {message}\n")
        if on_progress:
            on_progress(message)

    return report


def main(argv: list[str]) -> int:
    workspace, name, revision = argv
    return finish_in_background(workspace, name, int(revision))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
