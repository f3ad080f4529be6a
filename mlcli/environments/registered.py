"""Registered environments: named, numbered v1 Environment documents kept in a workspace
(`env.register(ws)`, `Environment.get(ws, name)` in the Python SDK).

Each version is one JSON file, workspaces/<ws>/environments/<name>/<N>.json. A version number
is taken by creating its file with O_EXCL, so two processes registering at once get two
numbers; the content is written to a temporary file first and linked into place, so a reader
never sees half a document. Registering the same document as the latest version again
returns that version, as Azure does.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from mlcli.errors import ConfigError, NotFoundError
from mlcli.paths import Workspace

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")


def register_environment(workspace: Workspace, document: dict[str, Any]) -> dict[str, Any]:
    """Store `document` (v1 Environment JSON with a name) as the next version; the stored
    document, its "version" set."""
    name = _check_name(document.get("name"))
    folder = workspace.root / "environments" / name
    folder.mkdir(parents=True, exist_ok=True)
    body = {k: v for k, v in document.items() if k != "version"}
    versions = _versions(folder)
    if versions:
        latest = json.loads((folder / f"{versions[-1]}.json").read_text(encoding="utf-8"))
        if {k: v for k, v in latest.items() if k != "version"} == body:
            return latest
    fd, staging = tempfile.mkstemp(prefix=".env-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            version = (versions[-1] if versions else 0) + 1
            json.dump({**body, "version": str(version)}, out, indent=2)
            out.flush()
            os.fsync(out.fileno())
        while True:
            try:
                os.link(staging, folder / f"{version}.json")  # fails if the number is taken
                break
            except FileExistsError:
                version += 1
                Path(staging).write_text(
                    json.dumps({**body, "version": str(version)}, indent=2), encoding="utf-8"
                )
    finally:
        Path(staging).unlink(missing_ok=True)
    return {**body, "version": str(version)}


def get_environment(
    workspace: Workspace, name: str, version: str | int | None = None
) -> dict[str, Any]:
    """One registered version of `name`, the latest when `version` is None."""
    folder = workspace.root / "environments" / _check_name(name)
    versions = _versions(folder)
    if not versions:
        raise NotFoundError(
            f"no environment named {name!r} is registered in workspace {workspace.name!r}.",
            fix="Register it first (env.register(ws)), or build one from a conda file "
            "(Environment.from_conda_specification).",
        )
    wanted = versions[-1] if version is None else int(version)
    if wanted not in versions:
        raise NotFoundError(
            f"environment {name!r} has no version {version}; its versions are "
            f"{', '.join(map(str, versions))}.",
            fix="Leave the version out for the latest.",
        )
    return json.loads((folder / f"{wanted}.json").read_text(encoding="utf-8"))


def list_environments(workspace: Workspace) -> list[dict[str, Any]]:
    """The latest version of each registered environment, by name."""
    root = workspace.root / "environments"
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [get_environment(workspace, n) for n in names if _versions(root / n)]


def _versions(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.json") if p.stem.isdigit())


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"environment name {name!r} is not valid.",
            where="Environment(name=...)",
            fix="Use letters, digits, '-', '_' and '.', starting with a letter or digit.",
        )
    return name
