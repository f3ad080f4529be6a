"""The end of a roll-out: promote the pending revision once it answers, or undo it.

`finish` waits for the new server's health check, makes it the serving revision in one
transaction, then stops the servers it replaced (after steering the shared port's new
connections to it, where the target can). `abandon` settles the record when the revision
failed or was interrupted. Both are called by the deploying `ml` process, or by the
--no-wait helper that took over from it (see background.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

from mlcli import db
from mlcli.errors import DeployError, MlcliError
from mlcli.files import remove_tree
from mlcli.progress import Progress
from mlcli.services import FAILED, ServiceRecord, Services, prune_revisions
from mlcli.targets import DOWN, HEALTHY, Endpoint, target_for

DEPLOY_TIMEOUT_S = float(os.environ.get("MLCLI_DEPLOY_TIMEOUT_S", "600"))
LOG_TAIL_LINES = 30


def finish(
    services: Services, name: str, revision: int, *, on_progress: Progress | None
) -> dict[str, Any]:
    """Wait for the pending revision to answer, then make it the serving one."""
    record = services.find(name)
    pending = record.pending if record is not None else None
    if pending is None or pending.revision != revision or pending.endpoint is None:
        raise DeployError(f"service {name!r} has no pending revision {revision}.")
    compute_type, served, spec, models = (
        pending.compute_type,
        pending.endpoint,
        pending.spec,
        pending.models,
    )
    target = target_for(compute_type)
    endpoint = Endpoint.from_dict(served)
    await_healthy(name, target, endpoint, on_progress)

    def promote(current: ServiceRecord) -> ServiceRecord:
        old = current.document.get("endpoint")
        retired = list(current.document.get("retired") or [])
        if old and (old.get("handle") != served.get("handle")):
            retired.append(old)
        promoted = current.with_document(
            drop=("pending",),
            endpoint=served,
            spec=spec.to_dict() if spec else {},
            revision=revision,
            retired=retired,
            error=None,
            authEnabled=bool(spec and spec.auth_enabled),
        )
        return dataclasses.replace(
            promoted, compute_type=compute_type, state=HEALTHY, models=models
        )

    saved = services.change(name, promote)
    for server in saved.retired:
        if on_progress:
            on_progress(f"stopping the previous server (port {server.endpoint.port})")
        if server.compute_type == compute_type:
            target.hand_over(endpoint, server.endpoint)
        server.stop()
    saved = services.change(
        name, lambda current: current.with_document(drop=("deployer",), retired=[])
    )
    if not saved.document.get("authEnabled"):
        services.keys_file(name).unlink(missing_ok=True)
    prune_revisions(services.service_dir(name), keep={f"r{revision}"})
    if on_progress:
        on_progress(f"revision {revision} is healthy at {endpoint.base_url}/score")
    return services.to_document(saved, state=HEALTHY)


def await_healthy(
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
            cause, report = failure_report(target, endpoint)
            raise DeployError(
                f"service {name!r} failed: its scoring server exited during start-up"
                + (f": {cause}" if cause else " (see the log below).")
                + f"\n{report}\n",
                fix=f"Fix the cause and deploy again; full log: `ml service get-logs -n {name}`.",
            )
        if elapsed > DEPLOY_TIMEOUT_S:
            _, report = failure_report(target, endpoint)
            raise DeployError(
                f"service {name!r} did not become healthy within {DEPLOY_TIMEOUT_S:.0f} s "
                f"(GET {endpoint.base_url}/ never answered 200).\n{report}\n",
                fix="Check init() in the log; raise the limit with MLCLI_DEPLOY_TIMEOUT_S.",
            )
        if on_progress and int(elapsed) != last_report:
            last_report = int(elapsed)
            on_progress(f"waiting for init() and the health check ({last_report} s)")
        time.sleep(0.05 if elapsed < 2 else 0.2)


def abandon(
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
    keep: set[str] = set()
    with db.immediate(services.conn):
        current = services.find(name)
        pending = current.pending if current is not None else None
        if current is None or pending is None or pending.revision != revision:
            return
        settled = current.with_document(drop=("pending", "deployer"))
        message = exc.problem.splitlines()[0] if isinstance(exc, MlcliError) else "interrupted"
        serving = current.spec
        if serving is not None:  # an update: the old revision keeps serving
            settled = settled.with_document(
                error=f"the update to revision {revision} failed: {message}"
            )
            services.put(
                dataclasses.replace(
                    settled,
                    state=services.previous_revision_state(current),
                    models=serving.models,
                )
            )
            keep = {f"r{current.revision}"}
        elif endpoint is not None and isinstance(exc, DeployError):
            settled = settled.with_document(
                endpoint={"computeType": pending.compute_type, **endpoint.to_dict()},
                spec=pending.spec.to_dict() if pending.spec else {},
                revision=revision,
                error=message,
            )
            services.put(
                dataclasses.replace(
                    settled,
                    compute_type=pending.compute_type,
                    state=FAILED,
                    models=pending.models,
                )
            )
            keep = {f"r{revision}"}
        else:
            services.remove(name)
    if keep:
        prune_revisions(service_dir, keep=keep)
    else:
        remove_tree(service_dir)


def failure_report(target: Any, endpoint: Endpoint) -> tuple[str, str]:
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
    hint = _packages_hint(traceback)
    return cause, f"{text}\n{hint}" if hint else text


def _packages_hint(traceback: str) -> str:
    """What to pin when init() failed inside installed packages, or on a missing one."""
    from mlcli.environments.blame import missing_module, packages_in

    missing = missing_module(traceback)
    if missing:
        return (
            f"The environment has no module {missing!r}: add the package that provides it to "
            "the conda file's dependencies (or its pip: list)."
        )
    involved = packages_in(traceback)
    if not involved:
        return ""
    listed = ", ".join(f"{name} {version}" for name, version in involved)
    return (
        f"init() failed inside {listed}, as this environment resolved them (`ml env show` "
        "lists every version). An unpinned conda file gets today's releases: pin versions "
        "that work together (name==X.Y), or resolve the file as of the day it was written "
        "with --as-of YYYY-MM-DD (inferenceConfig: packagesAsOf)."
    )
