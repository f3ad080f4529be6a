"""One drift run: check the baseline and the target against each other, compare every feature
overall and per time bucket, decide against the threshold, keep the record.

Columns are read one at a time (baseline, then target) and let go before the next, so memory
follows the largest column, not the table. A feature counts as drifted when its drift reaches
the threshold and its test says the change is not chance (p below 0.05 divided by the number of
features compared: Bonferroni's correction, so twenty features do not give twenty chances of a
false alarm). The run's magnitude is the largest drift among the features whose change is real.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from mlcli.drift import buckets as time_buckets
from mlcli.drift import features as kinds
from mlcli.drift import statistics
from mlcli.drift.collected import open_collected
from mlcli.drift.features import Kind
from mlcli.drift.request import (
    DriftRequest,
    check_not_empty,
    check_request,
    choose_features,
)
from mlcli.drift.runs import save_run
from mlcli.drift.statistics import Comparison
from mlcli.drift.tables import Table, open_file
from mlcli.errors import ConfigError
from mlcli.paths import Workspace

SIGNIFICANCE = 0.05


@dataclass(slots=True)
class _FeatureResult:
    feature: str
    column: str
    kind: Kind
    overall: Comparison
    distribution: dict[str, Any]
    per_bucket: list[Comparison] = field(default_factory=list)


def run_drift(
    request: DriftRequest,
    *,
    workspace: Workspace,
    on_progress: Callable[[str], None] = lambda _line: None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compare, keep the run in the workspace, write the report if asked; returns the record."""
    check_request(request)
    now = now or datetime.now(UTC)
    since = now - request.since if request.since is not None else None
    baseline = open_file(request.baseline, option="--baseline")
    target = _open_target(request, workspace, since)
    check_not_empty(baseline)
    check_not_empty(target)
    chosen, skipped = choose_features(request, baseline, target)
    buckets = _buckets(request, target, since)

    results: list[_FeatureResult] = []
    for column in chosen:
        results.extend(_compare_column(column, baseline, target, buckets))
        pa.default_memory_pool().release_unused()  # the column's buffers, back to the system
        on_progress(f"compared {column}")
    record = _record(request, baseline, target, buckets, results, skipped, now)
    record["target"]["since"] = since.isoformat(timespec="seconds") if since else None
    record["report"] = str(request.report.absolute()) if request.report else None
    saved = save_run(workspace, record)
    if request.report is not None:
        from mlcli.drift.report import write_report

        write_report(saved, request.report)
    return saved


def _open_target(request: DriftRequest, workspace: Workspace, since: datetime | None) -> Table:
    if request.target is not None:
        return open_file(request.target, option="--target")
    assert request.service is not None
    return open_collected(
        workspace, request.service, model=request.model, since=since.date() if since else None
    )


def _buckets(request: DriftRequest, target: Table, since: datetime | None) -> time_buckets.Buckets:
    if request.timestamp_column not in target.column_names:
        if since is not None:
            raise ConfigError(
                f"--since needs times, and {target.label} has no "
                f"{request.timestamp_column!r} column.",
                where="--since",
                fix="Leave --since out, or name the target's time column with --timestamp-column.",
            )
        return time_buckets.no_buckets()
    buckets = time_buckets.bucket_rows(
        target.column(request.timestamp_column),
        by=request.by,
        since=since,
        where=f"{target.label}, column {request.timestamp_column}",
    )
    if buckets.kept == 0:
        window = f" since {since.isoformat(timespec='seconds')}" if since else ""
        raise ConfigError(
            f"{target.label} has no rows with a time{window}.",
            where="--since" if since else target.label,
            fix="Widen --since, or wait for the service to collect more data.",
        )
    return buckets


def _compare_column(
    column: str, baseline: Table, target: Table, buckets: time_buckets.Buckets
) -> list[_FeatureResult]:
    base_column, target_column = baseline.column(column), target.column(column)
    if base_column.null_count == len(base_column):
        raise ConfigError(
            f"feature {column!r} has no values in the baseline (every row is empty).",
            where=baseline.label,
            fix="Leave it out with --features, or fill it in the baseline.",
        )
    storage = kinds.storage_kind(baseline.type_of(column))
    assert storage is not None
    kind = kinds.classify(storage, base_column)
    if kind is Kind.CATEGORICAL:
        return [_compare_categories(column, base_column, target_column, buckets)]
    if kind is Kind.NUMERIC:
        derived = [(column, kinds.numeric_values(base_column), kinds.numeric_values(target_column))]
    else:
        derived = kinds.text_features(column, base_column, target_column)
    del base_column, target_column
    return [_compare_numbers(name, column, kind, base, aim, buckets) for name, base, aim in derived]


