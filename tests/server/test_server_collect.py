"""Model data collection: azureml.monitoring.ModelDataCollector in a served score.py, its files,
columns and correlation ids, the bounded writer, and files that survive a kill -9."""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import exchange

COLLECTION_ON = {"AML_MODEL_DC_STORAGE_ENABLED": "true", "MLCLI_COLLECT_FLUSH_S": "0.1"}
FEATURES = ["feat1", "feat2", "feat3"]
META = [
    "$aml_dc_correlation_id",
    "$aml_dc_scoring_timestamp",
    "$aml_dc_boundary",
    "$aml_workspace",
    "$aml_service_name",
    "$aml_model_name",
    "$aml_model_version",
    "$aml_request_id",
]


def score(server, payload: dict, **headers: str):
    body = json.dumps(payload).encode()
    return server.request("POST", "/score", body, {"Content-Type": "application/json", **headers})


def collected_files(root: Path, suffix: str) -> list[Path]:
    return sorted(path for path in root.rglob(f"*{suffix}") if not path.name.startswith("."))


def wait_for_files(root: Path, designations: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {p.relative_to(root).parts[2] for p in collected_files(root, ".parquet")}
        if len(found) >= designations:
            return
        time.sleep(0.05)
    raise AssertionError(f"no files under {root} after {timeout} s")


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def metric(server, name: str) -> float:
    text = server.request("GET", "/metrics").body.decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} not in /metrics"
    return values[0]


@pytest.fixture
def collecting(start_mlcli, tmp_path: Path):
    root = tmp_path / "collected" / "svc"

    def start(script: str = "collect_data.py", **env: str):
        environ = {
            **COLLECTION_ON,
            "MLCLI_COLLECT_DIR": str(root),
            "MLCLI_COLLECT_WORKSPACE": "ws1",
            "SERVICE_NAME": "svc",
            **env,
        }
        return start_mlcli(script, env=environ), root

    return start


