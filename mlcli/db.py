"""The workspace's SQLite file: connection settings, the schema and its migrations.

All DDL lives here. Each entry of MIGRATIONS moves the schema one step; PRAGMA user_version
records how many steps a file has had. A new table or column is a new entry at the end, never
an edit of an old one, so an existing registry upgrades in place on its next open.
"""

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mlcli.errors import MlcliError
from mlcli.paths import DEFAULT_WORKSPACE, Workspace

BUSY_TIMEOUT_S = 60.0

MIGRATIONS: tuple[str, ...] = (
    # 1: models, their versions and files (foundation); services (deploy).
    """
    CREATE TABLE models (
        name TEXT PRIMARY KEY,
        next_version INTEGER NOT NULL DEFAULT 1,   -- never decreases: deleted numbers stay used
        created_time TEXT NOT NULL
    );
    CREATE TABLE model_versions (
        name TEXT NOT NULL REFERENCES models(name),
        version INTEGER NOT NULL,
        created_time TEXT NOT NULL,
        description TEXT,
        tags TEXT NOT NULL DEFAULT '{}',
        properties TEXT NOT NULL DEFAULT '{}',
        framework TEXT,
        framework_version TEXT,
        root_name TEXT NOT NULL,
        is_dir INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE model_files (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        path TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (name, version, path),
        FOREIGN KEY (name, version) REFERENCES model_versions(name, version) ON DELETE CASCADE
    );
    CREATE INDEX model_files_sha256 ON model_files(sha256);
    CREATE TABLE services (
        name TEXT PRIMARY KEY,
        compute_type TEXT NOT NULL,
        state TEXT NOT NULL,
        document TEXT NOT NULL DEFAULT '{}',
        created_time TEXT NOT NULL,
        updated_time TEXT NOT NULL
    );
    CREATE TABLE service_models (
        service TEXT NOT NULL REFERENCES services(name) ON DELETE CASCADE,
        model_name TEXT NOT NULL,
        model_version INTEGER NOT NULL,
        PRIMARY KEY (service, model_name, model_version)
    );
    """,
    # 2: when a model version last changed (tags, properties, description), v1's updatedTime.
    """
    ALTER TABLE model_versions ADD COLUMN updated_time TEXT;
    """,
)


def connect(workspace: Workspace, *, create: bool = True) -> sqlite3.Connection:
    """Open (creating if needed) the workspace's registry.db, migrated to the current schema.

    The connection is in autocommit mode: writers group their statements with `immediate()`.
    With `create=False` (commands that read) a workspace that does not exist is never made:
    the default one reads as empty (a new machine lists no models), any other is an error
    naming the workspaces there are (a mistyped -w must not pass as an empty workspace).
    """
    target: Path | str = workspace.db_path
    if not create and not workspace.db_path.exists():
        from mlcli.workspace_index import missing_workspace

        if workspace.name != DEFAULT_WORKSPACE:
            raise missing_workspace(workspace.name)
        target = ":memory:"
    try:
        if target != ":memory:":
            make_private(workspace.root, workspace.db_path)
        conn = sqlite3.connect(
            target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise MlcliError(
            f"cannot open the registry {workspace.db_path}: {exc}.",
            fix="Check that MLCLI_HOME points at a writable folder.",
        ) from exc
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    conn.execute("PRAGMA foreign_keys = ON")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable against process death
    _migrate(conn)
    return conn


def make_private(root: Path, db_path: Path) -> None:
    """The workspace folder 0700 and registry.db 0600 (SQLite gives its -wal and -shm files
    the database's mode): service records, logs and keys are no other local user's business."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.stat().st_mode & 0o077:
        root.chmod(0o700)  # a workspace made before this rule
    # Created 0600 when new. Never open an existing registry.db here: closing any descriptor
    # of a file drops every POSIX lock this process holds on it, the locks of its open SQLite
    # connections included (the SDK keeps one while the CLI runs in the same process), and
    # SQLite then reports a disk I/O error.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(db_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    if db_path.stat().st_mode & 0o077:
        db_path.chmod(0o600)


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction that takes the write lock at BEGIN, so read-then-write is atomic."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Several reads that see one state of the file (joins a transaction already open)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _enable_wal(conn: sqlite3.Connection) -> None:
    # Switching a fresh file to WAL needs a moment of exclusive access; when many processes
    # open a new registry at once SQLite can answer "locked" without consulting busy_timeout.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _migrate(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA user_version").fetchone()[0] >= len(MIGRATIONS):
        return
    with immediate(conn):  # re-read under the write lock: another process may have migrated
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for step, ddl in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in ddl.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step}")


def now() -> str:
    """A row's timestamp: UTC, ISO 8601 to the microsecond (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
