"""`ml env build|list|show|prune|delete`: what a user sees on stdout, stderr and exit codes."""

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from deploy_support import record_service

from mlcli.cli import ml
from mlcli.paths import envs_dir


@pytest.fixture
def conda_file(tmp_path: Path) -> Path:
    path = tmp_path / "myenv.yml"
    path.write_text(
        "name: project_environment\n"
        "dependencies:\n"
        "  - python=3.11\n"
        "  - six\n"
        "  - pip:\n"
        "    - azureml-defaults\n"
    )
    return path


@pytest.fixture
def built(conda_file: Path) -> dict:
    result = CliRunner().invoke(ml, ["env", "build", "--cf", str(conda_file)])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def record_service_using(name: str, env_key: str) -> None:
    """A service record as deploy writes it: its document names the environment's key."""
    record_service(name, document={"name": name, "environment": {"key": env_key}})


@pytest.mark.slow
def test_build_prints_the_environment_and_says_azureml_defaults_is_not_installed(
    conda_file: Path,
) -> None:
    result = CliRunner().invoke(ml, ["env", "build", "--cf", str(conda_file)])

    assert result.exit_code == 0, result.stderr
    env = json.loads(result.stdout)
    assert Path(env["python"]).is_file()
    assert env["pythonVersion"].startswith("3.11.")
    assert any(p.startswith("six==") for p in env["packages"])
    assert not any(p.startswith("azureml") for p in env["packages"])
    assert "azureml-defaults: not installed" in result.stderr


@pytest.mark.slow
def test_list_shows_each_environment_and_who_uses_it(built: dict) -> None:
    record_service_using("svc", built["key"])

    result = CliRunner().invoke(ml, ["env", "list"])

    assert result.exit_code == 0, result.stderr
    [listed] = json.loads(result.stdout)
    assert listed["key"] == built["key"]
    assert listed["usedBy"] == ["default/svc"]
    assert listed["pythonVersion"] == built["pythonVersion"]


@pytest.mark.slow
def test_list_takes_azure_clis_output_and_query_options(built: dict) -> None:
    result = CliRunner().invoke(ml, ["env", "list", "--query", "[].key", "-o", "tsv"])

    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{built['key']}\n"


@pytest.mark.slow
def test_show_finds_an_environment_by_a_prefix_of_its_key(built: dict) -> None:
    result = CliRunner().invoke(ml, ["env", "show", "-k", built["key"][:6]])

    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["key"] == built["key"]
    assert shown["packages"] == built["packages"]
    assert shown["sizeBytes"] > 0


def test_showing_an_unknown_environment_exits_3_and_explains_on_stderr() -> None:
    result = CliRunner().invoke(ml, ["env", "show", "-k", "feedbeef"])

    assert result.exit_code == 3
    assert result.stdout == ""
    assert "feedbeef" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_conda_package_pypi_lacks_exits_1_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    path.write_text("dependencies:\n  - python=3.11\n  - mlcli-no-such-package-zz\n")

    result = CliRunner().invoke(ml, ["env", "build", "--cf", str(path)])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "mlcli-no-such-package-zz" in result.stderr
    assert "not on PyPI" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_prune_keeps_recently_used_and_in_use_environments_and_removes_the_rest(
    built: dict, tmp_path: Path
) -> None:
    other = tmp_path / "other.yml"
    other.write_text("dependencies: [python=3.11, packaging]\n")
    in_use = json.loads(CliRunner().invoke(ml, ["env", "build", "--cf", str(other)]).stdout)
    record_service_using("svc", in_use["key"])
    old = time.time() - 3 * 86400
    for key in (built["key"], in_use["key"]):
        os.utime(envs_dir() / key / ".last-used", (old, old))

    recent = CliRunner().invoke(ml, ["env", "prune", "--older-than", "7d"])
    result = CliRunner().invoke(ml, ["env", "prune", "--older-than", "2d"])

    assert json.loads(recent.stdout) == []
    assert [r["key"] for r in json.loads(result.stdout)] == [built["key"]]
    remaining = json.loads(CliRunner().invoke(ml, ["env", "list"]).stdout)
    assert [e["key"] for e in remaining] == [in_use["key"]]


def test_prune_with_a_bad_duration_exits_2() -> None:
    result = CliRunner().invoke(ml, ["env", "prune", "--older-than", "soon"])

    assert result.exit_code == 2
    assert "--older-than" in result.stderr


@pytest.mark.slow
def test_deleting_an_environment_a_service_uses_is_refused_with_exit_4(built: dict) -> None:
    record_service_using("svc", built["key"])

    refused = CliRunner().invoke(ml, ["env", "delete", "-k", built["key"]])
    forced = CliRunner().invoke(ml, ["env", "delete", "-k", built["key"], "--force"])

    assert refused.exit_code == 4
    assert "default/svc" in refused.stderr
    assert forced.exit_code == 0, forced.stderr
    assert not (envs_dir() / built["key"]).exists()
