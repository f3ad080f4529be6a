"""The tutorial's Python path (samples/sentiment/sdk_tutorial.py: its steps in order, only the
import prefix changed) deploys the trained sentiment model, on PROCESS and on LOCAL, and the
service answers POSITIVE for "Today is a great day!"; so does the notebook
(sdk_tutorial.ipynb: unchanged `azureml` imports after `%load_ext mlcli.azureml.alias`),
executed in a real Jupyter kernel."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import ok

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "sentiment"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory, shared_envs_dir: Path) -> Path:
    """samples/sentiment/train.py run once, in the environment the sample's conda file asks
    for (the one the tutorial's CondaDependencies ask for too)."""
    from mlcli.config import load_inference_config
    from mlcli.environments import ensure_environment, spec_for

    home = tmp_path_factory.mktemp("sentiment-home")
    (home / "envs").symlink_to(shared_envs_dir, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLCLI_HOME", str(home))
        env = ensure_environment(spec_for(load_inference_config(SAMPLE / "inferenceConfig.json")))
    models = tmp_path_factory.mktemp("sentiment") / "models"
    subprocess.run(
        [str(env.python), str(SAMPLE / "train.py"), "--out", str(models)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return models


@pytest.fixture
def tutorial_folder(tmp_path: Path, trained_models: Path) -> Path:
    """A folder as the tutorial has it: models/ and score.py."""
    folder = tmp_path / "tutorial"
    shutil.copytree(trained_models, folder / "models")
    shutil.copy(SAMPLE / "score.py", folder / "score.py")
    return folder


def run_tutorial(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SAMPLE / "sdk_tutorial.py")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=900,
    )


def assert_tutorial_output(done: subprocess.CompletedProcess[str], compute_type: str) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "Registering model sentiment" in lines
    assert "Healthy" in lines
    uri = next(line for line in lines if line.startswith("scoring URI: "))
    assert re.fullmatch(r"scoring URI: http://127\.0\.0\.1:\d+/score", uri)
    answer = lines[-1].replace("'", '"')
    assert json.loads(answer)["label"] == "POSITIVE"
    shown = ok("service", "show", "-n", "myservice")
    assert (shown["state"], shown["computeType"], shown["models"]) == (
        "Healthy",
        compute_type,
        ["sentiment:1"],
    )


def test_the_tutorials_python_steps_deploy_on_process_and_say_positive(
    tutorial_folder: Path,
    shared_environments: Path,
    services_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLCLI_COMPUTE_TYPE", "PROCESS")

    done = run_tutorial(tutorial_folder)

    assert_tutorial_output(done, "PROCESS")


@pytest.mark.docker
def test_the_tutorials_python_steps_deploy_on_local_docker_and_say_positive(
    tutorial_folder: Path,
    shared_environments: Path,
    services_cleanup: None,
    docker_labels: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLCLI_COMPUTE_TYPE", raising=False)

    done = run_tutorial(tutorial_folder)

    assert_tutorial_output(done, "LOCAL")
    ok("service", "delete", "-n", "myservice")


def test_the_tutorial_notebook_runs_in_a_kernel_with_unchanged_azureml_imports(
    tutorial_folder: Path,
    shared_environments: Path,
    services_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("MLCLI_COMPUTE_TYPE", "PROCESS")  # the kernel inherits it
    notebook = nbformat.read(SAMPLE / "sdk_tutorial.ipynb", as_version=4)

    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": tutorial_folder}},
    ).execute()

    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(
        "azureml" not in line or "mlcli" not in line
        for c in code[1:]
        for line in c.source.splitlines()
    )
    printed = "".join(o.get("text", "") for o in code[-2].outputs)
    assert "Healthy\nscoring URI: http://127.0.0.1:" in printed
    answer = code[-1].outputs[0]["data"]["text/plain"]
    assert "'label': 'POSITIVE'" in answer
    assert ok("service", "show", "-n", "myservice")["state"] == "Healthy"
