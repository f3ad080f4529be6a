"""A baseline or a target: files read one column at a time, so memory follows one column.

Parquet is read lazily through `pyarrow.dataset` (a column is decoded only when asked for);
CSV has no columns on disk, so a CSV file is parsed once, whole, with pyarrow's reader. Several
files (a service's collected data) are one table whose schema is the union of theirs: a column
one file lacks reads as nulls there, a type widened in a later file (int -> float) is widened
everywhere, and a column that is a timestamp in some files and text in others (pyarrow's CSV
reader recognises ISO 8601 times; a parquet writer may have kept them as strings) is text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.dataset as pa_ds
import pyarrow.parquet as pq

from mlcli.errors import ConfigError, NotFoundError

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True, slots=True)
class Table:
    """Named columns over one or more files; `label` names it in messages ("--target x.csv")."""

    label: str
    paths: tuple[Path, ...]
    schema: pa.Schema
    num_rows: int
    _parts: tuple[pa.Table | pa_ds.Dataset, ...] = field(repr=False)

    @property
    def column_names(self) -> list[str]:
        return self.schema.names

    def type_of(self, name: str) -> pa.DataType:
        return self.schema.field(name).type

    def column(self, name: str) -> pa.ChunkedArray:
        """One column from every file, in the table's type (nulls where a file lacks it)."""
        wanted = self.type_of(name)
        chunks: list[pa.Array] = []
        for part in self._parts:
            if name not in part.schema.names:
                chunks.append(pa.nulls(_rows(part), wanted))
                continue
            read = part.column(name) if isinstance(part, pa.Table) else _read(part, name)
            chunks.extend(c if c.type == wanted else c.cast(wanted) for c in read.chunks)
        return pa.chunked_array(chunks, type=wanted)


def open_file(path: Path, *, option: str) -> Table:
    """A baseline or target file (.csv or .parquet), checked and opened; `option` names the flag."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{path} is neither a .csv nor a .parquet file.",
            where=option,
            fix="Give a .csv or .parquet file (a folder of collected data: use --service).",
        )
    if not path.is_file():
        raise NotFoundError(
            f"{path} does not exist.", where=option, fix="Check the path (relative to here)."
        )
    return open_files([path], label=f"{option} {path}")


def open_files(paths: list[Path], *, label: str) -> Table:
    """Several files as one table: parquet files lazily (one dataset per schema), csv now."""
    parts: list[pa.Table | pa_ds.Dataset] = []
    groups: list[tuple[pa.Schema, list[Path]]] = []
    for path in paths:
        if SUFFIXES.get(path.suffix.lower()) == "csv":
            parts.append(_read_csv(path, label))
            continue
        schema = _parquet_schema(path, label)
        group = next((files for known, files in groups if known.equals(schema)), None)
        if group is None:
            groups.append((schema, [path]))
        else:
            group.append(path)
    for schema, files in groups:
        parts.append(pa_ds.dataset([str(p) for p in files], schema=schema, format="parquet"))
    schema = _unify([part.schema for part in parts], label) if parts else pa.schema([])
    num_rows = sum(_rows(part) for part in parts)
    return Table(label, tuple(paths), schema, num_rows, tuple(parts))


def _read(dataset: pa_ds.Dataset, name: str) -> pa.ChunkedArray:
    return dataset.to_table(columns=[name]).column(name)


def _rows(part: pa.Table | pa_ds.Dataset) -> int:
    return part.num_rows if isinstance(part, pa.Table) else part.count_rows()


def _read_csv(path: Path, label: str) -> pa.Table:
    try:
        return pa_csv.read_csv(path)
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return pa.table({})
        raise _unreadable(path, label, exc) from exc


def _parquet_schema(path: Path, label: str) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(path, label, exc) from exc


def _unify(schemas: list[pa.Schema], label: str) -> pa.Schema:
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        problem = exc
    textual = _times_and_text(schemas)
    if textual:
        as_text = [
            pa.schema([f.with_type(pa.string()) if f.name in textual else f for f in schema])
            for schema in schemas
        ]
        try:
            return pa.unify_schemas(as_text, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            problem = exc
    raise ConfigError(
        f"the files of {label} disagree on a column's type: {_first_line(problem)}.",
        where=label,
        fix="Give files with the same columns and types.",
    ) from problem


def _times_and_text(schemas: list[pa.Schema]) -> set[str]:
    """Columns that are timestamps in some files and strings in others."""
    kinds: dict[str, set[str]] = {}
    for schema in schemas:
        for column in schema:
            if pa.types.is_timestamp(column.type):
                kinds.setdefault(column.name, set()).add("time")
            elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                kinds.setdefault(column.name, set()).add("text")
    return {name for name, seen in kinds.items() if seen == {"time", "text"}}


def _unreadable(path: Path, label: str, exc: Exception) -> ConfigError:
    return ConfigError(
        f"{path} could not be read as {path.suffix.lstrip('.')}: {_first_line(exc)}.",
        where=label,
        fix="Check that the file is complete and in the format its name says.",
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
