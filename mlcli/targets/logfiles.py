"""A server's log file: its last lines, then (following it) new ones while the server runs.

PROCESS servers write straight to the revision's log file; a LOCAL container's output is
saved there when the container is removed, so `ml service get-logs` still finds it.
A container's live log stream is split into lines the same way (`split_lines`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO


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
        if follow:
            yield from split_lines(_appended(fh, alive, poll_s))


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """A byte stream (a growing file, a container's log stream) as text lines."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode("utf-8", "replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", "replace")


def _appended(fh: BinaryIO, alive: Callable[[], bool] | None, poll_s: float) -> Iterator[bytes]:
    """What is written to `fh` from now on, until `alive()` says the writer is gone."""
    while True:
        chunk = fh.read()
        if chunk:
            yield chunk
        elif alive is not None and not alive():
            return
        else:
            time.sleep(poll_s)