def test_inputs_and_predictions_land_in_azures_layout_with_their_correlations(collecting):
    server, root = collecting()

    reply = score(server, {"data": [[1, 2, 3], [4, 5, 6]], "id": "order-7"})

    assert reply.status == 200, reply.body
    correlations = reply.json()["correlations"]
    wait_for_files(root, designations=4)
    day = time.strftime("%Y/%m/%d", time.gmtime())
    inputs_dir = root / "best_model" / "default" / "inputs" / day
    [inputs_parquet] = collected_files(inputs_dir, ".parquet")
    [inputs_csv] = collected_files(inputs_dir, ".csv")
    assert inputs_csv.stem == inputs_parquet.stem
    table = pq.read_table(inputs_parquet).to_pylist()
    assert list(table[0]) == FEATURES + META
    assert [[row[f] for f in FEATURES] for row in table] == [[1, 2, 3], [4, 5, 6]]
    assert read_csv(inputs_csv) == [{k: str(v) for k, v in row.items()} for row in table]
    first = table[0]
    assert first["$aml_dc_correlation_id"].startswith("order-7-")
    assert first["$aml_dc_correlation_id"] == correlations["$aml_dc_correlation_id"]
    assert first["$aml_request_id"] == reply.header("x-ms-request-id")
    assert first["$aml_service_name"] == "svc"
    assert first["$aml_workspace"] == "ws1"
    assert first["$aml_model_name"] == "best_model"
    assert first["$aml_dc_boundary"] == 1440
    stamp = time.strptime(first["$aml_dc_scoring_timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
    assert abs(time.mktime(stamp) - time.mktime(time.gmtime())) < 60  # UTC, not local time

    [predictions] = collected_files(root / "best_model/default/predictions" / day, ".parquet")
    rows = pq.read_table(predictions).to_pylist()
    assert [row["prediction1"] for row in rows] == [6, 15]
    assert {row["$aml_dc_correlation_id"] for row in rows} == {first["$aml_dc_correlation_id"]}


def test_lists_and_dataframes_are_collected_with_azures_default_and_own_column_names(
    collecting,
):
    server, root = collecting()

    score(server, {"data": [[1, 2, 3]]})

    wait_for_files(root, designations=4)
    [labels] = collected_files(root / "best_model/default/labels", ".parquet")
    assert pq.read_table(labels).to_pylist() == [{"Column1": "label", "Column2": 1}]
    # signals and general take the collection_name as file name, as in Azure
    [frames] = collected_files(root / "best_model/default/signals", ".parquet")
    assert frames.name.startswith("frames_")
    assert pq.read_table(frames).to_pylist() == [{"rows": 1, "first": 1.0}]


def test_collection_off_writes_nothing_and_collect_returns_none(collecting):
    server, root = collecting(AML_MODEL_DC_STORAGE_ENABLED="false")

    reply = score(server, {"data": [[1, 2, 3]]})

    assert reply.status == 200
    assert reply.json()["correlations"] is None
    time.sleep(0.5)
    assert not root.exists()
    assert "mlcli_collected_rows" not in server.request("GET", "/metrics").body.decode()
    notices = [r["message"] for r in server.log_records() if r.get("logger") == "score"]
    assert any("Data collection is not enabled" in message for message in notices)


def test_a_full_buffer_drops_rows_counts_them_and_still_answers(collecting):
    server, _ = collecting(MLCLI_COLLECT_MAX_ROWS="3", MLCLI_COLLECT_FLUSH_S="1")

    replies = [score(server, {"data": [[1, 2, 3], [4, 5, 6]]}) for _ in range(3)]

    assert [r.status for r in replies] == [200, 200, 200]
    deadline = time.monotonic() + 10
    while metric(server, "mlcli_collection_dropped_rows_total") == 0:
        assert time.monotonic() < deadline, "drops never reached /metrics"
        time.sleep(0.2)
    assert metric(server, "mlcli_collection_dropped_rows_total") > 0


def test_a_server_stopped_gracefully_writes_the_rows_it_still_held(collecting):
    server, root = collecting(MLCLI_COLLECT_FLUSH_S="60")
    score(server, {"data": [[1, 2, 3]]})

    assert server.stop() == 0

    assert len(collected_files(root, ".parquet")) == 4
    assert len(collected_files(root, ".csv")) == 4


def test_kill_9_during_a_burst_leaves_every_written_file_readable(collecting):
    server, root = collecting(MLCLI_COLLECT_FLUSH_S="0.01")
    stop = threading.Event()

    def burst() -> None:
        while not stop.is_set():
            try:
                exchange(
                    server.port,
                    "POST",
                    "/score",
                    b'{"data": [[1, 2, 3]]}',
                    {"Content-Type": "application/json"},
                    timeout=5,
                )
            except OSError:
                return

    threads = [threading.Thread(target=burst) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_for_files(root, designations=4)
    time.sleep(0.5)
    os.killpg(server.process.pid, signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join()

    parquet = collected_files(root, ".parquet")
    assert len(parquet) > 4
    for path in parquet:
        assert pq.read_table(path).num_rows >= 1
    for path in collected_files(root, ".csv"):
        rows = read_csv(path)
        assert rows, path
        assert all(None not in row.values() for row in rows), path


def test_without_pyarrow_the_server_writes_csv_only_and_says_so(collecting, tmp_path: Path):
    blocker = tmp_path / "no-pyarrow" / "pyarrow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('pyarrow is not installed')\n")
    server, root = collecting(PYTHONPATH=str(blocker.parent))

    score(server, {"data": [[1, 2, 3]]})

    deadline = time.monotonic() + 10
    while len(collected_files(root, ".csv")) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert collected_files(root, ".parquet") == []
    warnings = [r["message"] for r in server.log_records() if r.get("level") == "WARNING"]
    assert any("pyarrow is not installed" in message for message in warnings)


def test_debug_mode_prints_the_rows_to_the_log_and_writes_no_file(collecting):
    server, root = collecting(AML_MODEL_DC_STORAGE_ENABLED="false", AML_MODEL_DC_DEBUG="true")

    reply = score(server, {"data": [[1, 2, 3]]})

    assert reply.status == 200
    assert reply.json()["correlations"] is not None
    printed = [r["message"] for r in server.log_records() if r.get("logger") == "score"]
    assert ",".join(FEATURES + META) in printed
    assert any(line.startswith("1,2,3,") for line in printed)
    # as Azure: a header line only for named columns (labels_dc has no feature_names)
    assert "label,1" in printed
    assert not any(line.startswith("Column1") for line in printed)
    assert "rows,first" in printed  # a DataFrame's own names
    assert not root.exists()


def test_collection_works_on_python_3_8_as_csv_without_pyarrow(
    collecting, start_mlcli, py38_server_python, tmp_path: Path
):
    root = tmp_path / "py38"
    server = start_mlcli(
        "collect_lists.py",
        python=str(py38_server_python),
        env={**COLLECTION_ON, "MLCLI_COLLECT_DIR": str(root)},
    )

    reply = server.request("POST", "/score", b"{}", {"Content-Type": "application/json"})

    assert reply.status == 200, reply.body
    deadline = time.monotonic() + 10
    while not collected_files(root, ".csv"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [path] = collected_files(root, ".csv")
    [row] = read_csv(path)
    assert (row["x"], row["y"]) == ("1", "two")
    assert row["$aml_dc_correlation_id"] == reply.json()["$aml_dc_correlation_id"]
    assert collected_files(root, ".parquet") == []
