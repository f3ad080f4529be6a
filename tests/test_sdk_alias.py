"""The opt-in alias: with the real SDK absent, unchanged `azureml.*` imports resolve to
mlcli.azureml (`python -m mlcli.azureml script.py`, or importing mlcli.azureml.alias)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

V1_SCRIPT = """\
import sys
from azureml.core import Workspace, Model
from azureml.core.model import InferenceConfig
from azureml.core.webservice import AciWebservice, Webservice
from azureml.core.authentication import InteractiveLoginAuthentication
from azureml.exceptions import WebserviceException
import mlcli.azureml.exceptions

ws = Workspace.from_config(auth=InteractiveLoginAuthentication())
try:
    Webservice(ws, "absent")
except mlcli.azureml.exceptions.WebserviceException as exc:
    caught = "not found" in exc.message
print(Model.__module__, ws.name, caught, WebserviceException is mlcli.azureml.exceptions.WebserviceException, sys.argv[1:])
"""  # noqa: E501


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True)


def test_python_m_mlcli_azureml_runs_a_v1_script_unchanged(tmp_path: Path) -> None:
    (tmp_path / "pipeline.py").write_text(V1_SCRIPT)

    done = run("-m", "mlcli.azureml", "pipeline.py", "--epochs", "3", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "mlcli.azureml.core.model",
        "default",
        "True",
        "True",
        "['--epochs',",
        "'3']",
    ]
    assert "InteractiveLoginAuthentication is not used" in done.stderr


def test_importing_the_alias_module_first_is_the_one_line_opt_in(tmp_path: Path) -> None:
    (tmp_path / "notebook.py").write_text("import mlcli.azureml.alias\n" + V1_SCRIPT)

    done = run("notebook.py", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mlcli.azureml.core.model default True True")


def test_without_the_opt_in_azureml_is_not_importable(tmp_path: Path) -> None:
    done = run("-c", "import azureml.core", cwd=tmp_path)

    assert done.returncode == 1
    assert "No module named 'azureml'" in done.stderr


def test_a_module_mlcli_does_not_provide_names_what_it_covers(tmp_path: Path) -> None:
    done = run("-c", "import mlcli.azureml.alias, azureml.train.estimator", cwd=tmp_path)

    assert "mlcli stands in for the v1 SDK's azureml.core" in done.stderr


@pytest.mark.slow
def test_the_real_sdk_wins_when_it_is_installed(tmp_path: Path, v1_sdk_python: Path) -> None:
    import mlcli

    code = (
        "import sys; sys.path.append(sys.argv[1]); import mlcli.azureml.alias as a; "
        "import azureml.core; print(a.install(), azureml.core.__file__)"
    )
    project = str(Path(mlcli.__file__).parents[1])

    done = subprocess.run(
        [str(v1_sdk_python), "-W", "ignore", "-c", code, project],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )

    assert done.returncode == 0, done.stderr
    installed, location = done.stdout.split()
    assert installed == "False"
    assert "site-packages/azureml/core" in location
