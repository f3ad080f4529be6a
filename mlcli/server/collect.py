"""Model data collection's writer: rows from ModelDataCollector.collect() to files, off the
request path.

collect() only converts the data to rows and appends them to a bounded buffer; a background
thread in the same (worker) process writes them out every MLCLI_COLLECT_FLUSH_S seconds. A
full buffer drops the new rows and counts them: collection never blocks or fails a request.

Each flush writes, per partition, one Parquet file (pyarrow, when the model's environment
has it) and a CSV twin with the same rows, each to a hidden temporary name, fsync'ed, then
renamed: a kill -9 loses at most the rows not yet flushed and never leaves a torn file.
The layout is Azure's, below the service's folder (MLCLI_COLLECT_DIR):
    <model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<name>_<HHMMSS>_<pid>_<n>.{parquet,csv}

Counters (rows written, dropped, files, write errors) go to a small JSON file per worker in
MLCLI_COLLECT_STATS_DIR, which the front process sums into /metrics when it is scraped.
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import logging
import os
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

ENABLED_VARIABLE = "AML_MODEL_DC_STORAGE_ENABLED"  # Azure's switch, set by deploy
DIR_VARIABLE = "MLCLI_COLLECT_DIR"
STATS_VARIABLE = "MLCLI_COLLECT_STATS_DIR"
DEFAULT_FLUSH_S = 5.0
DEFAULT_MAX_ROWS = 100_000  # rows waiting for the writer; more are dropped and counted

log = logging.getLogger("mlcli.server.collect")

# The request a worker is scoring now (worker.py sets it): Azure's $aml_request_id.
current_request_id = ""


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENABLED_VARIABLE, "").strip().lower() == "true"


class Clock:
    """UTC timestamps as Azure writes them (datetime.utcnow().isoformat()) and the day's
    folders, formatted once a second rather than on every collect()."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._day: tuple[str, str, str] = ("", "", "")

    def _tick(self, now: float) -> int:
        second = int(now)
        if second != self._second:
            moment = time.gmtime(second)
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", moment)
            self._day = (f"{moment.tm_year:04d}", f"{moment.tm_mon:02d}", f"{moment.tm_mday:02d}")
            self._second = second
        return second

    def timestamp(self) -> str:
        now = time.time()
        second = self._tick(now)
        return f"{self._prefix}.{int((now - second) * 1_000_000):06d}"

    def day(self) -> tuple[str, str, str]:
        self._tick(time.time())
        return self._day


clock = Clock()
_random = random.Random(os.urandom(32))


def new_id() -> str:
    """A version-4 UUID string (Azure's correlation ids), without a getrandom(2) per call."""
    text = f"{_random.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:]}"


