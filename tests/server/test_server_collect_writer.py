"""The collection writer (mlcli/server/collect.py) on its own, in this process: correlation
ids, the day rows are filed under, and early flushes of a filling buffer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mlcli.server import collect

FOLDERS = ("model", "1", "inputs", "inputs")
COLUMNS = ("a", "$aml_workspace")


@pytest.fixture
def writer(tmp_path: Path):
    made = []

    def make(**settings) -> collect.Writer:
        made.append(collect.Writer(tmp_path, **{"flush_s": 60, "max_rows": 1000, **settings}))
        return made[-1]

    yield make
    for each in made:
        each.close()


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.parquet") if not p.name.startswith("."))


def test_correlation_ids_are_unique_version_4_uuids():
    ids = [collect.new_id() for _ in range(10_000)]

    assert len(set(ids)) == len(ids)
    assert {uuid.UUID(text).version for text in ids[:100]} == {4}
    assert all(str(uuid.UUID(text)) == text for text in ids[:100])


def test_a_forked_child_draws_other_ids_than_its_parent():
    reader, writer_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send one id, leave at once
        os.write(writer_end, collect.new_id().encode())
        os._exit(0)
    os.close(writer_end)
    os.waitpid(pid, 0)
    child = os.read(reader, 100).decode()
    os.close(reader)

    assert child[:24] != collect.new_id()[:24]


def test_timestamps_are_utc_microseconds_in_azures_format():
    stamp, generated = collect.stamp_and_id()

    moment = time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")
    assert abs(time.mktime(moment) - time.mktime(time.gmtime())) < 5
    assert len(stamp) == 26
    assert stamp[19] == "."
    assert uuid.UUID(generated).version == 4


def test_rows_queued_before_midnight_are_filed_under_that_day(writer, tmp_path: Path):
    before_midnight = writer()
    before_midnight._day, before_midnight._day_until = ("2020", "01", "31"), time.time() - 0.5
    before_midnight.put((FOLDERS, COLUMNS), [[1, "ws"]])

    before_midnight._flush()  # the flush the writer makes when it wakes at midnight
    before_midnight.put((FOLDERS, COLUMNS), [[2, "ws"]])
    before_midnight._flush()

    [old, new] = files(tmp_path)
    assert old.relative_to(tmp_path).parts[3:6] == ("2020", "01", "31")
    assert new.relative_to(tmp_path).parts[3:6] == tuple(
        time.strftime("%Y/%m/%d", time.gmtime()).split("/")
    )
    assert pq.read_table(old).to_pylist() == [{"a": 1, "$aml_workspace": "ws"}]


def test_a_filling_buffer_is_written_before_the_flush_interval(writer, tmp_path: Path):
    filling = writer(max_rows=8)  # flushes early beyond a quarter: 2 rows

    for value in range(3):
        assert filling.put((FOLDERS, COLUMNS), [[value, "ws"]])

    deadline = time.monotonic() + 10
    while not files(tmp_path):
        assert time.monotonic() < deadline, "nothing written long before the 60 s interval"
        time.sleep(0.05)
    assert filling.counts["dropped"] == 0


def test_columns_of_one_text_value_and_mixed_types_keep_their_values(writer, tmp_path: Path):
    mixed = writer()
    rows = [[1, "ws"], ["two", "ws"], [None, "ws"]]
    mixed.put((FOLDERS, COLUMNS), rows)

    mixed._flush()

    [path] = files(tmp_path)
    table = pq.read_table(path)
    assert table.to_pylist() == [
        {"a": "1", "$aml_workspace": "ws"},
        {"a": "two", "$aml_workspace": "ws"},
        {"a": None, "$aml_workspace": "ws"},
    ]
    assert str(table.schema.field("$aml_workspace").type) == "string"


def test_rows_queued_just_before_a_normal_exit_are_written(tmp_path: Path):
    # pandas is installed here, as in many models' environments: pyarrow's first array
    # imports it, which fails at interpreter exit, where the last flush runs
    script = (
        "from mlcli.server import collect\n"
        f"writer = collect.Writer(__import__('pathlib').Path({str(tmp_path)!r}), "
        "flush_s=60, max_rows=1000)\n"
        f"writer.put({(FOLDERS, COLUMNS)!r}, [[1, 'ws'], [2, 'ws']])\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    [path] = files(tmp_path)
    assert pq.read_table(path).column("a").to_pylist() == [1, 2]
    assert "Could not write" not in done.stderr


def test_rows_queued_while_a_flush_takes_its_rows_wait_for_the_next(writer, tmp_path: Path):
    racing = writer()
    key = (FOLDERS, COLUMNS)
    racing.put_row(key, (1, "ws"))
    queue = racing._waiting[key]

    class Appending(list):  # a request appending between the flush's slice and its deletion
        def __getitem__(self, index):
            taken = list.__getitem__(self, index)
            self.append((2, "ws"))
            return taken

    racing._waiting[key] = Appending(queue)
    racing._flush()

    assert pq.read_table(files(tmp_path)[0]).column("a").to_pylist() == [1]
    assert list(racing._waiting[key]) == [(2, "ws")]


def test_parquet_files_dictionary_encode_only_the_columns_of_one_value(writer, tmp_path: Path):
    encoded = writer()
    encoded.put((FOLDERS, COLUMNS), [[value, "ws"] for value in range(100)])

    encoded._flush()

    [path] = files(tmp_path)
    row_group = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {row_group.column(i).path_in_schema: row_group.column(i).encodings
                 for i in range(row_group.num_columns)}  # fmt: skip
    assert "RLE_DICTIONARY" in encodings["$aml_workspace"]
    assert "RLE_DICTIONARY" not in encodings["a"]
    assert pq.read_table(path).column("$aml_workspace").type == "string"


def test_files_whose_columns_are_no_longer_collected_are_forgotten(writer, tmp_path: Path):
    changing = writer(max_rows=100_000)
    for index in range(collect.Writer.MAX_KEYS + 10):  # DataFrames with new names each time
        changing.put((FOLDERS, (f"a{index}", "$aml_workspace")), [[index, "ws"]])
    changing.put((FOLDERS, COLUMNS), [[1, "ws"]])
    changing._flush()
    changing._flush()  # every key but none got rows since the first flush

    changing.put((FOLDERS, COLUMNS), [[2, "ws"]])
    changing._flush()

    assert len(changing._waiting) <= 1
    assert changing.counts["rows"] == collect.Writer.MAX_KEYS + 12


def test_the_writer_thread_is_named_for_the_os_so_its_cpu_can_be_told_apart(writer) -> None:
    """`top -H` and the monitoring bench read thread names from /proc: the writer's CPU is
    then not mistaken for the requests'."""
    writer()

    def thread_names() -> set[str]:
        return {
            (task / "comm").read_text().strip()
            for task in Path(f"/proc/{os.getpid()}/task").iterdir()
        }

    deadline = time.monotonic() + 10
    while "mlcli-collect" not in thread_names() and time.monotonic() < deadline:
        time.sleep(0.01)

    assert "mlcli-collect" in thread_names()


