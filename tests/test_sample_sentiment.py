"""The sentiment sample (`make demo`): its configs, its corpus, and the flow end to end."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import port_taken

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "sentiment"
MODEL_FILES = ("model.h5", "model.w2v", "tokenizer.pkl", "encoder.pkl")


def load_sample_module(name: str):
    spec = importlib.util.spec_from_file_location(f"sentiment_{name}", SAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def ml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlcli", *args], cwd=REPO, capture_output=True, text=True
    )


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SAMPLE / "demo.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_sample_configs_name_score_py_myenv_yml_and_process() -> None:
    from mlcli.config import load_deployment_config, load_inference_config

    inference = load_inference_config(SAMPLE / "inferenceConfig.json")
    deployment = load_deployment_config(SAMPLE / "deploymentConfig.json")

    assert inference.entry_script == SAMPLE / "score.py"
    assert inference.conda_file == SAMPLE / "myenv.yml"
    assert deployment.compute_type == "PROCESS"


def test_sample_environment_pins_keras_2_and_numpy_1_and_skips_azureml_defaults() -> None:
    from mlcli.config import load_inference_config
    from mlcli.environments import spec_for

    spec = spec_for(load_inference_config(SAMPLE / "inferenceConfig.json"))

    assert spec.python == "3.11"
    assert {"tensorflow-cpu==2.15.1", "keras==2.15.0", "numpy==1.26.4"} <= set(spec.requirements)
    assert "azureml-defaults" in spec.skipped_azureml


def test_generated_corpus_is_balanced_distinct_and_the_same_on_every_run() -> None:
    train = load_sample_module("train")

    first = train.make_corpus(train.random.Random(train.SEED))
    again = train.make_corpus(train.random.Random(train.SEED))

    assert first == again
    labels = [label for _, label in first]
    assert {label: labels.count(label) for label in set(labels)} == dict.fromkeys(
        ("NEGATIVE", "NEUTRAL", "POSITIVE"), train.PER_CLASS
    )
    assert len({text for text, _ in first}) == len(first)


@pytest.fixture
def demo_service() -> Iterator[str]:
    """The name the demo deploys under; the service is deleted afterwards, whatever happened."""
    yield "myservice"
    ml("service", "delete", "-n", "myservice")


def deployment_config(tmp_path: Path, compute_type: str, port: int) -> Path:
    path = tmp_path / "deploymentConfig.json"
    path.write_text(json.dumps({"computeType": compute_type, "port": port}))
    return path


def assert_scores_like_the_tutorial(service: str) -> None:
    client = load_sample_module("client")
    shown = ml("service", "show", "-n", service)
    assert shown.returncode == 0, shown.stderr
    uri = json.loads(shown.stdout)["scoringUri"]

    positive = client.score(uri, "Today is a great day!")
    negative = client.score(uri, "This is a terrible day, everything went wrong.")

    assert positive.status == 200, positive.body
    assert (positive.body["label"], negative.body["label"]) == ("POSITIVE", "NEGATIVE")
    assert negative.body["score"] <= 0.4 < 0.7 <= positive.body["score"]
    assert set(positive.body) == {"label", "score", "elapsed_time"}


@pytest.mark.slow
def test_make_demo_on_process_trains_registers_deploys_and_labels_and_reruns_reusing_all(
    tmp_path: Path, free_port: int, demo_service: str
) -> None:
    models = tmp_path / "models"
    dc = deployment_config(tmp_path, "PROCESS", free_port)

    first = run_demo("--models", str(models), "--dc", str(dc))

    assert first.returncode == 0, first.stdout + first.stderr
    assert sorted(p.name for p in models.iterdir()) == sorted(MODEL_FILES)
    assert_scores_like_the_tutorial(demo_service)
    trained_at = {name: (models / name).stat().st_mtime_ns for name in MODEL_FILES}

    again = run_demo("--models", str(models), "--dc", str(dc))

    assert again.returncode == 0, again.stdout + again.stderr
    assert {name: (models / name).stat().st_mtime_ns for name in MODEL_FILES} == trained_at
    versions = json.loads(ml("model", "list", "-n", "sentiment").stdout)
    assert [v["version"] for v in versions] == [1]
    assert_scores_like_the_tutorial(demo_service)


@pytest.mark.slow
def test_make_demo_falls_back_to_a_free_port_when_the_configs_is_taken(
    tmp_path: Path, demo_service: str
) -> None:
    with port_taken() as busy:
        dc = deployment_config(tmp_path, "PROCESS", busy)

        result = run_demo("--models", str(tmp_path / "models"), "--dc", str(dc))

        assert result.returncode == 0, result.stdout + result.stderr
        assert f"port {busy} (deploymentConfig.json) is taken by another program" in result.stdout
        uri = json.loads(ml("service", "show", "-n", demo_service).stdout)["scoringUri"]
        assert f":{busy}/" not in uri
        assert uri in result.stdout.replace("\n", "")  # the port it used is printed
        assert_scores_like_the_tutorial(demo_service)


@pytest.mark.slow
@pytest.mark.docker
def test_make_demo_on_local_docker_labels_positive_and_negative(
    tmp_path: Path, free_port: int, demo_service: str
) -> None:
    pytest.importorskip("mlcli.targets.docker", reason="the LOCAL (Docker) target is not built yet")
    dc = deployment_config(tmp_path, "LOCAL", free_port)

    result = run_demo("--models", str(tmp_path / "models"), "--dc", str(dc))

    assert result.returncode == 0, result.stdout + result.stderr
    assert_scores_like_the_tutorial(demo_service)
