"""The collection writer (mlcli/server/collect.py) on its own, in this process: correlation
ids, the day rows are filed under, and early flushes of a filling buffer."""

from __future__ import annotations

import os
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
