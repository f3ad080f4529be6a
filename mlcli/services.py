"""Service records in the workspace's SQLite file, and the state a user sees.

A record is written BEFORE anything runs: `Transitioning`, naming the `ml` process that deploys
it (pid + start time). Whoever reads a record later checks that claim: a Transitioning record
whose deployer is gone is an interrupted deploy, so its half-started server is stopped and the
record falls back to the revision that was serving (or to `Failed`). A Healthy record is only
believed after probing the server: a killed server shows `Unhealthy`.

The document column holds, as JSON: description, tags, properties, authEnabled, the serving
revision's `endpoint` and `spec`, and while a deploy runs `deployer` and `pending` (the new
revision); `retired` lists servers replaced by an update and not yet confirmed stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcli import db
from mlcli.errors import ConfigError, NotFoundError
from mlcli.files import remove_tree
from mlcli.labels import matches
from mlcli.paths import Workspace
from mlcli.revision import RevisionSpec
from mlcli.targets import Endpoint, ServiceState, stop_by_token, target_for
from mlcli.targets.procfs import process_matches, process_start_time

TRANSITIONING, HEALTHY = ServiceState.TRANSITIONING, ServiceState.HEALTHY
UNHEALTHY, FAILED = ServiceState.UNHEALTHY, ServiceState.FAILED

# Azure's rule for web service names (ACI/AKS): 3-32 characters, lower-case letters, digits
# and '-', starting with a letter and not ending with '-'. It also keeps folder names safe.
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}[a-z0-9]$")


def check_service_name(name: str, *, where: str = "-n/--name") -> str:
    if not _SERVICE_NAME.match(name):
        raise ConfigError(
            f"service name {name!r} is not valid.",
            where=where,
            fix="Use 3 to 32 lower-case letters, digits and '-', starting with a letter and "
            "ending with a letter or digit (Azure's rule).",
        )
    return name


@dataclass(frozen=True, slots=True)
class Deployer:
    """The `ml` process deploying a service: pid + start time (a recycled pid is not it)."""

    pid: int
    start_time: int | None = None

    @classmethod
    def of_process(cls, pid: int) -> Deployer:
        return cls(pid, process_start_time(pid))

    @classmethod
    def this_process(cls) -> Deployer:
        return cls.of_process(os.getpid())

    def alive(self) -> bool:
        return process_matches(self.pid, self.start_time)

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "startTime": self.start_time}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Deployer:
        return cls(int(data["pid"]), data.get("startTime"))


def deployer_alive(deployer: Deployer | None) -> bool:
    return deployer is not None and deployer.alive()


@dataclass(frozen=True, slots=True)
class Server:
    """A started server as a record names it: its computeType and where it answers."""

    compute_type: str
    endpoint: Endpoint

    def to_dict(self) -> dict[str, Any]:
        return {"computeType": self.compute_type, **self.endpoint.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], compute_type: str) -> Server:
        """`compute_type`: the service's, for a record written before servers named theirs."""
        return cls(data.get("computeType") or compute_type, Endpoint.from_dict(data))

    def stop(self) -> None:
        target_for(self.compute_type).stop(self.endpoint)