def _compare_numbers(
    name: str,
    column: str,
    kind: Kind,
    baseline: np.ndarray,
    target: np.ndarray,
    buckets: time_buckets.Buckets,
) -> _FeatureResult:
    base = np.sort(statistics.present(baseline))  # sorted once: re-sorting it is then quick
    kept = target[buckets.overall()]
    aim = statistics.present(kept)
    result = _FeatureResult(
        feature=name,
        column=column,
        kind=kind,
        overall=statistics.compare_numeric(base, aim),
        distribution=statistics.numeric_histogram(base, aim),
    )
    del aim, kept
    for _start, rows in buckets.each():
        result.per_bucket.append(statistics.compare_numeric(base, statistics.present(target[rows])))
    return result


def _compare_categories(
    column: str,
    baseline: pa.ChunkedArray,
    target: pa.ChunkedArray,
    buckets: time_buckets.Buckets,
) -> _FeatureResult:
    base = statistics.category_counts(kinds.categorical_values(baseline))
    values = kinds.categorical_values(target)
    kept = time_buckets.rows_of(values, buckets.overall())
    aim = statistics.category_counts(kept)
    result = _FeatureResult(
        feature=column,
        column=column,
        kind=Kind.CATEGORICAL,
        overall=statistics.compare_categorical(base, aim),
        distribution=statistics.categorical_histogram(base, aim),
    )
    for _start, rows in buckets.each():
        counts = statistics.category_counts(time_buckets.rows_of(values, rows))
        result.per_bucket.append(statistics.compare_categorical(base, counts))
    return result


def _record(
    request: DriftRequest,
    baseline: Table,
    target: Table,
    buckets: time_buckets.Buckets,
    results: list[_FeatureResult],
    skipped: dict[str, str],
    now: datetime,
) -> dict[str, Any]:
    alpha = SIGNIFICANCE / len(results)
    threshold = request.threshold
    features = sorted(
        (_feature_entry(r, alpha, threshold) for r in results),
        key=lambda f: (-f["drift"], f["feature"]),
    )
    magnitude = _magnitude([r.overall for r in results], alpha)
    return {
        "name": request.name,
        "createdTime": now.isoformat(timespec="seconds"),
        "threshold": threshold,
        "magnitude": magnitude,
        "overThreshold": bool(magnitude >= threshold),
        "driftedFeatures": [f["feature"] for f in features if f["drifted"]],
        "baseline": {"path": str(request.baseline.absolute()), "rows": baseline.num_rows},
        "target": _target_entry(request, target, buckets),
        "by": request.by if buckets.starts else None,
        "significanceLevel": alpha,
        "features": features,
        "buckets": [
            _bucket_entry(index, start, buckets, results, alpha, threshold)
            for index, (start, _rows) in enumerate(buckets.each())
        ],
        "skippedColumns": skipped,
    }


def _feature_entry(result: _FeatureResult, alpha: float, threshold: float) -> dict[str, Any]:
    significant = bool(result.overall.p_value < alpha)
    return {
        "feature": result.feature,
        "column": result.column,
        "kind": str(result.kind),
        "drift": round(result.overall.drift, 6),
        "pValue": result.overall.p_value,
        "significant": significant,
        "drifted": significant and result.overall.drift >= threshold,
        "metrics": result.overall.metrics,
        "distribution": result.distribution,
    }


def _bucket_entry(
    index: int,
    start: datetime,
    buckets: time_buckets.Buckets,
    results: list[_FeatureResult],
    alpha: float,
    threshold: float,
) -> dict[str, Any]:
    comparisons = [r.per_bucket[index] for r in results]
    magnitude = _magnitude(comparisons, alpha)
    return {
        "start": start.isoformat(timespec="seconds"),
        "rows": buckets.bounds[index + 1] - buckets.bounds[index],
        "magnitude": magnitude,
        "overThreshold": bool(magnitude >= threshold),
        "drift": {r.feature: round(c.drift, 6) for r, c in zip(results, comparisons, strict=True)},
    }


def _magnitude(comparisons: list[Comparison], alpha: float) -> float:
    real = [c.drift for c in comparisons if c.p_value < alpha]
    return round(max(real, default=0.0), 6)


def _target_entry(
    request: DriftRequest, target: Table, buckets: time_buckets.Buckets
) -> dict[str, Any]:
    entry: dict[str, Any] = (
        {"path": str(request.target.absolute())}
        if request.target is not None
        else {
            "service": request.service,
            "model": str(request.model) if request.model else None,
            "files": len(target.paths),
        }
    )
    entry["rows"] = target.num_rows if buckets.kept is None else buckets.kept
    entry["from"] = buckets.first.isoformat(timespec="seconds") if buckets.first else None
    entry["to"] = buckets.last.isoformat(timespec="seconds") if buckets.last else None
    return entry