class Writer:
    """A bounded buffer of rows and the thread that writes it to files."""

    def __init__(
        self, root: Path, *, flush_s: float, max_rows: int, stats_dir: str | None = None
    ) -> None:
        self.root = root
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.stats_path = Path(stats_dir) / f"{os.getpid()}.json" if stats_dir else None
        self.counts = {"rows": 0, "dropped": 0, "files": 0, "errors": 0}
        self.csv_only = False
        # No lock on the request path: deque.append and popleft are atomic, and each
        # counter has one writer (queued: the requests; taken and drops on error: the writer
        # thread), so the bound is exact for one scoring thread and near enough for several.
        self._pending: deque = deque()
        self._queued_rows = 0
        self._taken_rows = 0
        self._dropped_rows = 0
        self._wake = threading.Event()
        self._stopping = False
        self._sequence = 0
        self._written_stats: dict = {}
        self._thread = threading.Thread(target=self._loop, name="mlcli-collect", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def put(self, partition: tuple[str, ...], columns: tuple[str, ...], rows: list) -> bool:
        """Queue rows for writing; False (and counted) when the buffer is full."""
        count = len(rows)
        if self._queued_rows - self._taken_rows + count > self.max_rows or self._stopping:
            self._dropped_rows += count
            return False
        self._pending.append((partition, columns, rows))
        self._queued_rows += count
        return True

    @property
    def pending_rows(self) -> int:
        return self._queued_rows - self._taken_rows

    def close(self) -> None:
        """Write what is buffered and stop the thread (at interpreter exit)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self._flush()
        self._flush()

    def _flush(self) -> None:
        groups: dict = {}
        pending = self._pending
        taken = 0
        while pending:
            partition, columns, rows = pending.popleft()
            groups.setdefault((partition, columns), []).extend(rows)
            taken += len(rows)
        self._taken_rows += taken
        for (partition, columns), rows in groups.items():
            try:
                self._write(partition, columns, rows)
            except Exception:  # a full disk or a removed folder must not kill the thread
                log.exception("Could not write %d collected rows under %s", len(rows), self.root)
                self.counts["errors"] += 1
                self.counts["dropped"] += len(rows)
            else:
                self.counts["rows"] += len(rows)
        self._write_stats()

    def _write(self, partition: tuple[str, ...], columns: tuple[str, ...], rows: list) -> None:
        *folders, stem = partition
        folder = self.root.joinpath(*folders)
        folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"{stem}_{time.strftime('%H%M%S', time.gmtime())}_{os.getpid()}_{self._sequence}"
        table = None
        if not self.csv_only:
            try:
                table = _arrow_table(columns, rows)
            except ImportError as exc:
                self.csv_only = True
                log.warning(
                    "pyarrow cannot be imported in the model's environment (%s): collected "
                    "data is written as CSV only. `ml model deploy` with collectModelData "
                    "installs a pyarrow that fits the environment.",
                    exc,
                )
        if table is None:
            _write_atomically(folder / f"{name}.csv", lambda f: f.write(_csv_bytes(columns, rows)))
            self.counts["files"] += 1
        else:
            import pyarrow.csv as pc
            import pyarrow.parquet as pq

            # pyarrow writes both in C++, without holding the GIL the requests need
            options = pc.WriteOptions(quoting_style="needed")
            _write_atomically(folder / f"{name}.csv", lambda f: pc.write_csv(table, f, options))
            _write_atomically(folder / f"{name}.parquet", lambda f: pq.write_table(table, f))
            self.counts["files"] += 2
        _fsync_folder(folder)

    def _write_stats(self) -> None:
        stats = {
            **self.counts,
            "dropped": self.counts["dropped"] + self._dropped_rows,
            "pending": self.pending_rows,
            "csvOnly": self.csv_only,
        }
        if self.stats_path is None or stats == self._written_stats:
            return
        try:
            temporary = self.stats_path.with_name(f".{self.stats_path.name}.tmp")
            temporary.write_text(json.dumps(stats))
            temporary.replace(self.stats_path)
            self._written_stats = stats
        except OSError:
            pass  # the front removed the folder: it is shutting down


_writer: Writer | None = None
_writer_lock = threading.Lock()


def writer() -> Writer:
    """The process's writer, started on first use (the first enabled ModelDataCollector)."""
    global _writer
    with _writer_lock:
        if _writer is None:
            environ = os.environ
            root = environ.get(DIR_VARIABLE) or str(Path.cwd() / "collected")
            _writer = Writer(
                Path(root),
                flush_s=_number(environ, "MLCLI_COLLECT_FLUSH_S", DEFAULT_FLUSH_S),
                max_rows=int(_number(environ, "MLCLI_COLLECT_MAX_ROWS", DEFAULT_MAX_ROWS)),
                stats_dir=environ.get(STATS_VARIABLE) or None,
            )
        return _writer


def _number(environ: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(environ.get(name, "") or default)
    except ValueError:
        log.warning("%s=%r is not a number; using %s", name, environ.get(name), default)
        return default
    return value if value > 0 else default


# -- file formats ---------------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    return "" if value is None else str(value)


def csv_text(columns: tuple[str, ...], rows: list) -> str:
    """A header line and the rows, with csv's own str() of each value, as Azure's collector
    writes them (None: empty)."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(columns)
    out.writerows(rows)
    return buffer.getvalue()


def _csv_bytes(columns: tuple[str, ...], rows: list) -> bytes:
    return csv_text(columns, rows).encode("utf-8")


def _arrow_table(columns: tuple[str, ...], rows: list):
    """A pyarrow Table, each column's type inferred (text when values disagree); ImportError
    without a usable pyarrow. Rows all have len(columns) values (the collector checks)."""
    import pyarrow as pa

    arrays = []
    for values in zip(*rows):
        try:
            array = pa.array(values, from_pandas=True)
            if pa.types.is_null(array.type):
                array = array.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            array = pa.array([None if v is None else _cell_text(v) for v in values], pa.string())
        arrays.append(array)
    return pa.Table.from_arrays(arrays, names=list(columns))


def _write_atomically(path: Path, write: Callable[[Any], None]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the front's side: /metrics ---------------------------------------------------------------


class CollectionMetrics:
    """A prometheus-client collector summing the workers' counters at scrape time."""

    def __init__(self, stats_dir: str) -> None:
        self.stats_dir = Path(stats_dir)

    def totals(self) -> dict:
        totals = {"rows": 0, "dropped": 0, "files": 0, "errors": 0, "pending": 0}
        for path in self.stats_dir.glob("*.json"):
            try:
                stats = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            for key in totals:
                totals[key] += int(stats.get(key, 0))
        return totals

    def collect(self) -> Iterator:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        totals = self.totals()
        for key, name, documentation in (
            ("rows", "mlcli_collected_rows", "Rows ModelDataCollector wrote to files."),
            ("dropped", "mlcli_collection_dropped_rows", "Collected rows dropped (buffer full "
             "or write failed) instead of slowing or failing a request."),
            ("files", "mlcli_collection_files", "Files written by model data collection."),
            ("errors", "mlcli_collection_write_errors", "Collection writes that failed."),
        ):  # fmt: skip
            yield CounterMetricFamily(name, documentation, value=totals[key])
        yield GaugeMetricFamily(
            "mlcli_collection_pending_rows",
            "Collected rows waiting for the writer (as of its last flush).",
            value=totals["pending"],
        )


def attach(registry, environ: dict) -> None:
    """In the front, before the workers start: give them a folder for their counters and
    expose the counters in /metrics. Nothing happens when collection is off."""
    if not enabled(environ):
        return
    import shutil
    import tempfile

    stats_dir = tempfile.mkdtemp(prefix="mlcli-collect-")
    environ[STATS_VARIABLE] = stats_dir
    atexit.register(shutil.rmtree, stats_dir, True)
    registry.register(CollectionMetrics(stats_dir))