@dataclass(frozen=True, slots=True)
class Pending:
    """The revision a deploy is rolling out, until it serves or is undone."""

    revision: int
    compute_type: str
    token: str  # in the server's environment: finds it before its endpoint is recorded
    models: tuple[str, ...]  # "name:N" ids
    previous_state: str | None  # the service's state before (Failed stays Failed on undo)
    endpoint: dict[str, Any] | None = None  # {"computeType", **Endpoint.to_dict()}, once started
    spec: RevisionSpec | None = None  # what the started revision serves

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "revision": self.revision,
            "computeType": self.compute_type,
            "token": self.token,
            "models": list(self.models),
            "previousState": self.previous_state,
        }
        if self.endpoint is not None:
            data["endpoint"] = self.endpoint
        if self.spec is not None:
            data["spec"] = self.spec.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending:
        return cls(
            revision=int(data["revision"]),
            compute_type=data["computeType"],
            token=data.get("token") or "",
            models=tuple(data.get("models") or ()),
            previous_state=data.get("previousState"),
            endpoint=data.get("endpoint"),
            spec=RevisionSpec.from_dict(data.get("spec")),
        )

    @property
    def server(self) -> Endpoint | None:
        return Endpoint.from_dict(self.endpoint) if self.endpoint else None


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One row of `services` plus the models of its service_models rows."""

    name: str
    compute_type: str
    state: str  # as stored; `Services.state_of` gives the probed one
    document: dict[str, Any]
    created_time: str
    updated_time: str
    models: tuple[str, ...] = field(default=())  # "name:N" ids that are in use

    @property
    def endpoint(self) -> Endpoint | None:
        data = self.document.get("endpoint")
        return Endpoint.from_dict(data) if data else None

    @property
    def pending(self) -> Pending | None:
        data = self.document.get("pending")
        return Pending.from_dict(data) if data else None

    @property
    def deployer(self) -> Deployer | None:
        data = self.document.get("deployer")
        return Deployer.from_dict(data) if data else None

    @property
    def retired(self) -> list[Server]:
        """Servers an update replaced, not yet confirmed stopped."""
        return [Server.from_dict(d, self.compute_type) for d in self.document.get("retired") or []]

    def servers(self, *, pending: bool = False) -> list[Server]:
        """The serving server, the retired ones and (with `pending`) the one a deploy started."""
        found = [self.document.get("endpoint"), *(self.document.get("retired") or [])]
        if pending and self.pending is not None:
            found.append(self.pending.endpoint)
        return [Server.from_dict(data, self.compute_type) for data in found if data]

    def with_document(self, *, drop: Iterable[str] = (), **changes: Any) -> ServiceRecord:
        """This record with document keys changed (and the `drop` ones removed)."""
        document = {**self.document, **changes}
        for key in drop:
            document.pop(key, None)
        return dataclasses.replace(self, document=document)

    @property
    def spec(self) -> RevisionSpec | None:
        """The serving revision's, once one has started (mlcli/revision.py)."""
        return RevisionSpec.from_dict(self.document.get("spec"))

    @property
    def revision(self) -> int:
        return int(self.document.get("revision") or 0)


