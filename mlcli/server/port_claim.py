"""The port claim of a server in a container: mlcli's deploys keep two services off one port
by a flock each server holds on a per-port file (see mlcli.targets.ports.claim_port). A
PROCESS server inherits the locked descriptor; a container cannot, so its deploy bind-mounts
the file and names it here, and the server locks it itself for as long as it runs (again
after a restart of the container)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping

CLAIM_FILE_VARIABLE = "MLCLI_PORT_CLAIM_FILE"


def hold_port_claim(environ: Mapping[str, str]) -> int | None:
    """Lock the claim file named in the environment (shared, like the deploy's own lock) and
    return its descriptor, kept open for the life of the process; None when none is named."""
    path = environ.get(CLAIM_FILE_VARIABLE)
    if not path:
        return None
    try:
        claim = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # the deploy checks the port itself as well; nothing to hold here
    fcntl.flock(claim, fcntl.LOCK_SH)
    return claim
