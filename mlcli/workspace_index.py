"""Which workspaces exist, and which of them hold a model or service of a given name: what the
registry's and the services' not-found errors, and db.connect's refusal to create a workspace
on a read, need to say. Reads registry files directly (read-only SQLite), never through db.py,
so that everything below it can use it."""

from __future__ import annotations

import difflib
import os
import sqlite3
from contextlib import closing

from mlcli.errors import NotFoundError
from mlcli.paths import Workspace, mlcli_home, project_config


def names() -> list[str]:
    """The workspaces that exist (a folder with a registry.db), sorted."""
    root = mlcli_home() / "workspaces"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "registry.db").is_file())


def missing_workspace(name: str) -> NotFoundError:
    """The error for a workspace that does not exist, naming the ones that do."""
    existing = names()
    close = difflib.get_close_matches(name, existing, n=1, cutoff=0.6)
    there = f"the workspaces here are {', '.join(existing)}" if existing else "there is none yet"
    hint = f"Did you mean -w {close[0]}? " if close else ""
    config = project_config()
    named_by = "-w/--workspace-name"
    if config is not None and not os.environ.get("MLCLI_WORKSPACE"):
        named_by = f"{config} (ml folder attach), field workspace_name"
    return NotFoundError(
        f"workspace {name!r} does not exist ({there}).",
        where=named_by,
        fix=f"{hint}Registering a model creates it, as does `ml workspace create -w {name}`.",
    )


def holding(table: str, name: str, *, besides: str) -> list[str]:
    """Other workspaces where a model (table "models") or a service ("services") of this name
    exists: for not-found errors, when -w was forgotten or wrong."""
    column = {"models": "name", "services": "name"}[table]
    found = []
    for other in names():
        if other == besides:
            continue
        path = Workspace.named(other).db_path
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as conn:
                row = conn.execute(
                    f"SELECT 1 FROM {table} WHERE {column} = ? LIMIT 1",
                    (name,),
                ).fetchone()
        except sqlite3.Error:
            continue
        if row:
            found.append(other)
    return found


def elsewhere_hint(table: str, name: str, workspace: str) -> str:
    """' It is in workspace 'prod' (-w prod).' or ''."""
    others = holding(table, name, besides=workspace)
    if not others:
        return ""
    listed = ", ".join(repr(o) for o in others)
    return f" It exists in workspace {listed} (-w {others[0]})."
