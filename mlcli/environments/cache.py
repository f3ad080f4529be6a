"""See and delete cached model environments: list, find by key prefix, delete, prune.

An environment is "used" while a service record in any workspace names its key: deploy stores
the environment's key in the service document (services.document, JSON), so a substring
search of that column finds it whatever shape the document has.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from mlcli.environments.build import (
    LAST_USED,
    Environment,
    discard,
    environment_lock,
    load_environment,
    lock_is_free,
)
from mlcli.errors import ConfigError, ConflictError, MlcliError, NotFoundError
from mlcli.paths import envs_dir, mlcli_home

DEFAULT_PRUNE_AGE = timedelta(hours=1)  # a deploy in flight has not written its service yet


@dataclass(frozen=True, slots=True)
class Removal:
    key: str
    path: Path
    reason: str  # "unused", "leftover of an interrupted build", "deleted"

    def to_dict(self) -> dict[str, str]:
        return {"key": self.key, "path": str(self.path), "reason": self.reason}


def list_environments() -> list[Environment]:
    """Every finished environment, oldest first."""
    root = envs_dir()
    found = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if entry.name.startswith("."):
            continue
        env = load_environment(entry.name)
        if env:
            found.append(env)
    return sorted(found, key=lambda env: env.created_time)


def find_environment(key: str) -> Environment:
    """An environment by its key or an unambiguous prefix of it (as git takes hashes)."""
    matches = [env for env in list_environments() if env.key.startswith(key)] if key else []
    if not matches:
        raise NotFoundError(
            f"no environment with key {key!r}.",
            fix="See the cached environments with `ml env list`.",
        )
    if len(matches) > 1:
        raise ConfigError(
            f"key {key!r} matches {len(matches)} environments: "
            f"{', '.join(env.key for env in matches)}.",
            fix="Give more characters of the key.",
        )
    return matches[0]


def services_using() -> dict[str, list[str]]:
    """Environment key -> the services ("workspace/name") whose record names it."""
    keys = [env.key for env in list_environments()]
    used: dict[str, list[str]] = {}
    for db_path in sorted((mlcli_home() / "workspaces").glob("*/registry.db")):
        for service, document in _service_documents(db_path):
            for key in keys:
                if key in document:
                    used.setdefault(key, []).append(f"{db_path.parent.name}/{service}")
    return used


def remove_environment(key: str, *, force: bool = False) -> Removal:
    """Delete one environment; refused (ConflictError) while a service uses it, unless force."""
    env = find_environment(key)
    users = services_using().get(env.key, [])
    if users and not force:
        raise ConflictError(
            f"environment {env.key} is used by {', '.join(users)}.",
            fix="Delete those services first, or pass --force (they will fail on restart).",
        )
    with environment_lock(env.key):
        discard(envs_dir() / env.key)
    return Removal(env.key, env.path, "deleted")


def prune(
    *, older_than: timedelta | None = DEFAULT_PRUNE_AGE, dry_run: bool = False
) -> list[Removal]:
    """Delete environments no service uses and nobody asked for within `older_than`
    (None: whatever their age), and the leftovers of killed builds."""
    root = envs_dir()
    if not root.is_dir():
        return []
    removed = []
    for leftover in sorted([*root.glob(".building-*"), *root.glob(".trash-*")]):
        key = leftover.name.split("-")[1]
        if leftover.name.startswith(".trash-") or lock_is_free(key):
            if not dry_run:
                shutil.rmtree(leftover, ignore_errors=True)
            removed.append(Removal(key, leftover, "leftover of an interrupted build or delete"))
    used = services_using()
    cutoff = time.time() - older_than.total_seconds() if older_than is not None else None
    for env in list_environments():
        if env.key in used:
            continue
        if cutoff is not None and _last_used(env) > cutoff:
            continue
        if not dry_run:
            with environment_lock(env.key):
                # Checked again under the lock: a deploy may have just asked for it.
                if cutoff is not None and _last_used(env) > cutoff:
                    continue
                discard(env.path)
        removed.append(Removal(env.key, env.path, "unused"))
    return removed


def disk_usage(path: Path) -> int:
    """Bytes the folder's files take (each inode once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                stat = os.lstat(Path(root) / name)
            except FileNotFoundError:
                continue
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_blocks * 512
    return total


def _last_used(env: Environment) -> float:
    try:
        return (env.path / LAST_USED).stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _service_documents(db_path: Path) -> list[tuple[str, str]]:
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=60)
        try:
            return list(conn.execute("SELECT name, document FROM services"))
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # a workspace from before deploy existed: no services
        raise MlcliError(
            f"cannot read the services of {db_path} ({exc}), so cannot tell which "
            "environments are in use.",
            fix="Retry when no other ml command holds the workspace, or check the file.",
        ) from exc
