"""Model environments: conda files -> pip specs, interpreter choice, real uv builds (cached,
locked, atomic), the staged server runtime and pruning."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlcli.config import InferenceConfig, load_inference_config
from mlcli.environments import (
    ensure_environment,
    frozen_requirements,
    list_environments,
    prune,
    server_runtime_path,
    spec_for,
    spec_for_conda_file,
)
from mlcli.environments.build import find_uv, load_environment
from mlcli.environments.conda import conda_requirements, parse_match_spec
from mlcli.environments.interpreters import choose_interpreter, installed_interpreters
from mlcli.environments.spec import minimal_spec, server_requirements
from mlcli.errors import ConfigError, EnvironmentBuildError, NotFoundError
from mlcli.paths import envs_dir


def write_conda_file(folder: Path, body: str, name: str = "env.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


def installed_minors() -> set[tuple[int, int]]:
    return {i.version[:2] for i in installed_interpreters(find_uv())}


# --- conda match specs -> pip requirements --------------------------------------------------


@pytest.mark.parametrize(
    ("conda", "pip"),
    [
        ("numpy", ("numpy", "")),
        ("numpy=1.26", ("numpy", "==1.26.*")),
        ("numpy==1.26.4", ("numpy", "==1.26.4")),
        ("numpy=1.26.4=py311_0", ("numpy", "==1.26.4")),
        ("numpy 1.26", ("numpy", "==1.26")),
        ("numpy 1.26.* py311_0", ("numpy", "==1.26.*")),
        ("numpy=1.26.*", ("numpy", "==1.26.*")),
        ("scikit-learn>=1.3", ("scikit-learn", ">=1.3")),
        ("scikit-learn>=1.3,<2", ("scikit-learn", ">=1.3,<2")),
        ("scikit-learn >=1.3, <2", ("scikit-learn", ">=1.3,<2")),
        ("pandas!=2.0.0", ("pandas", "!=2.0.0")),
        ("conda-forge::numpy=1.26", ("numpy", "==1.26.*")),
        ("numpy=*", ("numpy", "")),
    ],
)
def test_a_conda_match_spec_becomes_the_pip_constraint_with_the_same_meaning(
    conda: str, pip: tuple[str, str]
) -> None:
    assert parse_match_spec(conda, where="env.yml") == pip


def test_conda_names_that_differ_on_pypi_are_renamed_and_infrastructure_is_skipped() -> None:
    document = {
        "name": "project_environment",
        "channels": ["pytorch", "conda-forge"],
        "dependencies": [
            "python=3.10",
            "pip=23.1",
            "setuptools",
            "openssl",
            "libgcc-ng",
            "_libgcc_mutex",
            "cudatoolkit=11.8",
            "pytorch=2.1",
            "py-xgboost>=1.7",
            "librosa",
            {"pip": ["azureml-defaults==1.55", "inference-schema[numpy-support]", "--pre"]},
        ],
    }

    conda = conda_requirements(document, where="env.yml")

    assert conda.python == "3.10"
    assert conda.requirements == (
        "torch==2.1.*",
        "xgboost>=1.7",
        "librosa",
        "azureml-defaults==1.55",
        "inference-schema[numpy-support]",
        "--pre",
    )
    assert conda.skipped == (
        "pip=23.1",
        "setuptools",
        "openssl",
        "libgcc-ng",
        "_libgcc_mutex",
        "cudatoolkit=11.8",
    )
    assert conda.origins["torch"] == "pytorch=2.1"


@pytest.mark.parametrize(
    ("python", "requested"),
    [
        ("python=3.9", "3.9"),
        ("python==3.8.5", "3.8.5"),
        ("python>=3.10", ">=3.10"),
        ("python", None),
    ],
)
def test_the_python_entry_becomes_the_requested_interpreter(
    python: str, requested: str | None
) -> None:
    assert conda_requirements({"dependencies": [python]}, where="x").python == requested


def test_azureml_runtime_packages_are_left_out_and_the_server_requirements_added(
    tmp_path: Path,
) -> None:
    path = write_conda_file(
        tmp_path,
        """
        dependencies:
          - python=3.11
          - scikit-learn=1.5
          - pip:
            - azureml-defaults>=1.40
            - azureml-core
            - azureml-inference-server-http
            - joblib
        """,
    )

    spec = spec_for_conda_file(path)

    assert spec.python == "3.11"
    assert spec.skipped_azureml == (
        "azureml-defaults>=1.40",
        "azureml-core",
        "azureml-inference-server-http",
    )
    assert not any(r.startswith("azureml") for r in spec.requirements)
    assert {"scikit-learn==1.5.*", "joblib", *server_requirements()} == set(spec.requirements)
    assert spec.source == f"conda file {path}"


def test_the_key_ignores_the_order_of_packages_and_changes_with_their_versions(
    tmp_path: Path,
) -> None:
    one = write_conda_file(tmp_path, "dependencies: [python=3.11, six, packaging]", "a.yml")
    same = write_conda_file(tmp_path, "dependencies: [python=3.11, packaging, six]", "b.yml")
    other = write_conda_file(tmp_path, "dependencies: [python=3.11, six=1.16, packaging]", "c.yml")

    assert spec_for_conda_file(one).key == spec_for_conda_file(same).key
    assert spec_for_conda_file(one).key != spec_for_conda_file(other).key
    assert len(spec_for_conda_file(one).key) == 16


@pytest.mark.slow
def test_a_pip_entry_naming_a_local_file_reads_it_beside_the_conda_file_and_keys_its_content(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "extra.txt").write_text("six==1.16.0\n")
    path = write_conda_file(folder, "dependencies: [python=3.11, {pip: [-r extra.txt]}]")
    spec = spec_for_conda_file(path)

    env = ensure_environment(spec)
    (folder / "extra.txt").write_text("six==1.17.0\n")

    assert f"-r {folder / 'extra.txt'}" in spec.requirements
    assert "six==1.16.0" in frozen_requirements(env)
    assert spec_for_conda_file(path).key != spec.key


def test_no_conda_file_means_the_servers_own_requirements_on_mlclis_python() -> None:
    spec = minimal_spec()

    assert spec.requirements == tuple(sorted(server_requirements()))
    assert spec.python == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_a_conda_file_that_is_not_yaml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = write_conda_file(tmp_path, "dependencies: [python=3.11\n  - oops: : :\n")

    with pytest.raises(ConfigError) as caught:
        spec_for_conda_file(path)

    assert str(path) in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_missing_conda_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        spec_for_conda_file(tmp_path / "nope.yml")


@pytest.mark.parametrize("entry", ["numpy[version='>=1.2']", "numpy 1.2|1.3"])
def test_conda_forms_pip_cannot_express_are_refused_with_the_entry_named(entry: str) -> None:
    with pytest.raises(ConfigError) as caught:
        conda_requirements({"dependencies": [entry]}, where="env.yml")

    assert entry in str(caught.value)
    assert "env.yml, field dependencies" in str(caught.value)


# --- inference configs -> specs --------------------------------------------------------------


def inference_config(folder: Path, document: dict) -> InferenceConfig:
    source = folder / "src"
    source.mkdir(exist_ok=True)
    (source / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    path = folder / "inferenceConfig.json"
    path.write_text(json.dumps({"entryScript": "score.py", "sourceDirectory": "src", **document}))
    return load_inference_config(path)


def test_an_inference_configs_conda_file_is_read_relative_to_its_source_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "src").mkdir()
    write_conda_file(tmp_path / "src", "dependencies: [python=3.10, six]", "myenv.yml")

    spec = spec_for(inference_config(tmp_path, {"condaFile": "myenv.yml"}))

    assert spec.python == "3.10"
    assert "six" in spec.requirements
    assert spec.source == f"conda file {tmp_path / 'src' / 'myenv.yml'}"


def test_an_inline_environment_wins_over_the_legacy_conda_file(tmp_path: Path) -> None:
    environment = {
        "name": "myenv",
        "python": {
            "userManagedDependencies": False,
            "condaDependencies": {
                "dependencies": ["python=3.9", {"pip": ["azureml-defaults", "packaging"]}]
            },
        },
    }

    spec = spec_for(
        inference_config(tmp_path, {"condaFile": "absent.yml", "environment": environment})
    )

    assert spec.python == "3.9"
    assert "packaging" in spec.requirements
    assert spec.skipped_azureml == ("azureml-defaults",)


def test_a_curated_environment_by_name_is_its_python_and_pypi_packages(tmp_path: Path) -> None:
    ic = inference_config(
        tmp_path, {"environment": {"name": "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu"}}
    )

    spec = spec_for(ic)

    assert spec.python == "3.8"
    assert "scikit-learn==1.0.*" in spec.requirements


def test_an_unknown_curated_name_is_not_found_naming_the_families(tmp_path: Path) -> None:
    ic = inference_config(tmp_path, {"environment": {"name": "AzureML-Triton-22", "version": "1"}})

    with pytest.raises(NotFoundError) as caught:
        spec_for(ic)

    assert "'AzureML-Triton-22'" in str(caught.value)
    assert "AzureML-sklearn|tensorflow|pytorch" in str(caught.value)


def test_no_inference_config_and_none_without_conda_file_both_give_the_minimal_set(
    tmp_path: Path,
) -> None:
    assert spec_for(None) == minimal_spec()
    assert spec_for(inference_config(tmp_path, {})) == minimal_spec()


# --- interpreter choice ---------------------------------------------------------------------


def test_python_3_9_picks_an_installed_3_9_without_a_note() -> None:
    if (3, 9) not in installed_minors():
        pytest.skip("no Python 3.9 on this machine (pyenv install 3.9)")

    choice = choose_interpreter("3.9", uv=find_uv())

    assert choice.interpreter.version[:2] == (3, 9)
    assert choice.note is None


def test_a_python_newer_than_any_installed_picks_the_newest_and_says_so() -> None:
    newest = max(installed_interpreters(find_uv()))

    choice = choose_interpreter("3.99", uv=find_uv())

    assert choice.interpreter.version[:2] == newest.version[:2]
    assert choice.note.startswith("python=3.99 is not installed here; using Python ")
    assert newest.version_text in choice.note


def test_a_python_older_than_mlcli_supports_picks_the_oldest_supported_and_says_so() -> None:
    oldest = min(i for i in installed_interpreters(find_uv()) if i.version >= (3, 8))

    choice = choose_interpreter("3.5", uv=find_uv())

    assert choice.interpreter.version[:2] == oldest.version[:2]
    assert f"using Python {oldest.version_text}" in choice.note


def test_a_python_range_picks_the_newest_interpreter_inside_it() -> None:
    inside = [i for i in installed_interpreters(find_uv()) if (3, 9) <= i.version[:2] < (3, 12)]
    if not inside:
        pytest.skip("no Python 3.9-3.11 on this machine")

    choice = choose_interpreter(">=3.9,<3.12", uv=find_uv())

    assert choice.interpreter == max(inside)


def test_python_2_is_refused() -> None:
    with pytest.raises(EnvironmentBuildError, match="Python 3 only"):
        choose_interpreter("2.7", uv=find_uv())


# --- real builds ----------------------------------------------------------------------------


def run_in(env_python: Path, code: str, **extra_env: str) -> str:
    """Run code with the environment's python, from a folder with no mlcli checkout in it."""
    result = subprocess.run(
        [str(env_python), "-c", code],
        cwd=env_python.parent,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **extra_env},
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.slow
def test_a_conda_file_builds_an_env_with_its_packages_and_the_server_but_no_azureml(
    tmp_path: Path,
) -> None:
    if (3, 9) not in installed_minors():
        pytest.skip("no Python 3.9 on this machine (pyenv install 3.9)")
    path = write_conda_file(
        tmp_path,
        """
        name: project_environment
        dependencies:
          - python=3.9
          - six=1.16
          - pip
          - pip:
            - azureml-defaults
        """,
    )
    progress: list[str] = []

    env = ensure_environment(spec_for_conda_file(path), on_progress=progress.append)

    server_packages = [re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0] for r in server_requirements()]
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def has(n):\n"
        "    try: m.version(n); return True\n"
        "    except m.PackageNotFoundError: return False\n"
        f"print(json.dumps([sys.version_info[:2], m.version('six'), has('azureml-defaults'),"
        f" [has(n) for n in {server_packages!r}]]))"
    )
    seen = json.loads(run_in(env.python, code))
    assert seen == [[3, 9], "1.16.0", False, [True] * len(server_packages)]
    assert env.path == envs_dir() / env.key
    assert any("azureml-defaults: not installed" in line for line in progress)
    assert "six==1.16.0" in frozen_requirements(env)