class Services:
    """One workspace's services. Open with `Services.open(workspace)`."""

    def __init__(self, workspace: Workspace, conn: sqlite3.Connection) -> None:
        self.workspace = workspace
        self.conn = conn

    @classmethod
    def open(cls, workspace: str | Workspace | None = None, *, create: bool = True) -> Services:
        """The workspace's services; `create=False` for commands that only read (db.connect)."""
        if not isinstance(workspace, Workspace):
            workspace = Workspace.named(workspace)
        return cls(workspace, db.connect(workspace, create=create))

    def close(self) -> None:
        self.conn.close()

    def service_dir(self, name: str) -> Path:
        return self.workspace.services_dir / name

    def keys_file(self, name: str) -> Path:
        return self.service_dir(name) / "keys.json"

    # -- read -------------------------------------------------------------------------------

    def find(self, name: str) -> ServiceRecord | None:
        """The stored record as it is (no probe, no clean-up)."""
        row = self.conn.execute("SELECT * FROM services WHERE name = ?", (name,)).fetchone()
        return self._load(row) if row else None

    def get(self, name: str) -> ServiceRecord:
        """The record, after finishing any deploy whose `ml` process died (see module doc)."""
        record = self.find(name)
        if record is None:
            from mlcli.workspace_index import elsewhere_hint

            raise NotFoundError(
                f"service {name!r} does not exist in workspace {self.workspace.name!r}."
                + elsewhere_hint("services", name, self.workspace.name),
                where="-n/--name",
                fix="See the services with `ml service list`.",
            )
        return self.recover(record)

    def list(
        self,
        *,
        compute_type: str | None = None,
        model_name: str | None = None,
        model_id: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
    ) -> list[ServiceRecord]:
        rows = self.conn.execute("SELECT * FROM services ORDER BY name").fetchall()
        found = []
        for row in rows:
            record = self.recover(self._load(row))
            if compute_type and record.compute_type != compute_type.upper():  # "IOT": none
                continue
            if model_name and not any(m.rpartition(":")[0] == model_name for m in record.models):
                continue
            if model_id and not _model_id_matches(model_id, record.models):
                continue
            if not matches(record.document.get("tags") or {}, tags or {}):
                continue
            if not matches(record.document.get("properties") or {}, properties or {}):
                continue
            found.append(record)
        return found

    def state_of(self, record: ServiceRecord) -> str:
        """The state now: a stored Healthy is only believed when the server answers."""
        if record.state in (FAILED, TRANSITIONING) or record.endpoint is None:
            return record.state
        target = target_for(record.compute_type)
        return HEALTHY if target.state(record.endpoint) == HEALTHY else UNHEALTHY

    def to_document(self, record: ServiceRecord, *, state: str | None = None) -> dict[str, Any]:
        """The JSON `ml service show` prints (and `ml model deploy` at its end)."""
        doc = record.document
        pending = record.pending
        spec = record.spec or (pending.spec if pending else None)
        endpoint = record.endpoint or (pending.server if pending else None)
        settings = spec.settings if spec else {}
        environment = spec.environment if spec else None
        error = doc.get("error")
        state = state or self.state_of(record)
        if state == UNHEALTHY and not error and endpoint is not None:
            from mlcli.targets.ports import health_problem

            error = health_problem(endpoint.host, endpoint.port)
        handle = endpoint.handle if endpoint else {}
        raw_settings = settings.get("raw") or {}
        return {
            "name": record.name,
            "state": state,
            "computeType": record.compute_type,
            "scoringUri": f"{endpoint.base_url}/score" if endpoint else None,
            "swaggerUri": f"{endpoint.base_url}/swagger.json" if endpoint else None,
            "port": endpoint.port if endpoint else None,
            "models": list((spec.models if spec else ()) or record.models),
            "authEnabled": bool(doc.get("authEnabled")),
            "description": doc.get("description"),
            "tags": dict(doc.get("tags") or {}),
            "properties": dict(doc.get("properties") or {}),
            "createdTime": record.created_time,
            "updatedTime": record.updated_time,
            "updatedAt": record.updated_time,  # v1's spelling in `az ml service show`
            "workspaceName": self.workspace.name,
            "revision": record.revision or (pending.revision if pending else None),
            "scoringTimeoutMs": settings.get("scoringTimeoutMs"),
            "maxConcurrentRequestsPerContainer": settings.get("maxConcurrentRequestsPerContainer"),
            "maxQueueWaitMs": settings.get("maxQueueWaitMs"),
            "maxRequestBodyMB": settings.get("maxRequestBodyMB"),
            "workers": settings.get("workers"),
            "environment": {
                "key": environment.key,
                "python": environment.python,
                "pythonVersion": environment.python_version,
                "source": environment.source,
            }
            if environment
            else None,
            "serverDetails": dict(endpoint.handle) if endpoint else None,
            "error": {"message": error} if error else None,
            # v1 fields that scripts read; null where nothing here stands for them.
            "imageId": handle.get("image"),  # LOCAL/ACI: the service's Docker image
            "environmentDetails": {
                "name": environment.key,
                "python": {"version": environment.python_version},
                "source": environment.source,
            }
            if environment
            else None,
            "cpu": settings.get("cpu"),
            "memoryInGB": settings.get("memoryInGB"),
            "gpu": raw_settings.get("gpuCores"),
        }

    # -- write ------------------------------------------------------------------------------

    def save(
        self,
        name: str,
        *,
        compute_type: str,
        state: str,
        document: Mapping[str, Any],
        models: Iterable[str],
        created_time: str | None = None,
    ) -> ServiceRecord:
        """Insert or replace a record and its service_models rows. Call inside `immediate`."""
        stamp = db.now()
        self.conn.execute(
            "INSERT INTO services (name, compute_type, state, document, created_time,"
            " updated_time) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
            " compute_type = excluded.compute_type, state = excluded.state,"
            " document = excluded.document, updated_time = excluded.updated_time",
            (name, compute_type, state, json.dumps(document), created_time or stamp, stamp),
        )
        self.conn.execute("DELETE FROM service_models WHERE service = ?", (name,))
        for model_id in sorted(set(models)):
            model_name, _, version = model_id.rpartition(":")
            self.conn.execute(
                "INSERT INTO service_models (service, model_name, model_version) VALUES (?, ?, ?)",
                (name, model_name, int(version)),
            )
        record = self.find(name)
        assert record is not None
        return record

    def put(self, record: ServiceRecord) -> ServiceRecord:
        """Save `record` as it is (its name, state, document, models). Call inside `immediate`."""
        return self.save(
            record.name,
            compute_type=record.compute_type,
            state=record.state,
            document=record.document,
            models=record.models,
            created_time=record.created_time,
        )

    def change(
        self, name: str, edit: Callable[[ServiceRecord], ServiceRecord | None]
    ) -> ServiceRecord:
        """Read-modify-write of one record in one transaction: `edit` gets the stored record
        and returns the one to save (None: leave it as it is). The record must exist."""
        with db.immediate(self.conn):
            current = self.find(name)
            if current is None:
                raise NotFoundError(f"service {name!r} was deleted meanwhile.")
            changed = edit(current)
            return current if changed is None else self.put(changed)

    def previous_revision_state(self, record: ServiceRecord) -> str:
        """The state of the serving revision once an update to a new one failed or was
        interrupted: Failed if the service was Failed before, else as its server answers."""
        pending = record.pending
        if pending is not None and pending.previous_state == FAILED:
            return FAILED
        return self.state_of(dataclasses.replace(record, state=HEALTHY))

    def remove(self, name: str) -> None:
        """Delete the record (its service_models rows go with it). Call inside `immediate`."""
        self.conn.execute("DELETE FROM services WHERE name = ?", (name,))

    # -- recovery ---------------------------------------------------------------------------

    def recover(self, record: ServiceRecord) -> ServiceRecord:
        """Finish the work of a deployer that died (kill -9, a crash, a closed terminal).

        Its new server never got checked, so it is stopped (found by its recorded pid, or by
        the token in its environment if it started after the last write); servers an update
        replaced are stopped; the record goes back to the revision that served before, or to
        Failed when there was none. Nothing is ever promoted to Healthy here.
        """
        deployer = record.deployer
        if deployer is None or deployer.alive():
            return record
        pending = record.pending
        if pending is not None and pending.endpoint:
            Server.from_dict(pending.endpoint, record.compute_type).stop()
        for server in record.retired:
            server.stop()
        if pending is not None and pending.token:
            stop_by_token(pending.compute_type or record.compute_type, pending.token)
        with db.immediate(self.conn):
            current = self.find(record.name)
            if current is None or current.deployer != deployer:
                return self.recover(current) if current else record  # someone else did it
            revision = pending.revision if pending else None
            settled = current.with_document(drop=("deployer", "pending"), retired=[])
            serving = current.spec
            if current.endpoint is not None and current.state == TRANSITIONING and serving:
                state = self.previous_revision_state(current)
                settled = settled.with_document(
                    error=f"the update to revision {revision} was interrupted: the ml process "
                    f"(pid {deployer.pid}) that ran it ended before the new server was "
                    "checked; the previous revision keeps serving."
                )
                models = serving.models
            elif current.state == TRANSITIONING:
                state = FAILED
                if pending is not None and pending.endpoint:
                    # so get-logs finds its log
                    settled = settled.with_document(
                        endpoint=pending.endpoint,
                        spec=pending.spec.to_dict() if pending.spec else {},
                    )
                settled = settled.with_document(
                    error=f"the deploy was interrupted: the ml process (pid {deployer.pid}) "
                    "that ran it ended before the server became healthy; its server was "
                    f"stopped. Deploy again with --overwrite, or `ml service delete -n "
                    f"{current.name}`."
                )
                models = current.models
            else:
                state, models = current.state, current.models
            saved = self.put(dataclasses.replace(settled, state=state, models=models))
        keep = {f"r{n}" for n in (saved.revision,) if n}
        prune_revisions(self.service_dir(record.name), keep=keep)
        return saved

    def _load(self, row: sqlite3.Row) -> ServiceRecord:
        models = self.conn.execute(
            "SELECT model_name, model_version FROM service_models WHERE service = ?"
            " ORDER BY model_name, model_version",
            (row["name"],),
        ).fetchall()
        return ServiceRecord(
            name=row["name"],
            compute_type=row["compute_type"],
            state=row["state"],
            document=json.loads(row["document"] or "{}"),
            created_time=row["created_time"],
            updated_time=row["updated_time"],
            models=tuple(f"{m['model_name']}:{m['model_version']}" for m in models),
        )


def prune_revisions(service_dir: Path, *, keep: set[str]) -> None:
    """Remove revision folders (r1, r2...) other than `keep`: leftovers of replaced servers."""
    if not service_dir.is_dir():
        return
    for child in service_dir.iterdir():
        if child.is_dir() and re.fullmatch(r"r\d+", child.name) and child.name not in keep:
            remove_tree(child)


def _model_id_matches(model_id: str, models: Iterable[str]) -> bool:
    if ":" in model_id:
        return model_id in models
    return any(m.rpartition(":")[0] == model_id for m in models)
