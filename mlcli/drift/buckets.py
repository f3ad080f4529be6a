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
    """The target rows a run compares, grouped: bucket i starts at `starts[i]` and holds the
    rows at `bounds[i]:bounds[i + 1]` of `order`.

    `order` is None when the kept rows are every row of the target, already in time order (as
    a service's collected data comes): then a bucket is a slice of the columns as they are,
    and nothing is copied to compare them. `kept` is None when the target has no times.
    """

    order: np.ndarray | None
    starts: tuple[datetime, ...]
    bounds: tuple[int, ...]
    first: datetime | None
    last: datetime | None
    kept: int | None

    def overall(self) -> slice | np.ndarray:
        """The rows of the overall comparison."""
        return slice(None) if self.order is None else self.order

    def each(self) -> Iterator[tuple[datetime, slice | np.ndarray]]:
        """(bucket start, the bucket's rows), oldest first."""
        for index, start in enumerate(self.starts):
            low, high = self.bounds[index], self.bounds[index + 1]
            yield start, slice(low, high) if self.order is None else self.order[low:high]


def no_buckets() -> Buckets:
    """A target without times: every row, one overall comparison."""
    return Buckets(None, (), (0,), None, None, None)


def rows_of(values: np.ndarray | pa.Array, rows: slice | np.ndarray) -> np.ndarray | pa.Array:
    """`values` at `rows`: a view for a slice, a copy for positions."""
    if isinstance(rows, slice) or isinstance(values, np.ndarray):
        return values[rows]
    return values.take(rows)


def bucket_rows(
    timestamps: pa.ChunkedArray, *, by: str, since: datetime | None, where: str
) -> Buckets:
    """Group rows by the `by` unit of their timestamp, keeping those at or after `since`."""
    moments = parse_timestamps(timestamps, where=where)
    wanted = pc.is_valid(moments)
    if since is not None:
        wanted = pc.and_kleene(wanted, pc.greater_equal(moments, pa.scalar(since, type=_UTC)))
    keep = None
    if (pc.sum(wanted).as_py() or 0) < len(moments):
        keep = np.flatnonzero(wanted.to_numpy(zero_copy_only=False))
        moments = moments.take(keep)
    if len(moments) == 0:
        return Buckets(np.empty(0, dtype=np.int64), (), (0,), None, None, 0)
    first, last = pc.min(moments).as_py(), pc.max(moments).as_py()
    floored = pc.floor_temporal(moments, unit=by, week_starts_monday=True)
    del moments
    codes = pc.cast(floored, pa.int64()).to_numpy()
    del floored
    order = keep
    if not np.all(codes[1:] >= codes[:-1]):
        by_time = np.argsort(codes, kind="stable")
        codes = codes[by_time]
        order = by_time if keep is None else keep[by_time]
    changes = (np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist()
    return Buckets(
        order=order,
        starts=tuple(_utc(int(codes[b])) for b in (0, *changes)),
        bounds=(0, *changes, len(codes)),
        first=first,
        last=last,
        kept=len(codes),
    )


def parse_timestamps(column: pa.ChunkedArray, *, where: str) -> pa.ChunkedArray:
    """The column as UTC timestamps; a clear error for text that is not ISO 8601."""
    if pa.types.is_timestamp(column.type):
        if column.type.tz is None:
            return pc.assume_timezone(column, "UTC").cast(_UTC, safe=False)
        return column.cast(_UTC, safe=False)
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise ConfigError(
            f"the timestamp column has type {column.type}, not ISO 8601 text or a timestamp.",
            where=where,
            fix="Store scoring times as ISO 8601 UTC text, e.g. 2026-12-03T08:15:00Z.",
        )
    # Parsed to nanoseconds so that any ISO 8601 fraction fits, then kept to microseconds.
    try:
        return pc.cast(column, pa.timestamp("ns", tz="UTC")).cast(_UTC, safe=False)
    except pa.ArrowInvalid:
        pass  # some values have no zone: the collector's times are UTC
    try:
        naive = pc.cast(column, pa.timestamp("ns"))
        return pc.assume_timezone(naive, "UTC").cast(_UTC, safe=False)
    except pa.ArrowInvalid as exc:
        raise ConfigError(
            f"a timestamp is not ISO 8601: {str(exc).splitlines()[0]}",
            where=where,
            fix="Store scoring times as ISO 8601 UTC text, e.g. 2026-12-03T08:15:00Z.",
        ) from exc


def _utc(microseconds: int) -> datetime:
    return datetime.fromtimestamp(microseconds / 1_000_000, tz=UTC)