@pytest.mark.slow
def test_the_same_spec_twice_builds_once_and_returns_the_same_environment(
    tmp_path: Path,
) -> None:
    spec = spec_for_conda_file(write_conda_file(tmp_path, "dependencies: [python=3.11, six]"))
    ensure_environment(spec)
    first_inode = (envs_dir() / spec.key).stat().st_ino
    progress: list[str] = []

    again = ensure_environment(spec, on_progress=progress.append)

    assert again.key == spec.key
    assert (envs_dir() / spec.key).stat().st_ino == first_inode
    assert progress == [f"using cached environment {spec.key} (Python {again.python_version})"]
    assert [e.key for e in list_environments()] == [spec.key]


@pytest.mark.slow
def test_an_environment_whose_interpreter_vanished_is_rebuilt(tmp_path: Path) -> None:
    spec = spec_for_conda_file(write_conda_file(tmp_path, "dependencies: [python=3.11, six]"))
    env = ensure_environment(spec)
    env.python.unlink()
    env.python.symlink_to(tmp_path / "uninstalled-python3.11")  # as after `pyenv uninstall`
    progress: list[str] = []

    again = ensure_environment(spec, on_progress=progress.append)

    assert run_in(again.python, "import six; print('ok')") == "ok"
    assert any("lost its interpreter" in line for line in progress)


