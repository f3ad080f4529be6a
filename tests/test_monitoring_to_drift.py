"""The tutorial's monitoring path end to end: a v1 score.py collects its inputs with
ModelDataCollector in a running service, and `ml datadrift --service` finds what moved."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deploy_support import invoke, ok, post, register_factor, wait_for, write

pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("shared_environments", "services_cleanup"),
]

COLLECTING_SCORE = """\
import json

import numpy as np
from azureml.monitoring import ModelDataCollector


def init():
    global inputs_dc
    inputs_dc = ModelDataCollector("scale", designation="inputs", feature_names=["age", "income"])


def run(raw_data):
    rows = np.array(json.loads(raw_data)["data"])
    inputs_dc.collect(rows)
    return {"result": rows.sum(axis=1).tolist()}
"""


def rows(rng: random.Random, count: int, age_mean: float) -> list[list[float]]:
    return [[rng.gauss(age_mean, 5.0), rng.gauss(50_000, 8_000)] for _ in range(count)]


def test_collected_inputs_of_a_running_service_show_the_drifted_feature(tmp_path: Path) -> None:
    rng = random.Random(17)
    baseline = rows(rng, 2_000, age_mean=40.0)
    pq.write_table(
        pa.table({"age": [r[0] for r in baseline], "income": [r[1] for r in baseline]}),
        tmp_path / "baseline.parquet",
    )
    register_factor(tmp_path, "scale", 1)
    script = write(tmp_path / "score.py", COLLECTING_SCORE)
    conda = write(tmp_path / "env.yml", "dependencies:\n  - python=3.11\n  - numpy\n")
    config = {"computeType": "PROCESS", "collectModelData": True}
    dc = write(tmp_path / "dc.json", json.dumps(config))
    deployed = ok(
        "model", "deploy", "-n", "shop", "-m", "scale:1", "--es", str(script),
        "--cf", str(conda), "--dc", str(dc),
    )  # fmt: skip

    for _ in range(40):  # the customers got older: age moved by 3 sd, income did not
        answer = post(deployed["scoringUri"], {"data": rows(rng, 25, age_mean=55.0)})
        assert answer.status_code == 200, answer.text

    def rows_written() -> int:
        files = list((tmp_path / "mlcli-home").glob("workspaces/*/collected/shop/**/*.parquet"))
        return sum(pq.read_metadata(f).num_rows for f in files)

    wait_for(lambda: rows_written() >= 1_000, timeout=60, what="the collected rows on disk")
    result = invoke(
        "datadrift", "run", "-n", "shop-inputs", "--baseline", str(tmp_path / "baseline.parquet"),
        "--service", "shop",
    )  # fmt: skip

    assert result.exit_code == 5, result.stderr  # over the threshold: a CI step can alert
    record = json.loads(result.stdout)
    assert record["driftedFeatures"] == ["age"]
    assert record["target"]["rows"] == 1_000
