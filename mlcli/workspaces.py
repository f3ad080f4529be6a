"""Workspaces as a whole: which exist, create, show, delete, and where else a name lives.

A workspace is a folder under $MLCLI_HOME/workspaces holding a registry.db (paths.py). Only
`ml model register` and `ml workspace create` make one; a command that reads never does, so a
mistyped `-w` is an error naming the workspaces there are, not an empty answer.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlcli.errors import ConflictError
from mlcli.files import remove_tree, write_json_atomically
from mlcli.paths import DEFAULT_WORKSPACE, Workspace, project_config
from mlcli.workspace_index import missing_workspace, names


def describe(name: str) -> dict[str, Any]:
    """`ml workspace show`: the workspace's folder and what it holds."""
    workspace = Workspace.named(name)
    if not workspace.db_path.is_file():
        raise missing_workspace(workspace.name)
    with closing(sqlite3.connect(f"file:{workspace.db_path}?mode=ro", uri=True)) as conn:
        models = conn.execute("SELECT COUNT(*) FROM models").fetchone()[0]
        versions = conn.execute("SELECT COUNT(*) FROM model_versions").fetchone()[0]
        services = conn.execute("SELECT COUNT(*) FROM services").fetchone()[0]
    created = datetime.fromtimestamp(workspace.db_path.stat().st_ctime, UTC)
    return {
        "name": workspace.name,
        "path": str(workspace.root),
        "models": models,
        "modelVersions": versions,
        "services": services,
        "createdTime": created.isoformat(timespec="seconds"),
        "default": workspace.name == Workspace.named().name,
    }


def list_all() -> list[dict[str, Any]]:
    return [describe(name) for name in names()]


def create(name: str, *, exist_ok: bool = False) -> dict[str, Any]:
    """Make an empty workspace (its registry.db); an existing one is a conflict unless
    `exist_ok`."""
    from mlcli import db

    workspace = Workspace.named(name)
    if workspace.db_path.is_file() and not exist_ok:
        raise ConflictError(
            f"workspace {workspace.name!r} exists already ({workspace.root}).",
            fix="Use it with -w, or pick another name.",
        )
    db.connect(workspace).close()
    return describe(workspace.name)


def delete(name: str, *, all_resources: bool = False) -> dict[str, Any]:
    """Remove a workspace's folder (models, services' records). Refused while it has services
    unless `all_resources`, which deletes them first (their servers stop)."""
    from mlcli.deploy.operations import delete as delete_service
    from mlcli.services import Services

    shown = describe(name)
    workspace = Workspace.named(name)
    services = Services.open(workspace, create=False)
    try:
        running = [record.name for record in services.list()]
    finally:
        services.close()
    if running and not all_resources:
        raise ConflictError(
            f"workspace {workspace.name!r} has services: {', '.join(running)}.",
            fix="Delete them first, or pass --all-resources to delete them with it.",
        )
    for service in running:
        delete_service(service, workspace=workspace)
    trash = workspace.root.with_name(f".deleting-{workspace.name}")
    workspace.root.rename(trash)  # gone at once for every reader; then removed
    remove_tree(trash)  # read-only model copies too
    return {**shown, "deleted": True}


def attach(
    folder: Path,
    name: str,
    *,
    resource_group: str | None = None,
    subscription_id: str | None = None,
) -> dict[str, Any]:
    """`ml folder attach`: write v1's `.azureml/config.json` in `folder`, so that commands run
    there (and `Workspace.from_config()`) use workspace `name` without -w."""

    workspace = Workspace.named(name)
    target = folder.resolve() / ".azureml" / "config.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "subscription_id": subscription_id or "",
        "resource_group": resource_group or "",
        "workspace_name": workspace.name,
    }
    write_json_atomically(target, document, indent=4, mode=0o644)
    return {**document, "path": str(target), "exists": workspace.db_path.is_file()}


def attached(folder: Path | None = None) -> dict[str, Any]:
    """`ml folder show`: the project config that applies here, and the workspace it names."""
    import json

    found = project_config(folder)
    if found is None:
        return {"path": None, "workspace_name": DEFAULT_WORKSPACE, "attached": False}
    document = json.loads(found.read_text(encoding="utf-8"))
    return {**document, "path": str(found), "attached": True}
