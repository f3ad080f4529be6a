"""A server's log file: its last lines, then (following it) new ones while the server runs.

PROCESS servers write straight to the revision's log file; a LOCAL container's output is
saved there when the container is removed, so `ml service get-logs` still finds it.
A container's live log stream is split into lines the same way (`split_lines`).
"""

from __future__ import annotations

import contextlib
import os
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
    """Lines of `path` and of its rotated predecessors (path.N ... path.1, oldest first; the
    server rotates its log by size), the last `tail` of them; then, with `follow`, new lines
    while `alive()` holds, across rotations."""
    with path.open("rb") as fh:
        lines: Iterable[bytes] = _lines_of(rotated_files(path), fh)
        if tail:
            lines = deque(lines, maxlen=tail)
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r\n")
        if follow:
            yield from split_lines(_appended(fh, alive, poll_s, path=path))


def rotated_files(path: Path) -> list[Path]:
    """path.1, path.2... that exist, oldest first."""
    found = []
    index = 1
    while (candidate := path.with_name(f"{path.name}.{index}")).is_file():
        found.append(candidate)
        index += 1
    return found[::-1]


def _lines_of(older: list[Path], current: BinaryIO) -> Iterator[bytes]:
    for old in older:
        with contextlib.suppress(FileNotFoundError), old.open("rb") as fh:
            yield from fh
    yield from current


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


def _appended(
    fh: BinaryIO, alive: Callable[[], bool] | None, poll_s: float, *, path: Path | None = None
) -> Iterator[bytes]:
    """What is written to `fh` from now on, until `alive()` says the writer is gone; when
    `path` is rotated (renamed away, a new file in its place), on into the new file."""
    opened: list[BinaryIO] = []
    try:
        while True:
            chunk = fh.read()
            if chunk:
                yield chunk
            elif path is not None and _replaced(fh, path):
                fh = path.open("rb")  # the old one was read to its end just above
                opened.append(fh)
            elif alive is not None and not alive():
                return
            else:
                time.sleep(poll_s)
    finally:
        for reopened in opened:
            reopened.close()


def _replaced(fh: BinaryIO, path: Path) -> bool:
    try:
        return path.stat().st_ino != os.fstat(fh.fileno()).st_ino
    except FileNotFoundError:
        return False