def around_a_new_writer(tmp_path: Path, before: str, after: str) -> str:
    """What a fresh interpreter prints running `before`, making a writer, then `after`."""
    script = (
        "import gc, sys\n"
        "from pathlib import Path\n"
        "from mlcli.server import collect\n"
        f"{before}\n"
        f"writer = collect.Writer(Path({str(tmp_path)!r}), flush_s=60, max_rows=10)\n"
        f"{after}\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_writers_libraries_are_loaded_before_its_thread_starts(tmp_path: Path) -> None:
    """pyarrow (and the pandas it looks for) are imported by the thread making the writer, in
    init(), so the worker's gc.freeze() after init() covers their objects."""
    printed = around_a_new_writer(tmp_path, "", "print('pyarrow' in sys.modules)")

    assert printed.split() == ["True"]


def test_a_writer_made_after_the_gc_freeze_freezes_what_it_loaded(tmp_path: Path) -> None:
    """A collector made in run(), after the worker froze init()'s objects: full collections
    must not walk pyarrow's and pandas' objects (a 30-40 ms stall of the requests)."""
    printed = around_a_new_writer(
        tmp_path,
        "gc.freeze(); frozen = gc.get_freeze_count()",
        "print(frozen, gc.get_freeze_count())",
    )

    before, after = map(int, printed.split())
    assert after > before + 1000  # pyarrow's and pandas' objects, now frozen


def test_a_flush_lets_the_requests_take_the_gil_between_columns(
    writer, tmp_path: Path, monkeypatch
) -> None:
    """Converting rows to Arrow holds the GIL; the writer hands it over after each column
    rather than after the whole table (5-11 ms stalls of a request thread, measured)."""
    handovers = []
    monkeypatch.setattr(collect, "_let_requests_run", lambda: handovers.append(True))
    columns = ("a", "b", "c")
    each = writer()
    each.put((FOLDERS, columns), [[index, f"text {index}", 0.5] for index in range(100)])
    each._flush()

    assert len(handovers) >= len(columns)
    [path] = files(tmp_path)
    assert pq.read_table(path).column("b").to_pylist()[:2] == ["text 0", "text 1"]
