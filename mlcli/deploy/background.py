"""--no-wait: a detached `python -m mlcli.deploy WORKSPACE NAME REVISION` finishes the deploy.

The deploying `ml` returns as soon as the new server is started. Before it does, the helper
it spawned is written into the record as the deployer (pid + start time), so nobody takes
the deploy for abandoned; the helper then waits for the health check and promotes the
revision, or settles the record as failed, exactly as a waiting `ml` would.
"""

from __future__ import annotations

import os
import subprocess
import sys

from mlcli.deploy.journal import deploy_log, journal
from mlcli.deploy.settle import abandon, finish
from mlcli.services import Deployer, Services
from mlcli.targets import target_for


def hand_over(services: Services, name: str, revision: int) -> None:
    """Start the helper for `revision` and make it the record's deployer."""
    from mlcli.targets.procfs import track_child

    log = deploy_log(services, name).open("ab")
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlcli.deploy", services.workspace.name, name, str(revision)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLCLI_HOME": str(services.workspace.root.parent.parent)},
        )
    track_child(proc)
    helper = Deployer.of_process(proc.pid)
    services.change(name, lambda current: current.with_document(deployer=helper.to_dict()))


def finish_in_background(workspace: str, name: str, revision: int) -> int:
    """Entry of the --no-wait helper process."""
    services = Services.open(workspace)
    report = journal(deploy_log(services, name), None)
    record = services.find(name)
    pending = record.pending if record is not None else None
    endpoint = pending.server if pending is not None else None
    try:
        finish(services, name, revision, on_progress=report)
    except BaseException as exc:
        if endpoint is not None and pending is not None:
            target_for(pending.compute_type).stop(endpoint)
        abandon(services, name, revision, exc, endpoint=endpoint)
        report(f"deploy failed: {exc}")
        return 1
    return 0


def main(argv: list[str]) -> int:
    workspace, name, revision = argv
    return finish_in_background(workspace, name, int(revision))
