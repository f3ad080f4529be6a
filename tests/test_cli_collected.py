"""Model data collection end to end: `ml model deploy` with collectModelData, a v1 score.py
collecting inputs and predictions, and `ml service collected-data` reading them back."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import invoke, ok, post, register_factor, wait_for, write

from mlcli.paths import Workspace

# Azure's "collect data from models in production" entry script, over the echo model; lists
# because the service's environment has no numpy (tests/server covers arrays and DataFrames).
COLLECTING_SCORE = """\
import json
import os

from azureml.monitoring import ModelDataCollector


def init():
    global factor, inputs_dc, prediction_dc
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "factor.txt")) as fh:
        factor = float(fh.read())
    inputs_dc = ModelDataCollector("scale", designation="inputs", feature_names=["a", "b"])
    prediction_dc = ModelDataCollector("scale", designation="predictions",
                                       feature_names=["a3", "b3"])


def run(raw_data):
    data = json.loads(raw_data)["data"]
    result = [x * factor for x in data]
    correlations = inputs_dc.collect(data)
    prediction_dc.collect(prediction_dc.add_correlations(result, correlations))
    return {"result": result}
"""


def deploy_collecting(folder: Path, name: str, config: dict) -> dict:
    register_factor(folder, "scale", 3)
    script = write(folder / "score.py", COLLECTING_SCORE)
    dc = write(folder / "deploymentConfig.json", json.dumps(config))
    return ok("model", "deploy", "-n", name, "-m", "scale:1", "--es", str(script), "--dc", str(dc))


def collected(name: str, *args: str) -> list[dict]:
    return ok("service", "collected-data", "-n", name, *args)


def score_and_read(service: dict, name: str) -> tuple[list[dict], list[dict]]:
    for data in ([1, 2], [3, 4]):
        assert post(service["scoringUri"], {"data": data}).status_code == 200
    inputs = wait_for(lambda: len(collected(name)) == 2 and collected(name), what="inputs")
    predictions = wait_for(
        lambda: (
            len(collected(name, "--designation", "predictions")) == 2
            and collected(name, "--designation", "predictions")
        ),
        what="predictions",
    )
    return inputs, predictions


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_a_process_service_collects_inputs_and_predictions_the_cli_reads_back(
    tmp_path: Path,
) -> None:
    service = deploy_collecting(
        tmp_path, "collector", {"computeType": "PROCESS", "collectModelData": True}
    )

    inputs, predictions = score_and_read(service, "collector")

    assert [[row["a"], row["b"]] for row in inputs] == [[1, 2], [3, 4]]
    assert [[row["a3"], row["b3"]] for row in predictions] == [[3.0, 6.0], [9.0, 12.0]]
    assert [r["$aml_dc_correlation_id"] for r in inputs] == [
        r["$aml_dc_correlation_id"] for r in predictions
    ]
    assert {r["$aml_service_name"] for r in inputs} == {"collector"}
    assert {r["$aml_model_version"] for r in inputs} == {"1"}
    files = Workspace.named().collected_dir / "collector" / "scale" / "1" / "inputs"
    assert len(list(files.rglob("*.parquet"))) == len(list(files.rglob("*.csv"))) >= 1
    as_csv = invoke("service", "collected-data", "-n", "collector", "-o", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [row["a"] for row in rows] == ["1", "3"]
    assert collected("collector", "--since", "1h") == inputs
    counters = wait_for(
        lambda: (
            (ok("service", "metrics", "-n", "collector")["collection"] or {}).get("rowsWritten")
            == 4
            and ok("service", "metrics", "-n", "collector")["collection"]
        ),
        what="the collection counters in /metrics",
    )
    assert counters["rowsDropped"] == 0
    future = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86400))
    assert collected("collector", "--since", future) == []


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_without_collect_model_data_the_same_script_collects_nothing(tmp_path: Path) -> None:
    service = deploy_collecting(tmp_path, "quiet", {"computeType": "PROCESS"})

    assert post(service["scoringUri"], {"data": [1, 2]}).status_code == 200

    result = invoke("service", "collected-data", "-n", "quiet")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert "no inputs rows" in result.stderr
    assert not (Workspace.named().collected_dir / "quiet").exists()


@pytest.fixture
def containers_cleanup(docker_labels: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import docker

    case = f"org.mlcli.test-case={uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MLCLI_DOCKER_LABELS", f"{docker_labels},{case}")
    yield case
    for container in docker.from_env().containers.list(all=True, filters={"label": case}):
        container.remove(force=True)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup", "containers_cleanup")
def test_a_local_container_writes_into_the_mounted_workspace_folder(tmp_path: Path) -> None:
    service = deploy_collecting(
        tmp_path, "boxed", {"computeType": "LOCAL", "collectModelData": True}
    )

    inputs, predictions = score_and_read(service, "boxed")

    assert [[row["a"], row["b"]] for row in inputs] == [[1, 2], [3, 4]]
    assert len(predictions) == 2
    assert (Workspace.named().collected_dir / "boxed" / "scale" / "1" / "inputs").is_dir()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["-n", "nope"], 3, "does not exist"),
        (["-n", "nope", "--since", "yesterday"], 2, "--since"),
        (["-n", "nope", "--designation", "outputs"], 2, "outputs"),
    ],
)
def test_bad_requests_exit_non_zero_with_one_line_and_no_traceback(
    args: list[str], code: int, message: str
) -> None:
    result = invoke("service", "collected-data", *args)

    assert result.exit_code == code
    assert result.stdout == ""
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_rows_from_csv_only_folders_are_read_as_well(tmp_path: Path) -> None:
    day = time.strftime("%Y/%m/%d", time.gmtime())
    folder = Workspace.named().collected_dir / "old" / "m" / "2" / "inputs" / day
    write(folder / "inputs_000000_1_1.csv", "x,$aml_dc_scoring_timestamp\n5,2026-01-01T00:00:00\n")
    write(folder / ".inputs_000001_1_2.csv.1.tmp", "x\n6\n")  # a write in progress

    rows = collected("old")

    assert rows == [{"x": "5", "$aml_dc_scoring_timestamp": "2026-01-01T00:00:00"}]


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_the_md_flag_turns_collection_on_as_azures_does(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 3)
    script = write(tmp_path / "score.py", COLLECTING_SCORE)
    service = ok("model", "deploy", "-n", "flagged", "-m", "scale:1", "--es", str(script),
                 "--md", "true")  # fmt: skip

    assert post(service["scoringUri"], {"data": [5, 6]}).status_code == 200

    rows = wait_for(lambda: collected("flagged"), what="inputs")
    assert [[row["a"], row["b"]] for row in rows] == [[5, 6]]