BUILDER = """
import sys, time
from pathlib import Path
from mlcli.environments import ensure_environment, spec_for_conda_file
hang_at = sys.argv[3] if len(sys.argv) > 3 else None
def report(line):
    print(line, flush=True)
    while hang_at and line.startswith(hang_at):  # stay mid-build until killed
        time.sleep(1)
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
env = ensure_environment(spec_for_conda_file(Path(sys.argv[1])), on_progress=report)
print("PATH", env.path, flush=True)
"""


@pytest.mark.slow
def test_two_processes_building_the_same_spec_at_once_build_it_once(tmp_path: Path) -> None:
    path = write_conda_file(tmp_path, "dependencies: [python=3.11, six, packaging]")
    go = tmp_path / "go"
    builders = [
        subprocess.Popen(
            [sys.executable, "-c", BUILDER, str(path), str(go)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]

    go.touch()
    outputs = [builder.communicate(timeout=300)[0] for builder in builders]

    assert [b.returncode for b in builders] == [0, 0]
    lines = "\n".join(outputs).splitlines()
    assert len([line for line in lines if line.startswith("building environment")]) == 1
    assert len({line for line in lines if line.startswith("PATH ")}) == 1
    assert len(list_environments()) == 1


@pytest.mark.slow
def test_a_build_killed_mid_install_leaves_no_environment_and_the_next_build_succeeds(
    tmp_path: Path,
) -> None:
    path = write_conda_file(tmp_path, "dependencies: [python=3.11, six, packaging, idna]")
    go = tmp_path / "go"
    go.touch()
    builder = subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(path), str(go), "uv: Resolved"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert builder.stdout is not None
    for line in builder.stdout:  # the venv exists and uv is installing into it
        if line.startswith("uv: Resolved"):
            break
    builder.send_signal(signal.SIGKILL)
    builder.wait()
    spec = spec_for_conda_file(path)

    assert load_environment(spec.key) is None
    assert not (envs_dir() / spec.key).exists()
    env = ensure_environment(spec)
    assert run_in(env.python, "import six, idna; print('ok')") == "ok"
    assert list(envs_dir().glob(".building-*")) == []


@pytest.mark.slow
def test_ctrl_c_mid_install_stops_uv_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = write_conda_file(tmp_path, "dependencies: [python=3.11, six, packaging, certifi]")
    go = tmp_path / "go"
    go.touch()
    builder = subprocess.Popen(
        [sys.executable, "-c", BUILDER, str(path), str(go), "uv: Resolved"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert builder.stdout is not None
    for line in builder.stdout:
        if line.startswith("uv: Resolved"):
            break

    builder.send_signal(signal.SIGINT)
    _, stderr = builder.communicate(timeout=60)

    assert "KeyboardInterrupt" in stderr
    assert list(envs_dir().glob(".building-*")) == []
    assert list_environments() == []


@pytest.mark.slow
def test_a_package_pypi_does_not_have_is_an_error_naming_the_conda_entry(tmp_path: Path) -> None:
    path = write_conda_file(
        tmp_path, "dependencies: [python=3.11, six, mlcli-no-such-package-zz=1.0]"
    )

    with pytest.raises(EnvironmentBuildError) as caught:
        ensure_environment(spec_for_conda_file(path))

    message = str(caught.value)
    assert "'mlcli-no-such-package-zz=1.0'" in message
    assert "not on PyPI" in message
    assert str(path) in message
    assert list_environments() == []


def test_a_missing_version_is_an_error_quoting_uv(tmp_path: Path) -> None:
    path = write_conda_file(tmp_path, "dependencies: [python=3.11, six=99.1]")

    with pytest.raises(EnvironmentBuildError) as caught:
        ensure_environment(spec_for_conda_file(path))

    assert "six==99.1.*" in str(caught.value)
    assert list(envs_dir().glob(".building-*")) == []


# --- the staged server runtime --------------------------------------------------------------


def test_the_server_runtime_holds_only_mlcli_init_and_the_server_package() -> None:
    runtime = server_runtime_path()

    files = {p.relative_to(runtime).as_posix() for p in runtime.rglob("*") if p.is_file()}
    assert "mlcli/__init__.py" in files
    assert files - {"mlcli/__init__.py"}
    assert all(f.startswith("mlcli/server/") for f in files - {"mlcli/__init__.py"})
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)
    assert server_runtime_path() == runtime


@pytest.mark.slow
def test_a_model_env_sees_the_server_runtime_but_not_the_cli_side() -> None:
    env = ensure_environment(minimal_spec())
    runtime = server_runtime_path()
    code = (
        "import importlib.util as u, json, sys\n"
        "print(json.dumps([u.find_spec('mlcli') is not None, u.find_spec('rich') is None,"
        " u.find_spec('mlcli.cli') is None, any('.venv' in p for p in sys.path)]))"
    )

    seen = json.loads(run_in(env.python, code, PYTHONPATH=str(runtime)))

    assert seen == [True, True, True, False]


@pytest.mark.slow
@pytest.mark.parametrize(
    "python",
    [
        "3.9",
        "3.11",
    ],
)
def test_the_scoring_server_starts_from_the_runtime_in_an_env_of_each_python(
    python: str, tmp_path: Path
) -> None:
    if tuple(int(p) for p in python.split(".")) not in installed_minors():
        pytest.skip(f"no Python {python} on this machine")
    path = write_conda_file(tmp_path, f"dependencies: [python={python}]")
    env = ensure_environment(spec_for_conda_file(path))

    result = subprocess.run(
        [str(env.python), "-m", "mlcli.server", "--help"],
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(server_runtime_path())},
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert "--entry-script" in result.stdout


# --- pruning ------------------------------------------------------------------------------


@pytest.mark.slow
def test_prune_removes_unused_environments_and_leftovers_but_keeps_recent_ones(
    tmp_path: Path,
) -> None:
    env = ensure_environment(minimal_spec())
    leftover = envs_dir() / ".building-0123456789abcdef-999999"
    leftover.mkdir()

    kept = prune()  # default: only environments nobody asked for within the last hour
    old = time.time() - 7200
    os.utime(env.path / ".last-used", (old, old))
    removed = prune()

    assert [r.reason for r in kept] == ["leftover of an interrupted build or delete"]
    assert [r.key for r in removed] == [env.key]
    assert list_environments() == []
    assert not leftover.exists()
