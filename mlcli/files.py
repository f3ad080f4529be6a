"""Writing and removing files so that a crash leaves either the old state or the new one:
whole files renamed into place, and trees removed even where model copies are read-only."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def write_atomically(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write `text` to a temporary file beside `path`, then rename it into place: a reader
    sees the old file or the new one, never half of it."""
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent.resolve())
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        Path(staging).replace(path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def write_json_atomically(
    path: Path, data: Any, *, indent: int = 2, mode: int | None = None
) -> None:
    """`data` as indented JSON with a final newline, written with `write_atomically`."""
    write_atomically(path, json.dumps(data, indent=indent) + "\n", mode=mode)


def remove_tree(path: Path) -> None:
    """rmtree that also removes read-only model copies when not running as root."""

    def make_writable(func: Any, target: str, _exc: Any) -> None:
        parent = Path(target).parent
        with contextlib.suppress(OSError):
            parent.chmod(0o700)
            Path(target).chmod(0o700)
        func(target)

    if path.exists():
        shutil.rmtree(path, onerror=make_writable)
