"""Reading what a service's ModelDataCollector wrote, so nobody needs to know the layout.

The scoring server (mlcli/server/collect.py) writes, below the workspace's collected_dir:
    <service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<name>.parquet  (+ <name>.csv)
Parquet is read when pyarrow is installed and the file has one; else the CSV twin (a server
whose environment had no pyarrow writes CSV only). Hidden files are writes in progress.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcli.errors import ConfigError, NotFoundError
from mlcli.paths import Workspace

TIMESTAMP = "$aml_dc_scoring_timestamp"
DESIGNATIONS = ("inputs", "predictions", "labels", "signals", "general")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class CollectedData:
    """Rows of one designation, oldest first, with the union of their columns in order."""

    service: str
    designation: str
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    files: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "designation": self.designation,
            "columns": list(self.columns),
            "rows": self.rows,
            "files": self.files,
        }


def parse_since(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """'30m', '1d', '2w' back from now, or an ISO date/time (UTC when it has no offset)."""
    now = now or dt.datetime.now(dt.UTC)
    match = _DURATION.match(text.strip().lower())
    if match:
        return now - dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{text!r} is neither a duration nor a date.",
            where="--since",
            fix="Give a duration such as 30m, 12h, 1d or 2w, or a date such as 2026-12-01.",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def read_collected(
    service: str,
    *,
    designation: str = "inputs",
    since: dt.datetime | None = None,
    model: str | None = None,
    workspace: Workspace | None = None,
) -> CollectedData:
    """The rows a service collected for one designation, since a moment (UTC)."""
    workspace = workspace or Workspace.named()
    if designation not in DESIGNATIONS:
        raise ConfigError(
            f"designation {designation!r} is not one of {', '.join(DESIGNATIONS)}.",
            where="--designation",
            fix="Use the designation the entry script gives ModelDataCollector.",
        )
    root = workspace.collected_dir / service
    if not root.is_dir() and not _service_known(workspace, service):
        raise NotFoundError(
            f"service {service!r} does not exist in workspace {workspace.name!r} and has no "
            "collected data.",
            fix="See the services with `ml service list`.",
        )
    files = list(_data_files(root, designation, model, since))
    columns: dict[str, None] = {}
    rows: list[dict[str, Any]] = []
    for path in files:
        for row in _read(path):
            if since is not None and not _after(row, since, path):
                continue
            columns.update(dict.fromkeys(row))
            rows.append(row)
    rows.sort(key=lambda row: str(row.get(TIMESTAMP) or ""))
    return CollectedData(service, designation, tuple(columns), rows, len(files))


def _service_known(workspace: Workspace, service: str) -> bool:
    if not workspace.db_path.is_file():
        return False
    from mlcli.services import Services

    services = Services.open(workspace)
    try:
        return services.find(service) is not None
    finally:
        services.close()


def _data_files(
    root: Path, designation: str, model: str | None, since: dt.datetime | None
) -> Iterator[Path]:
    """One file per flush: the Parquet one, or its CSV twin when there is no Parquet."""
    first_day = since.astimezone(dt.UTC).date() if since else None
    pattern = f"{model or '*'}/*/{designation}/*/*/*"
    for day_dir in sorted(root.glob(pattern)):
        if first_day is not None and _day(day_dir) < first_day:
            continue
        names = {p.name for p in day_dir.iterdir() if not p.name.startswith(".")}
        parquet = _has_pyarrow()
        for name in sorted(names):
            stem, _, suffix = name.rpartition(".")
            twin_read = parquet and f"{stem}.parquet" in names
            if (suffix == "parquet" and parquet) or (suffix == "csv" and not twin_read):
                yield day_dir / name


def _day(day_dir: Path) -> dt.date:
    try:
        year, month, day = (int(part) for part in day_dir.parts[-3:])
        return dt.date(year, month, day)
    except ValueError:
        return dt.date.max  # not ours: keep it rather than hide it


def _after(row: dict[str, Any], since: dt.datetime, path: Path) -> bool:
    stamp = row.get(TIMESTAMP)
    if stamp:
        try:
            moment = dt.datetime.fromisoformat(str(stamp))
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)) >= since
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC) >= since


def _read(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True
