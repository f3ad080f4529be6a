"""A server's log file: its last lines, then (following it) new ones while the server runs.

PROCESS servers write straight to the revision's log file; a LOCAL container's output is
saved there when the container is removed, so `ml service get-logs` still finds it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path


def follow_file(
    path: Path,
    *,
    tail: int | None = None,
    follow: bool = False,
    alive: Callable[[], bool] | None = None,
    poll_s: float = 0.2,
) -> Iterator[str]:
    """Lines of `path` (the last `tail`), then, with `follow`, new lines while `alive()` holds."""
    with path.open("rb") as fh:
        lines: deque[bytes] | list[bytes] = deque(fh, maxlen=tail) if tail else fh.readlines()
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r\n")
        if not follow:
            return
        pending = b""
        while True:
            chunk = fh.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", "replace").rstrip("\r")
                continue
            if alive is not None and not alive():
                if pending:
                    yield pending.decode("utf-8", "replace")
                return
            time.sleep(poll_s)
