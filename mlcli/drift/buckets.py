"""The target's rows in time: which rows a run keeps (--since) and how they group (--by).

Timestamps are ISO 8601 strings (Azure's collector writes `2026-12-03T08:15:00.123Z`) or
parquet timestamps; one without a zone is taken as UTC. Rows are grouped by the UTC hour, day,
week (from Monday) or month they fall in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlcli.errors import ConfigError

UNITS = ("hour", "day", "week", "month")
_UTC = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True, slots=True)
class Buckets:
    """Kept target rows, grouped: `rows[bounds[i]:bounds[i+1]]` fall in the bucket `starts[i]`.

    `rows` is None when every row is kept and there are no timestamps (one overall comparison).
    """

    rows: np.ndarray | None
    starts: tuple[datetime, ...]
    bounds: np.ndarray
    first: datetime | None
    last: datetime | None

    @property
    def kept(self) -> int | None:
        return None if self.rows is None else len(self.rows)

    def each(self) -> Iterator[tuple[datetime, np.ndarray]]:
        """(bucket start, the bucket's row positions), oldest first."""
        assert self.rows is not None or not self.starts
        for index, start in enumerate(self.starts):
            yield start, self.rows[self.bounds[index] : self.bounds[index + 1]]


def no_buckets() -> Buckets:
    return Buckets(None, (), np.zeros(1, dtype=np.int64), None, None)


def bucket_rows(
    timestamps: pa.ChunkedArray, *, by: str, since: datetime | None, where: str
) -> Buckets:
    """Group rows by the `by` unit of their timestamp, keeping those at or after `since`."""
    moments = parse_timestamps(timestamps, where=where)
    valid = pc.is_valid(moments)
    if since is not None:
        valid = pc.and_(valid, pc.greater_equal(moments, pa.scalar(since, type=_UTC)))
    keep = np.flatnonzero(valid.to_numpy(zero_copy_only=False))
    kept = moments.take(keep)
    if len(keep) == 0:
        return Buckets(keep, (), np.zeros(1, dtype=np.int64), None, None)
    floored = pc.floor_temporal(kept, unit=by, week_starts_monday=True)
    codes = pc.cast(floored, pa.int64()).to_numpy()
    starts, inverse = np.unique(codes, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse))])
    return Buckets(
        rows=keep[order],
        starts=tuple(_utc(int(s)) for s in starts),
        bounds=bounds,
        first=pc.min(kept).as_py(),
        last=pc.max(kept).as_py(),
    )


def parse_timestamps(column: pa.ChunkedArray, *, where: str) -> pa.ChunkedArray:
    """The column as UTC timestamps; a clear error for text that is not ISO 8601."""
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            return pc.assume_timezone(column, "UTC").cast(_UTC)
        return column.cast(_UTC)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise ConfigError(
            f"the timestamp column has type {column.type}, not ISO 8601 text or a timestamp.",
            where=where,
            fix="Store scoring times as ISO 8601 UTC text, e.g. 2026-12-03T08:15:00Z.",
        )
    try:
        return pc.cast(column, _UTC)
    except pa.ArrowInvalid:
        pass  # some values have no zone: the collector's times are UTC
    try:
        return pc.assume_timezone(pc.cast(column, pa.timestamp("us")), "UTC").cast(_UTC)
    except pa.ArrowInvalid as exc:
        raise ConfigError(
            f"a timestamp is not ISO 8601: {str(exc).splitlines()[0]}",
            where=where,
            fix="Store scoring times as ISO 8601 UTC text, e.g. 2026-12-03T08:15:00Z.",
        ) from exc


def _utc(microseconds: int) -> datetime:
    return datetime.fromtimestamp(microseconds / 1_000_000, tz=UTC)
