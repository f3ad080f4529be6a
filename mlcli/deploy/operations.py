"""What `ml service` does to a deployed service besides updating it: show, list, logs,
keys, run (call its scoring URI) and delete."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlcli import db
from mlcli.deploy.journal import deploy_log
from mlcli.deploy.settle import DEPLOY_TIMEOUT_S
from mlcli.errors import ConflictError, DeployError
from mlcli.files import remove_tree
from mlcli.keys import read_keys, regenerate
from mlcli.paths import Workspace
from mlcli.services import (
    FAILED,
    ServiceRecord,
    Services,
)
from mlcli.targets import Endpoint, target_for


def delete(
    name: str, *, purge: bool = False, workspace: str | Workspace | None = None
) -> dict[str, Any]:
    """Stop the service's server(s), then remove its record and folder; with `purge`, also
    what it alone used (see purge.py), listed under "purged"."""
    services = Services.open(workspace, create=False)
    record = services.get(name)
    if record.deployer and record.deployer.alive():
        raise ConflictError(
            f"service {name!r} is being deployed by ml process {record.deployer.pid}.",
            fix="Wait for that deploy to finish (or stop it), then delete.",
        )
    document = services.to_document(record, state=record.state)
    for server in record.servers():
        server.stop()
    with db.immediate(services.conn):
        services.remove(name)
    remove_tree(services.service_dir(name))
    if purge:
        from mlcli.deploy.purge import purge as purge_leftovers

        document["purged"] = purge_leftovers(services, record)
    return document


def show(name: str, *, workspace: str | Workspace | None = None) -> dict[str, Any]:
    services = Services.open(workspace, create=False)
    return services.to_document(services.get(name))


def list_services(*, workspace: str | Workspace | None = None, **filters: Any) -> list[dict]:
    services = Services.open(workspace, create=False)
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
    services = Services.open(workspace, create=False)
    record = services.get(name)
    if init:
        from mlcli.targets.logfiles import follow_file

        path = deploy_log(services, name)
        return follow_file(path, tail=tail) if path.is_file() else iter(())
    pending = record.pending
    data = record.document.get("endpoint") or (pending.endpoint if pending else None)
    if not data:
        return iter(())
    target = target_for(data.get("computeType") or record.compute_type)
    return target.logs(Endpoint.from_dict(data), tail=tail, follow=follow)


def get_keys(name: str, *, workspace: str | Workspace | None = None) -> dict[str, str]:
    services = Services.open(workspace, create=False)
    record = services.get(name)
    return read_keys(_keys_file_of(services, record))


def regen_key(
    name: str, key: str, *, value: str | None = None, workspace: str | Workspace | None = None
) -> dict[str, str]:
    """New Primary or Secondary key; the server re-reads the keys file, no redeploy."""
    services = Services.open(workspace, create=False)
    record = services.get(name)
    keys = regenerate(_keys_file_of(services, record), key, value)
    if record.endpoint is not None:  # AKS: the keys live in a Secret on the cluster too
        target_for(record.compute_type).update_keys(record.endpoint, keys)
    return keys


def run(
    name: str,
    data: bytes,
    *,
    workspace: str | Workspace | None = None,
    on_piece: Callable[[str], None] | None = None,
) -> Any:
    """POST `data` to the scoring URI, as `az ml service run` does; the parsed answer.

    A streamed answer (chunked: a score.py returning AMLResponse(generator)) is handed to
    `on_piece` as it arrives, when given; the whole text is returned as well."""
    import http.client

    services = Services.open(workspace, create=False)
    record = services.get(name)
    endpoint = record.endpoint  # while an update rolls out, the serving revision answers
    if endpoint is None or record.state == FAILED:
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
        if on_piece is not None and response.chunked and response.status == 200:
            import codecs

            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            pieces = []
            while piece := response.read1(65536):
                pieces.append(piece)
                on_piece(decoder.decode(piece))
            on_piece(decoder.decode(b"", final=True))
            return b"".join(pieces).decode("utf-8", "replace")
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


def _keys_file_of(services: Services, record: ServiceRecord) -> Path:
    path = services.keys_file(record.name)
    if not record.document.get("authEnabled") or not path.is_file():
        raise ConflictError(
            f"service {record.name!r} does not have key auth enabled, so it has no keys.",
            fix=f"Turn it on: ml service update -n {record.name} --ae true.",
        )
    return path
