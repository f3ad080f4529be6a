"""What `ml datadrift run` is asked, and what it refuses before it compares a single value.

These checks need only the flags, the files' schemas and their row counts, so a mistake (a
missing column, a number compared with text, an empty target) is reported before a single
value is read; no check, here or later, leaves a run record behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

from mlcli.drift import buckets as time_buckets
from mlcli.drift import features as kinds
from mlcli.drift.collected import METADATA_PREFIX, TIMESTAMP_COLUMN
from mlcli.drift.runs import check_name
from mlcli.drift.tables import Table
from mlcli.errors import ConfigError
from mlcli.models import ModelRef

DEFAULT_THRESHOLD = 0.2  # azureml-datadrift's DataDriftDetector default


@dataclass(frozen=True, slots=True)
class DriftRequest:
    """What `ml datadrift run` was asked: a baseline file and one target (file or service)."""

    name: str
    baseline: Path
    target: Path | None = None
    service: str | None = None
    model: ModelRef | None = None
    features: tuple[str, ...] = ()
    since: timedelta | None = None
    threshold: float = DEFAULT_THRESHOLD
    by: str = "day"
    timestamp_column: str = TIMESTAMP_COLUMN
    report: Path | None = None


def check_request(request: DriftRequest) -> None:
    """The flags make sense together (before any file is opened)."""
    check_name(request.name)
    if (request.target is None) == (request.service is None):
        raise ConfigError(
            "give either a target file or a service, not both or neither.",
            where="--target / --service",
            fix="Pass --target FILE (.csv or .parquet) or --service NAME (its collected inputs).",
        )
    if request.model is not None and request.service is None:
        raise ConfigError(
            "--model picks a model's data among a service's collected data.",
            where="--model",
            fix="Use it with --service, or leave it out.",
        )
    if not 0 < request.threshold <= 1:
        raise ConfigError(
            f"threshold {request.threshold} is outside (0, 1].",
            where="--threshold",
            fix=f"Drift magnitudes lie between 0 and 1; Azure's default is {DEFAULT_THRESHOLD}.",
        )
    if request.by not in time_buckets.UNITS:
        raise ConfigError(
            f"{request.by!r} is not a time bucket.",
            where="--by",
            fix=f"Use one of {', '.join(time_buckets.UNITS)}.",
        )
    if request.report is not None:
        from mlcli.drift.report import check_report_path

        check_report_path(request.report)


def check_not_empty(table: Table) -> None:
    if table.num_rows == 0:
        raise ConfigError(
            "there are no rows.",
            where=table.label,
            fix="Compare data that has rows: drift needs values on both sides.",
        )


def choose_features(
    request: DriftRequest, baseline: Table, target: Table
) -> tuple[list[str], dict[str, str]]:
    """The columns to compare, checked on both sides; and the columns left out, with why."""
    skipped: dict[str, str] = {}
    if request.features:
        absent = [f for f in request.features if f not in baseline.column_names]
        if absent:
            raise ConfigError(
                f"the baseline has no column{'s' if len(absent) > 1 else ''} {_names(absent)} "
                f"(it has {_names(baseline.column_names)}).",
                where=f"--features, --baseline {request.baseline}",
                fix="Name columns of the baseline in --features, or leave it out for all.",
            )
        chosen = list(dict.fromkeys(request.features))
    else:
        chosen = []
        for column in baseline.column_names:
            if column.startswith(METADATA_PREFIX) or column == request.timestamp_column:
                continue
            if kinds.storage_kind(baseline.type_of(column)) is None:
                skipped[column] = f"type {baseline.type_of(column)} is not compared"
                continue
            chosen.append(column)
    if not chosen:
        raise ConfigError(
            f"{baseline.label} has no numeric, categorical or text column to compare.",
            where="--baseline",
            fix="Give a baseline with feature columns (numbers or text).",
        )
    missing = [c for c in chosen if c not in target.column_names]
    if missing:
        raise ConfigError(
            f"no column{'s' if len(missing) > 1 else ''} {_names(missing)}, which the baseline has "
            f"(the target's columns: {_names(_features_of(target))}).",
            where=target.label,
            fix="Send the same features as the baseline, or pick shared ones with --features.",
        )
    mismatched = []
    for column in chosen:
        base, aim = baseline.type_of(column), target.type_of(column)
        base_kind, aim_kind = kinds.storage_kind(base), kinds.storage_kind(aim)
        if base_kind is None:
            mismatched.append(f"{column!r} has type {base}, which drift does not compare")
        elif base_kind != aim_kind and not (aim_kind is None and pa.types.is_null(aim)):
            mismatched.append(f"{column!r} is {base} in the baseline but {aim} in the target")
    if mismatched:
        raise ConfigError(
            "column types differ: " + "; ".join(mismatched) + ".",
            where=f"--baseline {request.baseline}, {target.label}",
            fix="Make each feature the same kind on both sides (numbers with numbers, text with "
            "text), or leave it out with --features.",
        )
    return chosen, skipped


def _names(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:12])
    return shown + (f" and {len(names) - 12} more" if len(names) > 12 else "")


def _features_of(table: Table) -> list[str]:
    return [c for c in table.column_names if not c.startswith(METADATA_PREFIX)]
