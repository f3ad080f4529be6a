"""Model data collection's writer: rows from ModelDataCollector.collect() to files, off the
request path.

collect() only converts the data to rows and appends them to a bounded buffer; a background
thread in the same (worker) process writes them out every MLCLI_COLLECT_FLUSH_S seconds. A
full buffer drops the new rows and counts them: collection never blocks or fails a request.

Each flush writes, per partition, one Parquet file (pyarrow, when the model's environment
has it) and a CSV twin with the same rows, each to a hidden temporary name, fsync'ed, then
both renamed: a kill -9 loses at most the rows not yet flushed and never leaves a torn file.
The layout is Azure's, below the service's folder (MLCLI_COLLECT_DIR):
    <model>/<version>/<designation>/<yyyy>/<mm>/<dd>/<name>_<HHMMSS>_<pid>_<n>.{parquet,csv}

Counters (rows written, dropped, files, write errors) go to a small JSON file per worker in
MLCLI_COLLECT_STATS_DIR, which the front process sums into /metrics when it is scraped.
"""

from __future__ import annotations

import atexit
import csv
import gc
import io
import itertools
import json
import logging
import operator
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

ENABLED_VARIABLE = "AML_MODEL_DC_STORAGE_ENABLED"  # Azure's switch, set by deploy
DIR_VARIABLE = "MLCLI_COLLECT_DIR"
STATS_VARIABLE = "MLCLI_COLLECT_STATS_DIR"
DEFAULT_FLUSH_S = 5.0
DEFAULT_MAX_ROWS = 100_000  # rows waiting for the writer; more are dropped and counted
YIELD_S = 0.0001  # the writer's pause between columns, for the requests (see _let_requests_run)

log = logging.getLogger("mlcli.server.collect")

# The request a worker is scoring now (worker.py sets it): Azure's $aml_request_id.
current_request_id = ""


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(ENABLED_VARIABLE, "").strip().lower() == "true"


class Clock:
    """The second of Azure's UTC timestamps (datetime.utcnow().isoformat()), formatted once a
    second rather than on every collect(); stamp_and_id() adds the microseconds (integer
    nanoseconds and str() of a number with a leading 1 cut off: format specs such as :06d
    cost 350 ns a call)."""

    def __init__(self) -> None:
        self._second_ns = 0
        self._next_ns = 0  # when the formatted second is over
        self._prefix = ""  # "yyyy-mm-ddTHH:MM:SS."

    def tick(self, now_ns: int) -> None:
        second = now_ns // 1_000_000_000
        self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        self._second_ns = second * 1_000_000_000
        self._next_ns = self._second_ns + 1_000_000_000


