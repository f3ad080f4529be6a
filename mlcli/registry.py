"""The model registry: named, numbered model versions in SQLite, their bytes in the store.

`register` checks the whole input before writing anything, copies the files into the
content-addressed store (mlcli/store.py), and only then allocates `name:N` and commits the rows,
in one BEGIN IMMEDIATE transaction. Version numbers come from a per-name counter that only grows,
so a deleted number is never handed out again (as in Azure ML).

The records it hands out (ModelRef, ModelVersion, ModelFile, check_name) are defined in
models.py and importable from here as well.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mlcli import db
from mlcli.errors import ConflictError, MlcliError, NotFoundError
from mlcli.labels import changed_labels, matches
from mlcli.model_files import ProgressReporter, collect_sources, human_size
from mlcli.models import ModelFile, ModelRef, ModelVersion, check_name
from mlcli.paths import Workspace
from mlcli.store import Store, place_copy, verify_blob
from mlcli.workspace_index import elsewhere_hint


class Registry:
    """One workspace's models. Open it with `Registry.open(workspace)`."""

    def __init__(self, workspace: Workspace, conn: sqlite3.Connection) -> None:
        self.workspace = workspace
        self.conn = conn
        self.store = Store(workspace.store_dir)

    @classmethod
    def open(cls, workspace: str | Workspace | None = None, *, create: bool = True) -> Registry:
        """The workspace's registry; `create=False` for commands that only read (db.connect)."""
        if not isinstance(workspace, Workspace):
            workspace = Workspace.named(workspace)
        return cls(workspace, db.connect(workspace, create=create))

    def close(self) -> None:
        self.conn.close()

    # -- register -------------------------------------------------------------------------

    def register(
        self,
        path: str | os.PathLike[str],
        name: str,
        *,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        framework: str | None = None,
        framework_version: str | None = None,
        child_paths: Iterable[str] = (),
        on_progress: Callable[[str], None] | None = None,
    ) -> ModelVersion:
        """Copy a file or folder into the store and record it as the next version of `name`."""
        check_name(name)
        root, is_dir, sources = collect_sources(Path(path), tuple(child_paths))
        total = sum(s.size for s in sources)
        files: list[ModelFile] = []
        report = ProgressReporter(on_progress, total, len(sources))
        with self.store.writing(self._referenced) as session:
            for source in sources:
                size, digest = session.add(source.abspath, report.add_bytes)
                if size != source.size:
                    raise MlcliError(
                        f"{source.abspath} changed size while it was being registered.",
                        fix="Register it again once nothing is writing to it.",
                    )
                files.append(ModelFile(source.relpath, size, digest))
                report.file_done()
            report.finish()
            if on_progress is not None:
                on_progress(f"writing {human_size(total)} to disk")
            session.make_durable()
            now = db.now()
            with db.immediate(self.conn):
                row = self.conn.execute(
                    "SELECT next_version FROM models WHERE name = ?", (name,)
                ).fetchone()
                version = row["next_version"] if row else 1
                if row:
                    self.conn.execute(
                        "UPDATE models SET next_version = ? WHERE name = ?", (version + 1, name)
                    )
                else:
                    self.conn.execute(
                        "INSERT INTO models (name, next_version, created_time) VALUES (?, 2, ?)",
                        (name, now),
                    )
                self.conn.execute(
                    "INSERT INTO model_versions (name, version, created_time, description, tags,"
                    " properties, framework, framework_version, root_name, is_dir)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        version,
                        now,
                        description,
                        json.dumps(dict(tags or {})),
                        json.dumps(dict(properties or {})),
                        framework,
                        framework_version,
                        root.name,
                        int(is_dir),
                    ),
                )
                self.conn.executemany(
                    "INSERT INTO model_files (name, version, path, size, sha256)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [(name, version, f.path, f.size, f.sha256) for f in files],
                )
        return self.get(name, version)

    # -- read -----------------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """One version of `name`, the latest when `version` is None."""
        with db.snapshot(self.conn):
            return self._get(name, version)

    def _get(self, name: str, version: int | None) -> ModelVersion:
        if version is None:
            row = self.conn.execute(
                "SELECT * FROM model_versions WHERE name = ? ORDER BY version DESC LIMIT 1",
                (name,),
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT * FROM model_versions WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
        if row is None:
            raise self._not_found(name, version)
        return self._load([row])[0]

    def resolve(self, ref: ModelRef) -> ModelVersion:
        return self.get(ref.name, ref.version)

    def list(
        self,
        name: str | None = None,
        *,
        tags: Mapping[str, str | None] | None = None,
        properties: Mapping[str, str | None] | None = None,
        latest: bool = False,
    ) -> list[ModelVersion]:
        """Versions by name, newest first; `tags`/`properties` map key -> value (None: any)."""
        sql = "SELECT * FROM model_versions"
        args: tuple[Any, ...] = ()
        if name is not None:
            sql, args = sql + " WHERE name = ?", (name,)
        with db.snapshot(self.conn):  # versions and files from one consistent state
            rows = self.conn.execute(sql + " ORDER BY name, version DESC", args).fetchall()
            if latest:  # rows come newest first within each name
                rows = [r for i, r in enumerate(rows) if i == 0 or rows[i - 1]["name"] != r["name"]]
            models = self._load(rows)
        return [
            m
            for m in models
            if matches(m.tags, tags or {}) and matches(m.properties, properties or {})
        ]

    def in_use_by(self, name: str, version: int) -> list[str]:
        """Services whose rows name this model version."""
        rows = self.conn.execute(
            "SELECT service FROM service_models WHERE model_name = ? AND model_version = ?"
            " ORDER BY service",
            (name, version),
        ).fetchall()
        return [r["service"] for r in rows]

    # -- change ---------------------------------------------------------------------------

    def update(
        self,
        name: str,
        version: int | None = None,
        *,
        add_tags: Mapping[str, str] | None = None,
        remove_tags: Iterable[str] = (),
        add_properties: Mapping[str, str] | None = None,
        description: str | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> ModelVersion:
        """Change tags and description; properties can only be added, as in Azure ML. Tags are
        added, then removed (Azure's order); a tag to remove that is not there is only reported
        to `on_warning`, as Azure's SDK prints it."""
        with db.immediate(self.conn):
            current = self.get(name, version)
            tags, props = changed_labels(
                current.tags,
                current.properties,
                add_tags=add_tags,
                remove_tags=remove_tags,
                add_properties=add_properties,
                owner=f"model {current.id}",
                fix="Use a tag for values that change, or register a new version.",
                on_warning=on_warning,
            )
            self.conn.execute(
                "UPDATE model_versions SET tags = ?, properties = ?, description = ?,"
                " updated_time = ? WHERE name = ? AND version = ?",
                (
                    json.dumps(tags),
                    json.dumps(props),
                    current.description if description is None else description,
                    db.now(),
                    current.name,
                    current.version,
                ),
            )
        return self.get(current.name, current.version)

    def delete(self, name: str, version: int, *, force: bool = False) -> ModelVersion:
        """Delete one version; refused while a service uses it, unless `force`."""
        model = self.get(name, version)
        digests = {f.sha256 for f in model.files}
        with self.store.forgetting(digests, self._referenced), db.immediate(self.conn):
            services = self.in_use_by(name, version)
            if services and not force:
                raise ConflictError(
                    f"model {model.id} is used by service(s) {', '.join(services)}.",
                    fix="Delete or update those services first, or pass --force.",
                )
            gone = self.conn.execute(
                "DELETE FROM model_versions WHERE name = ? AND version = ?", (name, version)
            )
            if gone.rowcount == 0:  # another process deleted it since we looked
                raise self._not_found(name, version)
        return model

    # -- files ----------------------------------------------------------------------------

    def materialize(
        self, model: ModelVersion, dest: Path, *, link: bool = True, read_only: bool = True
    ) -> Path:
        """Write dest/<root_name> (the registered file or folder) from the store, atomically.

        The tree is built beside its final place and renamed in, replacing an older copy. With
        `link` and `read_only`, files are hard links to the (read-only) blobs when the store is
        on the same filesystem: instant for large models, no extra disk. `read_only=False` gives
        ordinary writable copies (`ml model download`).
        """
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / model.root_name
        staging = dest / f".{model.root_name}.mlcli-{uuid.uuid4().hex[:12]}"
        try:
            with self.store.reading():
                for f in model.files:
                    blob = self.store.blob_path(f.sha256)
                    verify_blob(blob, f.size, f"{model.id} file {f.path}")
                    out = staging / f.path if model.is_dir else staging
                    out.parent.mkdir(parents=True, exist_ok=True)
                    place_copy(blob, out, link=link, read_only=read_only)
            if target.exists() or target.is_symlink():
                old = dest / f".{model.root_name}.old-{uuid.uuid4().hex[:12]}"
                target.rename(old)
                staging.rename(target)
                _remove(old)
            else:
                staging.rename(target)
        except BaseException:
            _remove(staging)
            raise
        return target

    # -- helpers --------------------------------------------------------------------------

    def _referenced(self, digests: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(digests)
        for i in range(0, len(ordered), 500):
            batch = ordered[i : i + 500]
            marks = ",".join("?" * len(batch))
            rows = self.conn.execute(
                f"SELECT DISTINCT sha256 FROM model_files WHERE sha256 IN ({marks})", batch
            )
            found.update(r[0] for r in rows)
        return found

    def _load(self, rows: list[sqlite3.Row]) -> list[ModelVersion]:
        if not rows:
            return []
        files: dict[tuple[str, int], list[ModelFile]] = {}
        if len(rows) == 1:
            query = "SELECT * FROM model_files WHERE name = ? AND version = ? ORDER BY path"
            file_rows = self.conn.execute(query, (rows[0]["name"], rows[0]["version"]))
        elif len({r["name"] for r in rows}) == 1:
            query = "SELECT * FROM model_files WHERE name = ? ORDER BY path"
            file_rows = self.conn.execute(query, (rows[0]["name"],))
        else:
            file_rows = self.conn.execute("SELECT * FROM model_files ORDER BY path")
        for fr in file_rows:
            files.setdefault((fr["name"], fr["version"]), []).append(
                ModelFile(fr["path"], fr["size"], fr["sha256"])
            )
        return [
            ModelVersion(
                name=r["name"],
                version=r["version"],
                created_time=r["created_time"],
                description=r["description"],
                tags=json.loads(r["tags"]),
                properties=json.loads(r["properties"]),
                framework=r["framework"],
                framework_version=r["framework_version"],
                root_name=r["root_name"],
                is_dir=bool(r["is_dir"]),
                files=tuple(files.get((r["name"], r["version"]), ())),
                updated_time=r["updated_time"] or r["created_time"],
            )
            for r in rows
        ]

    def _not_found(self, name: str, version: int | None) -> NotFoundError:
        versions = [
            r[0]
            for r in self.conn.execute(
                "SELECT version FROM model_versions WHERE name = ? ORDER BY version", (name,)
            )
        ]
        known = self.conn.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone()
        workspace = self.workspace.name
        if version is None or not known:
            elsewhere = "" if known else elsewhere_hint("models", name, workspace)
            return NotFoundError(
                f"no model named {name!r} is registered in workspace {workspace!r}"
                + (" (all its versions were deleted)." if known else ".")
                + elsewhere,
                fix="See the registered names with `ml model list`.",
            )
        return NotFoundError(
            f"model {name!r} has no version {version}"
            + (f"; its versions are {_ranges(versions)}" if versions else "; none is left")
            + f" (workspace {workspace!r}).",
            fix=f"See them with `ml model list -n {name}`.",
        )


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and runs[-1][-1] == n - 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
