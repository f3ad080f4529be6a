"""A service's collected model data as a drift target, in the layout Azure's collector uses.

  <workspace>/collected/<service>/<model>/<version>/<designation>/<yyyy>/<mm>/<dd>/*.parquet

Each data file may have a `.csv` twin; the parquet one is read when both exist. Columns named
`$aml_*` are the collector's metadata; `$aml_dc_scoring_timestamp` (ISO 8601, UTC) places a row
in time. Day folders before `--since` are not opened at all.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from mlcli.drift.tables import Table, open_files
from mlcli.errors import NotFoundError
from mlcli.models import ModelRef
from mlcli.paths import Workspace

METADATA_PREFIX = "$aml_"
TIMESTAMP_COLUMN = "$aml_dc_scoring_timestamp"
DEFAULT_DESIGNATION = "inputs"


def open_collected(
    workspace: Workspace,
    service: str,
    *,
    model: ModelRef | None = None,
    designation: str = DEFAULT_DESIGNATION,
    since: date | None = None,
) -> Table:
    """The collected `designation` data of `service` (of one model or version, if given)."""
    from mlcli.services import check_service_name

    check_service_name(service, where="--service")
    root = workspace.collected_dir / service
    files = data_files(root, model=model, designation=designation, since=since)
    if not files:
        searched = _searched(root, model, designation)
        window = f" since {since.isoformat()}" if since else ""
        raise NotFoundError(
            f"service {service!r} has no collected {designation!r} data{window} "
            f"(searched {searched}).",
            where="--service",
            fix="Collect model data in the entry script (ModelDataCollector) and score some "
            "requests first, or compare a file with --target.",
        )
    return open_files(files, label=f"--service {service}")


def data_files(
    root: Path, *, model: ModelRef | None, designation: str, since: date | None
) -> list[Path]:
    """Data files below `root`, one per stem: parquet when there is one, else its csv twin."""
    chosen: dict[Path, Path] = {}
    for day_dir in _day_dirs(root, model, designation):
        if since is not None and _day_of(day_dir) < since:
            continue
        for path in sorted(day_dir.iterdir()):
            suffix = path.suffix.lower()
            if not path.is_file() or suffix not in (".parquet", ".csv"):
                continue
            stem = path.with_suffix("")
            if suffix == ".parquet" or stem not in chosen:
                chosen[stem] = path
    return [chosen[stem] for stem in sorted(chosen)]


def _day_dirs(root: Path, model: ModelRef | None, designation: str) -> list[Path]:
    model_glob = model.name if model else "*"
    version_glob = str(model.version) if model and model.version is not None else "*"
    pattern = f"{model_glob}/{version_glob}/{designation}/[0-9]*/[0-9]*/[0-9]*"
    return sorted(p for p in root.glob(pattern) if p.is_dir())


def _day_of(day_dir: Path) -> date:
    try:
        return date(int(day_dir.parent.parent.name), int(day_dir.parent.name), int(day_dir.name))
    except ValueError:  # not a real date: keep it rather than drop data silently
        return date.max


def _searched(root: Path, model: ModelRef | None, designation: str) -> Path:
    model_part = model.name if model else "<model>"
    version_part = str(model.version) if model and model.version is not None else "<version>"
    return root / model_part / version_part / designation / "<yyyy>/<mm>/<dd>"