def _today() -> tuple[tuple[str, str, str], float]:
    """Today's folders (UTC yyyy, mm, dd) and when today is over."""
    now = time.time()
    moment = time.gmtime(now)
    day = (f"{moment.tm_year:04d}", f"{moment.tm_mon:02d}", f"{moment.tm_mday:02d}")
    return day, (int(now) // 86400 + 1) * 86400.0


clock = Clock()


class _Ids:
    """Version-4-shaped UUID strings (Azure's correlation ids) for one process: a random
    prefix and a counter from a random start, so each is unique without a getrandom(2) or
    a 128-bit formatting per call. A forked child draws a new prefix. The counter runs in
    [2**48, 2**49): hex() of it, "0x1" cut off, is the last 12 digits (2**47 ids of
    headroom: 44 years at 100,000 a second)."""

    def __init__(self) -> None:
        self.reset()
        if hasattr(os, "register_at_fork"):  # POSIX
            os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        text = os.urandom(10).hex()
        self.prefix = f"{text[:8]}-{text[8:12]}-4{text[12:15]}-a{text[15:18]}-"
        start = int.from_bytes(os.urandom(6), "big") >> 1  # < 2**47
        self.counter = itertools.count((1 << 48) + start)

    def new(self) -> str:
        return self.prefix + hex(next(self.counter))[3:]


_ids = _Ids()
new_id = _ids.new


def stamp_and_id() -> tuple[str, str]:
    """A collect()'s timestamp and a new correlation id, in one call (the request path)."""
    now = time.time_ns()
    if now >= clock._next_ns:
        clock.tick(now)
    return (
        clock._prefix + str((now - clock._second_ns) // 1000 + 1_000_000)[1:],
        _ids.prefix + hex(next(_ids.counter))[3:],
    )


class Writer:
    """A bounded buffer of rows and the thread that writes it to files."""

    MAX_KEYS = 256  # files with rows waiting (collectors x column sets) before idle ones go

    def __init__(
        self, root: Path, *, flush_s: float, max_rows: int, stats_dir: str | None = None
    ) -> None:
        self.root = root
        self.flush_s = flush_s
        self.max_rows = max_rows
        self.stats_path = Path(stats_dir) / f"{os.getpid()}.json" if stats_dir else None
        self.counts = {"rows": 0, "dropped": 0, "files": 0, "errors": 0}
        self.csv_only = False
        # Rows wait in one list per key (file), so a flush takes each list's rows in two
        # C-level steps instead of sorting a queue row by row (that loop was 40 % of a flush).
        # No lock on the request path: list.append, a slice and a slice deletion are atomic
        # under the GIL (the writer takes the first n rows, later appends stay), and each
        # counter has one writer (queued: the requests; taken and drops on error: the writer
        # thread), so the bound is exact for one scoring thread and near enough for several.
        self._waiting: dict[tuple, list] = {}
        self._idle_keys: set = set()
        self._queued_rows = 0
        self._taken_rows = 0
        self._dropped_rows = 0
        self.flush_rows = max(max_rows // 4, 1)  # a flush before the wait is over
        self._wake = threading.Event()
        self._wake_sent = False
        self._day, self._day_until = _today()
        self._stopping = False
        self._sequence = 0
        self._written_stats: dict = {}
        _load_arrow()
        self._thread = threading.Thread(target=self._loop, name="mlcli-collect", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def put(self, key: tuple, rows: list) -> bool:
        """Queue rows for writing; key: (folders, columns), the folders being (model,
        version, designation, file stem). False (and counted) when the buffer is full."""
        count = len(rows)
        waiting = self._queued_rows - self._taken_rows + count
        if waiting > self.max_rows or self._stopping:
            self._dropped_rows += count
            return False
        queue = self._waiting.get(key)
        if queue is None:
            queue = self._waiting.setdefault(key, [])
        queue += rows
        self._queued_rows += count
        if waiting > self.flush_rows and not self._wake_sent:
            self._wake_sent = True  # one early flush, not one wake per request
            self._wake.set()
        return True

    def put_row(self, key: tuple, row: tuple) -> bool:
        """Queue one row (put() for the request path's common case, in one call). A tuple
        of numbers and strings is an entry the garbage collector stops tracking: thousands
        of rows waiting for a flush then cost the request path no collector passes
        (measured: 2-3 us a request)."""
        waiting = self._queued_rows - self._taken_rows
        if waiting >= self.max_rows or self._stopping:
            self._dropped_rows += 1
            return False
        queue = self._waiting.get(key)
        if queue is None:
            queue = self._waiting.setdefault(key, [])
        queue.append(row)
        self._queued_rows += 1
        if waiting >= self.flush_rows and not self._wake_sent:
            self._wake_sent = True
            self._wake.set()
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
        _name_os_thread(b"mlcli-collect")
        while not self._stopping:
            # also at UTC midnight: rows go under the day they were collected in
            self._wake.wait(min(self.flush_s, max(self._day_until - time.time(), 0) + 0.001))
            self._wake.clear()
            self._wake_sent = False
            self._flush()
        self._flush()

    def _flush(self) -> None:
        # Rows are written under the day the writer last saw (it wakes at every UTC
        # midnight, so those are the rows of that day), one file per key that has rows.
        day = self._day
        if time.time() >= self._day_until:
            self._day, self._day_until = _today()
        groups = []
        for key, queue in list(self._waiting.items()):
            count = len(queue)
            if count:
                groups.append((key, queue[:count]))
                del queue[:count]  # rows appended meanwhile stay, after these
                self._taken_rows += count
        if len(self._waiting) > self.MAX_KEYS:
            self._forget_idle_keys()
        for (folders, columns), rows in groups:
            try:
                self._write(folders, day, columns, rows)
            except Exception:  # a full disk or a removed folder must not kill the thread
                log.exception("Could not write %d collected rows under %s", len(rows), self.root)
                self.counts["errors"] += 1
                self.counts["dropped"] += len(rows)
            else:
                self.counts["rows"] += len(rows)
        self._write_stats()

    def _forget_idle_keys(self) -> None:
        """Drop the lists of files that got no rows since the flush before (DataFrames
        whose column names change, say), so the keys do not pile up. Only lists empty at two
        flushes go: a request that looked one up just before would have had to stall for a
        whole flush interval before appending to it."""
        idle = {key for key, queue in self._waiting.items() if not queue}
        for key in idle & self._idle_keys:
            if not self._waiting.get(key, True):
                del self._waiting[key]
        self._idle_keys = idle

    def _write(
        self, folders: tuple[str, ...], day: tuple[str, ...], columns: tuple[str, ...], rows: list
    ) -> None:
        model, version, designation, stem = folders
        folder = self.root.joinpath(model, version, designation, *day)
        folder.mkdir(parents=True, exist_ok=True)
        self._sequence += 1
        name = f"{stem}_{time.strftime('%H%M%S', time.gmtime())}_{os.getpid()}_{self._sequence}"
        table, constant = None, []
        if not self.csv_only:
            try:
                table, constant = _arrow_table(columns, rows)
            except ImportError as exc:
                self.csv_only = True
                log.warning(
                    "pyarrow cannot be imported in the model's environment (%s): collected "
                    "data is written as CSV only. `ml model deploy` with collectModelData "
                    "installs a pyarrow that fits the environment.",
                    exc,
                )
        if table is None:
            csv_bytes = _csv_bytes(columns, rows)
            _write_together([(folder / f"{name}.csv", lambda f: f.write(csv_bytes))])
            self.counts["files"] += 1
        else:
            import pyarrow.csv as pc
            import pyarrow.parquet as pq

            # pyarrow writes both in C++, without holding the GIL the requests need.
            # Dictionary pages only for the columns of one value (workspace, model...): for
            # the others (ids, timestamps, features) they were half the Parquet write's CPU
            # and no smaller a file (measured: 17 -> 9 ms for 40,000 rows, 845 -> 680 kB).
            options = pc.WriteOptions(quoting_style="needed")
            _write_together(
                [
                    (folder / f"{name}.csv", lambda f: pc.write_csv(table, f, options)),
                    (
                        folder / f"{name}.parquet",
                        lambda f: pq.write_table(table, f, use_dictionary=constant),
                    ),
                ]
            )
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


def csv_text(columns: tuple[str, ...] | None, rows: list) -> str:
    """A header line (none when columns is None) and the rows, with csv's own str() of each
    value, as Azure's collector writes them (None: empty)."""
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    if columns is not None:
        out.writerow(columns)
    out.writerows(rows)
    return buffer.getvalue()


def _csv_bytes(columns: tuple[str, ...], rows: list) -> bytes:
    return csv_text(columns, rows).encode("utf-8")


def _arrow_table(columns: tuple[str, ...], rows: list) -> tuple[Any, list[str]]:
    """A pyarrow Table, each column's type inferred (text when values disagree), and the
    names of its columns of one value; ImportError without a usable pyarrow. Rows all have
    len(columns) values (the collector checks)."""
    import pyarrow as pa

    arrays = []
    constant = []
    count = len(rows)
    for index, column in enumerate(columns):
        values = list(map(operator.itemgetter(index), rows))
        first = values[0]
        if type(first) is str and values.count(first) == count:
            # the same text all through (workspace, service, model...): not converted per row
            arrays.append(pa.repeat(first, count))
            constant.append(column)
            continue
        try:
            array = pa.array(values, from_pandas=True)
            if pa.types.is_null(array.type):
                array = array.cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            array = pa.array([None if v is None else _cell_text(v) for v in values], pa.string())
        arrays.append(array)
        _let_requests_run()
    return pa.Table.from_arrays(arrays, names=list(columns)), constant


def _let_requests_run() -> None:
    """Hand the GIL to a request thread waiting for it. Converting Python values to Arrow
    holds the GIL, and a thread that wants it asks for it only after the switch interval
    (5 ms): with a flush's columns converted back to back, a request thread's longest wait
    per flush was 9.5-11.1 ms (median of 25 flushes of 12,500 requests; `bench/collect_cost.py
    --stall`), and 2.3-3.1 ms with this pause after each column (one column of 12,500 values
    holds the GIL about 1 ms)."""
    time.sleep(YIELD_S)


def _name_os_thread(name: bytes) -> None:
    """Name the calling thread for the OS too (Linux, at most 15 bytes), so that `top -H`,
    /proc/PID/task/*/comm and the monitoring bench tell the writer's CPU from the requests'
    (Python 3.11's thread names are its own). Best effort: elsewhere nothing happens."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name[:15]), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _load_arrow() -> None:
    """Import pyarrow, and the pandas its first array looks for, in the thread that makes the
    writer (a ModelDataCollector's constructor, usually in init()), before the writer
    thread starts:
      - the last flush runs at interpreter exit, where a first import of pandas fails (it
        registers an exit hook of its own) and that flush's rows were lost;
      - the worker freezes the garbage collector's objects after init() (worker.py). Imported
        in the writer thread, pandas and pyarrow were not loaded yet at that moment, which
        left ~48,000 of their objects for every full collection to walk while holding the
        GIL (38 ms a collection, measured). When the process has frozen objects already (a
        collector made in run()), the new ones are frozen too."""
    try:
        import pyarrow as pa

        pa.array([0])
    except Exception:  # no usable pyarrow: the first flush says so and writes CSV only
        return
    if gc.get_freeze_count():
        gc.freeze()


def _write_together(files: list[tuple[Path, Callable[[Any], Any]]]) -> None:
    """Write each (path, write) to a hidden temporary name and fsync it; only then rename
    them, in order: a reader never sees a torn file, and twins appear microseconds apart
    (the CSV first: when the Parquet file is there, so is its twin), not a Parquet write
    and an fsync apart (a reader that prefers Parquet then read the CSV's text)."""
    temporaries = []
    try:
        for path, write in files:
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporaries.append(temporary)
            with temporary.open("wb") as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
        for (path, _), temporary in zip(files, temporaries):
            temporary.replace(path)
    except BaseException:
        for temporary in temporaries:
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
