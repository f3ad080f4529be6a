"""Drift runs kept in the workspace: one JSON file per run, numbered 1, 2, ... per name.

  <workspace>/datadrift/<name>/<run>.json

A record is written to a temporary file and hard-linked to its number: the link is atomic and
fails if the number is taken, so concurrent runs get distinct numbers and a reader never sees a
half-written record (a run killed before the link leaves only its temporary file, which the
next save of that name removes).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from mlcli.errors import ConfigError, NotFoundError
from mlcli.paths import Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_TEMPORARY = ".partial-"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(
            f"data drift name {name!r} is not valid.",
            where="-n/--name",
            fix="Use letters, digits, '-', '_' and '.', starting with a letter or digit.",
        )
    return name


def runs_dir(workspace: Workspace, name: str) -> Path:
    return workspace.root / "datadrift" / check_name(name)


def save_run(workspace: Workspace, record: dict[str, Any]) -> dict[str, Any]:
    """Store `record` under the next run number of its name; returns it with `runId` set."""
    folder = runs_dir(workspace, record["name"])
    folder.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(folder)
    with tempfile.NamedTemporaryFile(
        "w", dir=folder, prefix=_TEMPORARY, suffix=".json", delete=False, encoding="utf-8"
    ) as handle:
        temporary = Path(handle.name)
    try:
        run_id = _last_run(folder) + 1
        while True:
            saved = {**record, "runId": run_id}
            temporary.write_text(json.dumps(saved, indent=1) + "\n", encoding="utf-8")
            with temporary.open("rb") as written:
                os.fsync(written.fileno())
            try:
                os.link(temporary, folder / f"{run_id}.json")
            except FileExistsError:
                run_id += 1  # another run took this number first
                continue
            return saved
    finally:
        temporary.unlink(missing_ok=True)


def list_runs(workspace: Workspace, name: str | None = None) -> list[dict[str, Any]]:
    """Every run's record (of one name, or all), oldest first within a name."""
    base = workspace.root / "datadrift"
    folders = [runs_dir(workspace, name)] if name else sorted(base.glob("*"))
    return [_read(path) for folder in folders for path in _run_files(folder)]


def load_run(workspace: Workspace, name: str, run_id: int | None = None) -> dict[str, Any]:
    """One run's record: the latest of `name` when `run_id` is None."""
    folder = runs_dir(workspace, name)
    files = _run_files(folder)
    if not files:
        raise NotFoundError(
            f"no data drift runs named {name!r} in workspace {workspace.name!r}.",
            where="-n/--name",
            fix="See `ml datadrift list` for the names, or start one with `ml datadrift run`.",
        )
    if run_id is None:
        return _read(files[-1])
    path = folder / f"{run_id}.json"
    if not path.is_file():
        raise NotFoundError(
            f"data drift {name!r} has no run {run_id} (runs 1 to {_number(files[-1])}).",
            where="--run",
            fix="Leave --run out for the latest run.",
        )
    return _read(path)


def _run_files(folder: Path) -> list[Path]:
    found = [p for p in folder.glob("*.json") if p.stem.isdigit()] if folder.is_dir() else []
    return sorted(found, key=_number)


def _last_run(folder: Path) -> int:
    files = _run_files(folder)
    return _number(files[-1]) if files else 0


def _number(path: Path) -> int:
    return int(path.stem)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _remove_leftovers(folder: Path) -> None:
    """Temporary files of runs killed mid-save (older than a minute: not a save in progress)."""
    for path in folder.glob(f"{_TEMPORARY}*"):
        try:
            if time.time() - path.stat().st_mtime > 60:
                path.unlink()
        except FileNotFoundError:
            pass
