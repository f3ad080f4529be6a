"""What a v1 user meets on day one, from a shell and from a CI log (no terminal): what mlcli
decided is on screen and stays there, paths resolve as v1's SDK resolved them."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import (
    ECHO_SCORE,
    PROGRESS_LINE,
    alive,
    invoke,
    ok,
    post,
    register_factor,
    wait_for,
    write,
)

# The tutorial's conda file, as v1 repositories still hold it.
TUTORIAL_CONDA = """\
name: myenv
channels:
  - conda-forge
dependencies:
  - python=3.6.2
  - cudatoolkit=10.1
  - pip
  - pip:
      - azureml-defaults
"""


def ml(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`ml` as a CI step runs it: a real process, its streams pipes, not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "mlcli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        check=False,
    )


def ml_on_a_terminal(*args: str, cwd: Path) -> tuple[int, str]:
    """`ml` with its stderr on a pseudo-terminal, as at a shell: exit code and what it showed."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "mlcli", *args],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "TERM": "xterm"},
    )
    os.close(terminal)
    shown = bytearray()
    while True:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode(errors="replace"))
    return process.wait(timeout=60), text.replace("\r", "\n")


@pytest.fixture
def tutorial_app(tmp_path: Path) -> Path:
    """The tutorial's layout: score.py, myenv.yml and inferenceConfig.json in one folder."""
    register_factor(tmp_path, "scale", 2)
    write(tmp_path / "app" / "score.py", ECHO_SCORE)
    write(tmp_path / "app" / "myenv.yml", TUTORIAL_CONDA)
    config = {"entryScript": "score.py", "runtime": "python", "condaFile": "myenv.yml"}
    write(tmp_path / "app" / "inferenceConfig.json", json.dumps(config))
    return tmp_path / "app"


# -- 3. a deploy in CI prints what it decided ----------------------------------------------


@pytest.mark.slow
def test_a_deploy_in_a_ci_log_keeps_every_decision_and_timestamps_its_steps(
    tutorial_app: Path,
) -> None:
    result = ml(
        "model", "deploy", "-n", "ci-svc", "-m", "scale:1",
        "--ic", str(tutorial_app / "inferenceConfig.json"),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any("python=3.6.2" in line and "using Python 3." in line for line in warnings)
    assert any("cudatoolkit=10.1" in line and "not installed" in line for line in warnings)
    assert any(line.startswith("warning: azureml-defaults: not installed") for line in warnings)
    steps = [line for line in result.stderr.splitlines() if PROGRESS_LINE.match(line)]
    assert any("starting the scoring server" in line for line in steps)
    assert any("is healthy at http://127.0.0.1:" in line for line in steps)
    assert json.loads(result.stdout)["state"] == "Healthy"


@pytest.mark.slow
def test_only_show_errors_silences_the_warnings_and_the_steps(tutorial_app: Path) -> None:
    result = ml(
        "model", "deploy", "-n", "quiet-svc", "-m", "scale:1", "--only-show-errors",
        "--ic", str(tutorial_app / "inferenceConfig.json"),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.slow
def test_on_a_terminal_warnings_stay_and_verbose_keeps_every_step(tutorial_app: Path) -> None:
    args = ("model", "deploy", "-n", "tty-svc", "-m", "scale:1", "--ic", "inferenceConfig.json")
    code, shown = ml_on_a_terminal(*args, cwd=tutorial_app)
    assert code == 0, shown
    assert "warning: azureml-defaults: not installed" in shown
    assert "python=3.6.2" in shown
    assert not any(PROGRESS_LINE.match(line) for line in shown.splitlines())  # steps flash

    code, shown = ml_on_a_terminal(*args, "--overwrite", "-v", cwd=tutorial_app)

    assert code == 0, shown
    kept = [line for line in shown.splitlines() if PROGRESS_LINE.match(line)]
    assert any("is healthy at http://127.0.0.1:" in line for line in kept)


# -- 4. paths: beside the config file, else the current folder as v1's SDK did -------------


def test_an_entry_script_beside_the_config_file_is_used_without_a_note(tmp_path: Path) -> None:
    write(tmp_path / "deploy" / "score.py", ECHO_SCORE)
    write(tmp_path / "deploy" / "inferenceConfig.json", json.dumps({"entryScript": "score.py"}))

    result = ml("config", "validate", "deploy/inferenceConfig.json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"]["entryScript"] == str(tmp_path / "deploy/score.py")
    assert result.stderr == ""


def test_paths_relative_to_the_current_folder_work_and_say_so(tmp_path: Path) -> None:
    """An SDK-era layout: the config in config/, paths written from the repository root."""
    write(tmp_path / "src" / "score.py", ECHO_SCORE)
    write(tmp_path / "environment" / "conda.yml", "dependencies:\n  - python=3.11\n")
    config = {
        "entryScript": "score.py",
        "sourceDirectory": "src",
        "condaFile": "environment/conda.yml",
    }
    write(tmp_path / "config" / "inferenceConfig.json", json.dumps(config))

    result = ml("config", "validate", "config/inferenceConfig.json", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    parsed = json.loads(result.stdout)["config"]
    assert parsed["sourceDirectory"] == str(tmp_path / "src")
    assert parsed["entryScript"] == str(tmp_path / "src" / "score.py")
    assert parsed["condaFile"] == str(tmp_path / "environment" / "conda.yml")
    assert "warning: sourceDirectory: 'src' is not beside the config file" in result.stderr
    assert "from the current folder, as v1's SDK resolved it" in result.stderr


def test_a_path_found_nowhere_names_every_place_looked(tmp_path: Path) -> None:
    write(tmp_path / "config" / "inferenceConfig.json", json.dumps({"entryScript": "score.py"}))

    result = ml("config", "validate", "config/inferenceConfig.json", cwd=tmp_path)

    assert result.returncode == 2
    assert str(tmp_path / "config" / "score.py") in result.stderr
    assert str(tmp_path / "score.py") in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_deploy_from_the_repository_root_finds_the_sdk_era_paths(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 3)
    write(tmp_path / "src" / "score.py", ECHO_SCORE)
    config = {"entryScript": "score.py", "sourceDirectory": "src"}
    write(tmp_path / "config" / "inferenceConfig.json", json.dumps(config))

    result = ml(
        "model", "deploy", "-n", "rootsvc", "-m", "scale:1",
        "--ic", "config/inferenceConfig.json", cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "from the current folder" in result.stderr
    uri = json.loads(result.stdout)["scoringUri"]
    assert post(uri, {"data": [1]}).json() == {"result": [3.0]}


# -- 8. no silent no-ops -----------------------------------------------------------------------


def test_aks_fields_in_a_local_config_are_warned_about_like_their_flags(tmp_path: Path) -> None:
    config = {
        "computeType": "local",
        "numReplicas": 3,
        "namespace": "ml",
        "autoScaler": {"autoscaleEnabled": False},
        "location": "westeurope",
    }
    path = write(tmp_path / "deploymentConfig.json", json.dumps(config))

    result = ml("config", "validate", str(path))

    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any(line.startswith("warning: numReplicas: replicas are AKS-only") for line in warnings)
    assert any(line.startswith("warning: namespace:") for line in warnings)
    assert any(line.startswith("warning: autoScaler:") for line in warnings)
    assert any(line.startswith("warning: location: Azure networking") for line in warnings)


def test_the_same_fields_on_aks_are_applied_and_not_warned_about(tmp_path: Path) -> None:
    config = {"computeType": "aks", "numReplicas": 3, "namespace": "ml"}
    path = write(tmp_path / "deploymentConfig.json", json.dumps(config))

    result = ml("config", "validate", str(path))

    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr


def test_resource_limits_in_a_process_config_are_warned_about(tmp_path: Path) -> None:
    config = {"computeType": "process", "containerResourceRequirements": {"cpu": 1}}
    path = write(tmp_path / "deploymentConfig.json", json.dumps(config))

    result = ml("config", "validate", str(path))

    assert "warning: containerResourceRequirements limits containers" in result.stderr


def test_the_spark_runtime_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "score.py", ECHO_SCORE)
    config = {"entryScript": "score.py", "runtime": "spark-py"}
    path = write(tmp_path / "inferenceConfig.json", json.dumps(config))

    result = ml("config", "validate", str(path))

    assert result.returncode == 2
    assert f"{path}: runtime: 'spark-py'" in result.stderr
    assert '"runtime": "python"' in result.stderr


def test_an_unknown_compute_type_filter_is_a_usage_error(tmp_path: Path) -> None:
    result = ml("service", "list", "-c", "FOO")

    assert result.returncode == 2
    assert "'FOO' is not one of" in result.stderr


def test_debug_shows_the_traceback_and_keeps_the_exit_code() -> None:
    plain = ml("model", "show", "-n", "nosuchmodel")
    debug = ml("model", "show", "-n", "nosuchmodel", "--debug")

    assert plain.returncode == debug.returncode == 3
    assert "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1] == plain.stderr.rstrip().splitlines()[-1]


# -- 6. a service whose server died can be started again ------------------------------------


def kill_server(name: str) -> dict:
    """SIGKILL a PROCESS service's server, as the OOM killer or a reboot would stop it."""
    shown = ok("service", "show", "-n", name)
    pid = shown["serverDetails"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the kill")
    return shown


@pytest.mark.slow
def test_restart_brings_a_killed_service_back_on_the_same_uri(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    ok("model", "deploy", "-n", "phoenix", "-m", "scale:1", "--es", str(script), "--tag", "a=1")
    before = kill_server("phoenix")
    listed = invoke("service", "list")
    assert "warning: phoenix is Unhealthy" in listed.stderr
    assert "ml service restart -n phoenix" in listed.stderr

    restarted = ok("service", "restart", "-n", "phoenix")

    assert restarted["state"] == "Healthy"
    assert restarted["scoringUri"] == before["scoringUri"]
    assert restarted["tags"] == {"a": "1"}
    assert restarted["serverDetails"]["pid"] != before["serverDetails"]["pid"]
    assert post(restarted["scoringUri"], {"data": [1]}).json() == {"result": [2.0]}
    assert ok("service", "show", "-n", "phoenix")["state"] == "Healthy"


@pytest.mark.slow
def test_an_update_with_no_change_restarts_an_unhealthy_service(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 4)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    ok("model", "deploy", "-n", "lazarus", "-m", "scale:1", "--es", str(script))
    before = kill_server("lazarus")

    result = invoke("service", "update", "-n", "lazarus")

    assert result.exit_code == 0, result.stderr
    assert "is Unhealthy (its server is down): restarting it" in result.stderr
    updated = json.loads(result.stdout)
    assert updated["state"] == "Healthy"
    assert post(before["scoringUri"], {"data": [1]}).json() == {"result": [4.0]}


def test_restart_of_an_unknown_service_is_not_found() -> None:
    result = ml("service", "restart", "-n", "nosuchsvc")

    assert result.returncode == 3
    assert "nosuchsvc" in result.stderr


# -- 5. workspaces: -w as v1 scripts pass it, read commands never create one ---------------


def test_a_model_registered_with_w_and_g_is_found_there_and_named_elsewhere(
    tmp_path: Path, mlcli_home: Path
) -> None:
    model = write(tmp_path / "model.pkl", "weights")
    ok("model", "register", "-p", str(model), "-n", "churn", "-w", "myworkspace", "-g", "myrg")

    found = invoke("model", "show", "-n", "churn", "-w", "myworkspace")
    missing = invoke("model", "show", "-n", "churn")

    assert found.exit_code == 0
    assert missing.exit_code == 3
    assert "workspace 'default'" in missing.stderr
    assert "It exists in workspace 'myworkspace' (-w myworkspace)" in missing.stderr


def test_a_mistyped_workspace_on_a_read_command_is_an_error_and_creates_nothing(
    tmp_path: Path, mlcli_home: Path
) -> None:
    ok("model", "register", "-p", str(write(tmp_path / "m.pkl", "x")), "-n", "m", "-w", "prod")

    for command in (("model", "list"), ("service", "list"), ("model", "show", "-n", "m")):
        result = invoke(*command, "-w", "prdo")
        assert result.exit_code == 3, command
        assert "workspace 'prdo' does not exist" in result.stderr
        assert "Did you mean -w prod?" in result.stderr
    assert sorted(p.name for p in (mlcli_home / "workspaces").iterdir()) == ["prod"]


def test_reading_the_default_workspace_on_a_new_machine_is_empty_and_creates_nothing(
    mlcli_home: Path,
) -> None:
    assert ok("model", "list") == []
    assert ok("service", "list") == []
    assert not (mlcli_home / "workspaces").exists()


def test_workspace_create_list_show_and_delete(tmp_path: Path) -> None:
    created = ok("workspace", "create", "-w", "staging")
    again = invoke("workspace", "create", "-w", "staging")
    ok("model", "register", "-p", str(write(tmp_path / "m.pkl", "x")), "-n", "m", "-w", "staging")

    assert created["name"] == "staging"
    assert again.exit_code == 4
    assert [w["name"] for w in ok("workspace", "list")] == ["staging"]
    assert ok("workspace", "show", "-w", "staging")["modelVersions"] == 1

    deleted = ok("workspace", "delete", "-w", "staging")

    assert deleted["deleted"] is True
    assert ok("workspace", "list") == []
    assert invoke("workspace", "show", "-w", "staging").exit_code == 3


@pytest.mark.slow
def test_a_workspace_with_services_is_deleted_only_with_all_resources(tmp_path: Path) -> None:
    ok(
        "model",
        "register",
        "-p",
        str(write(tmp_path / "f" / "factor.txt", "2")),
        "-n",
        "scale",
        "-w",
        "ws1",
    )
    script = write(tmp_path / "score.py", ECHO_SCORE)
    deployed = ok(
        "model", "deploy", "-n", "svc1", "-m", "scale:1", "--es", str(script), "-w", "ws1"
    )

    refused = invoke("workspace", "delete", "-w", "ws1")
    deleted = ok("workspace", "delete", "-w", "ws1", "--all-resources")

    assert refused.exit_code == 4
    assert "svc1" in refused.stderr
    assert deleted["deleted"] is True
    wait_for(lambda: not alive(deployed["serverDetails"]["pid"]), what="the server to stop")


def test_folder_attach_makes_a_project_use_its_workspace_without_w(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    monkeypatch.chdir(project)
    attached = ok("folder", "attach", "-w", "team", "-g", "myrg")
    config = json.loads((project / ".azureml" / "config.json").read_text())
    monkeypatch.chdir(project / "src")  # below the project folder, as in v1

    ok("model", "register", "-p", str(write(tmp_path / "m.pkl", "x")), "-n", "m")

    assert config["workspace_name"] == "team"
    assert config["resource_group"] == "myrg"
    assert attached["path"] == str(project / ".azureml" / "config.json")
    assert ok("folder", "show")["workspace_name"] == "team"
    assert [m["id"] for m in ok("model", "list", "-w", "team")] == ["m:1"]
    assert invoke("model", "list", "-w", "default").exit_code == 0
    assert ok("workspace", "show")["name"] == "team"


def test_a_projects_config_json_naming_a_missing_workspace_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "config.json", json.dumps({"workspace_name": "ghost"}))
    monkeypatch.chdir(tmp_path)

    result = invoke("model", "list")

    assert result.exit_code == 3
    assert f"{config} (ml folder attach), field workspace_name" in result.stderr


# -- 10. the JSON v1 scripts read, tables for people, logs for people ------------------------

V1_MODEL_FIELDS = (
    "createdTime", "updatedTime", "updatedAt", "experimentName", "runId",
    "sampleInputDatasetId", "sampleOutputDatasetId",
)  # fmt: skip
V1_SERVICE_FIELDS = (
    "imageId", "updatedTime", "updatedAt", "environmentDetails", "cpu", "memoryInGB", "gpu",
)  # fmt: skip


def test_model_json_carries_v1s_fields_null_when_unknown(tmp_path: Path) -> None:
    ok("model", "register", "-p", str(write(tmp_path / "m.pkl", "x")), "-n", "m")
    ok("model", "update", "-i", "m:1", "--add-tag", "stage=prod")

    shown = ok("model", "show", "-i", "m:1")
    listed = ok("model", "list")[0]

    for document in (shown, listed):
        assert set(V1_MODEL_FIELDS) <= set(document)
        assert document["runId"] is None
        assert document["experimentName"] is None
    assert shown["updatedTime"] == shown["updatedAt"]
    assert shown["updatedTime"] >= shown["createdTime"]


@pytest.mark.slow
def test_service_json_carries_v1s_fields(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    ok("model", "deploy", "-n", "fields", "-m", "scale:1", "--es", str(script))

    shown = ok("service", "show", "-n", "fields")

    assert set(V1_SERVICE_FIELDS) <= set(shown)
    assert shown["imageId"] is None  # PROCESS: no image
    assert shown["updatedAt"] == shown["updatedTime"]
    assert shown["environmentDetails"]["python"]["version"].startswith("3.")


def test_tables_join_lists_and_drop_fractions_of_seconds() -> None:
    from mlcli.cli.output import _table

    rows = [
        {"name": "svc", "models": ["a:1", "b:2"], "createdTime": "2026-12-03T08:39:31.123456+00:00"}
    ]

    text = _table(rows, ("name", "models", "createdTime"))

    assert "a:1, b:2" in text
    assert "2026-12-03T08:39:31+00:00" in text
    assert ".123456" not in text


def test_a_table_on_a_narrow_terminal_fits_it() -> None:
    from mlcli.cli.output import _clip, _fit

    widths = _fit([10, 60, 30], 80)

    assert sum(widths) + 2 * 2 <= 80
    assert widths[0] == 10  # the narrow column keeps its width
    assert _clip("a" * 30, 10) == "a" * 9 + "…"


def test_a_log_line_reads_as_one_line_for_people() -> None:
    from mlcli.cli.logs import readable

    access = json.dumps({
        "time": "2026-12-03T08:39:31.123Z", "level": "INFO", "logger": "mlcli.server.access",
        "pid": 7, "requestId": "r-1", "method": "POST", "path": "/score", "status": 200,
        "latencyMs": 1.5, "runMs": 0.7,
    })  # fmt: skip
    printed = json.dumps({
        "time": "2026-12-03T08:39:32.000Z", "level": "INFO", "logger": "score", "pid": 7,
        "stream": "stdout", "message": "loaded the model",
    })  # fmt: skip

    assert readable(access) == (
        "2026-12-03 08:39:31.123 INFO  POST /score 200 in 1.5 ms, run() 0.7 ms [r-1]"
    )
    assert readable(printed) == "2026-12-03 08:39:32.000 INFO  score: loaded the model"
    assert readable("not json") == "not json"


@pytest.mark.slow
def test_get_logs_is_json_lines_in_a_pipe_and_readable_when_asked(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    deployed = ok("model", "deploy", "-n", "logsvc", "-m", "scale:1", "--es", str(script))
    post(deployed["scoringUri"], {"data": [1]})

    raw = ml("service", "get-logs", "-n", "logsvc")
    readable = ml("service", "get-logs", "-n", "logsvc", "--readable")

    assert raw.returncode == readable.returncode == 0
    assert all(json.loads(line) for line in raw.stdout.splitlines())
    assert any(" POST /score 200 in " in line for line in readable.stdout.splitlines())
    assert not readable.stdout.lstrip().startswith("{")


# -- 7. no-code deployment: a framework model deploys without a score.py --------------------


@pytest.mark.slow
def test_a_scikit_learn_model_deploys_without_an_entry_script(tmp_path: Path) -> None:
    import joblib
    import numpy as np
    import sklearn
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(7)
    features = rng.normal(size=(50, 3))
    model = LinearRegression().fit(features, features @ [1.0, 2.0, 3.0] + 0.5)
    joblib.dump(model, tmp_path / "model.pkl")
    ok(
        "model", "register", "-p", str(tmp_path / "model.pkl"), "-n", "diabetes",
        "--model-framework", "ScikitLearn", "--model-framework-version", sklearn.__version__,
    )  # fmt: skip

    deployed = ok("model", "deploy", "-n", "nocode", "-m", "diabetes:1")

    rows = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    answer = post(deployed["scoringUri"], {"data": rows})
    assert answer.status_code == 200, answer.text
    assert answer.json() == pytest.approx(model.predict(np.array(rows)).tolist())
    assert deployed["environmentDetails"]["source"].startswith("no-code deployment of")


@pytest.mark.slow
def test_an_onnx_model_deploys_without_an_entry_script(tmp_path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[2.0], [-1.0]], dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "linear.onnx")
    ok("model", "register", "-p", str(tmp_path / "linear.onnx"), "-n", "lin",
       "--model-framework", "Onnx")  # fmt: skip

    deployed = ok("model", "deploy", "-n", "onnxsvc", "-m", "lin:1")

    answer = post(deployed["scoringUri"], {"data": [[1.0, 1.0], [3.0, 2.0]]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == [[1.0], [4.0]]


def test_a_model_of_another_framework_still_needs_a_score_py(tmp_path: Path) -> None:
    ok("model", "register", "-p", str(write(tmp_path / "m.pt", "x")), "-n", "torchy",
       "--model-framework", "PyTorch")  # fmt: skip

    result = invoke("model", "deploy", "-n", "torchsvc", "-m", "torchy:1")

    assert result.exit_code == 2
    assert "--model-framework ScikitLearn, Onnx or TensorFlow deploys without one" in result.stderr


# -- 12. unpinned v1 conda files: resolved versions, as of a date, and what to pin ---------

UNPINNED = "dependencies:\n  - python=3.11\n  - pip:\n      - requests\n"


@pytest.mark.slow
def test_an_unpinned_conda_file_resolves_as_of_a_date_and_records_the_versions(
    tmp_path: Path,
) -> None:
    conda = write(tmp_path / "env.yml", UNPINNED)

    built = ok("env", "build", "--cf", str(conda), "--as-of", "2021-06-01")
    today = ok("env", "build", "--cf", str(conda))

    assert "requests==2.25.1" in built["packages"]  # the release current on that day
    assert built["spec"]["asOf"] == "2021-06-01"
    assert built["key"] != today["key"]
    assert "requests==2.25.1" not in today["packages"]
    assert ok("env", "show", "-k", built["key"])["packages"] == built["packages"]


def test_packages_as_of_in_an_inference_config_must_be_a_date(tmp_path: Path) -> None:
    write(tmp_path / "score.py", ECHO_SCORE)
    good = {"entryScript": "score.py", "packagesAsOf": "2021-06-01"}
    bad = {"entryScript": "score.py", "packagesAsOf": "June 2021"}

    assert validated_inference(write(tmp_path / "good.json", json.dumps(good)))["packagesAsOf"]
    result = ml("config", "validate", str(write(tmp_path / "bad.json", json.dumps(bad))))
    assert result.returncode == 2
    assert "packagesAsOf" in result.stderr


def validated_inference(path: Path) -> dict:
    return ok("config", "validate", str(path), "--kind", "inference")["config"]


@pytest.mark.slow
def test_init_failing_inside_a_package_names_it_its_version_and_how_to_pin(
    tmp_path: Path,
) -> None:
    package = tmp_path / "brokenpkg"
    write(package / "pyproject.toml", BROKEN_PACKAGE_PROJECT)
    write(
        package / "brokenpkg" / "__init__.py",
        "raise TypeError('Descriptors cannot be created directly')\n",
    )
    conda = write(tmp_path / "app" / "env.yml", f"dependencies:\n  - pip:\n      - {package}\n")
    write(
        tmp_path / "app" / "score.py",
        "def init():\n    import brokenpkg\n\n\ndef run(d):\n    return d\n",
    )
    register_factor(tmp_path, "scale", 2)

    result = ml(
        "model", "deploy", "-n", "broken", "-m", "scale:1",
        "--es", str(tmp_path / "app" / "score.py"), "--cf", str(conda),
    )  # fmt: skip

    assert result.returncode != 0
    assert "init() failed inside brokenpkg 0.1.0" in result.stderr
    assert "--as-of YYYY-MM-DD" in result.stderr
    assert "Traceback" in result.stderr  # the script's own traceback is shown, ml's is not
    assert 'File "' in result.stderr


BROKEN_PACKAGE_PROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "brokenpkg"
version = "0.1.0"
"""


# -- 2. registered and curated environments ----------------------------------------------------


def test_an_environment_is_scaffolded_registered_listed_shown_and_downloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ok("environment", "scaffold", "-n", "myenv", "-d", "myenv")
    conda = tmp_path / "myenv" / "conda_dependencies.yml"
    conda.write_text(conda.read_text().replace("azureml-defaults", "requests"))

    first = ok("environment", "register", "-d", "myenv")
    same = ok("environment", "register", "-d", "myenv")
    conda.write_text(conda.read_text().replace("requests", "requests==2.31.0"))
    second = ok("environment", "register", "-d", "myenv")

    assert (first["version"], same["version"], second["version"]) == ("1", "1", "2")
    assert [(e["name"], e["version"]) for e in ok("environment", "list")] == [("myenv", "2")]
    assert ok("environment", "show", "-n", "myenv", "--version", "1")["version"] == "1"
    ok("environment", "download", "-n", "myenv", "--version", "1", "-d", "restored")
    assert "requests==2.31.0" not in (tmp_path / "restored" / "conda_dependencies.yml").read_text()
    assert invoke("environment", "download", "-n", "myenv", "-d", "restored").exit_code == 2


@pytest.mark.slow
def test_deploy_with_e_and_ev_builds_the_registered_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ok("environment", "scaffold", "-n", "scoring", "-d", "scoring")
    conda = tmp_path / "scoring" / "conda_dependencies.yml"
    conda.write_text(conda.read_text().replace("azureml-defaults", "six==1.16.0"))
    ok("environment", "register", "-d", "scoring")
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)

    deployed = ok(
        "model", "deploy", "-n", "envsvc", "-m", "scale:1", "--es", str(script),
        "-e", "scoring", "--ev", "1",
    )  # fmt: skip

    assert post(deployed["scoringUri"], {"data": [2]}).json() == {"result": [4.0]}
    built = ok("env", "show", "-k", deployed["environment"]["key"])
    assert "six==1.16.0" in built["packages"]


@pytest.mark.slow
def test_a_curated_name_in_an_inference_config_deploys(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 5)
    write(tmp_path / "score.py", ECHO_SCORE)
    config = {"entryScript": "score.py", "environment": {"name": "AzureML-Minimal"}}
    ic = write(tmp_path / "inferenceConfig.json", json.dumps(config))

    deployed = ok("model", "deploy", "-n", "curated", "-m", "scale:1", "--ic", str(ic))

    assert post(deployed["scoringUri"], {"data": [1]}).json() == {"result": [5.0]}


def test_curated_names_are_shown_as_pypi_specs_and_unknown_ones_listed() -> None:
    shown = ok("environment", "show", "-n", "AzureML-pytorch-1.10-ubuntu18.04-py38-cpu")
    unknown = invoke("environment", "show", "-n", "AzureML-Triton-22")

    conda = shown["python"]["condaDependencies"]["dependencies"]
    assert "python=3.8" in conda
    assert "torch==1.10.*" in conda[-1]["pip"]
    assert unknown.exit_code == 3
    assert "AzureML-sklearn|tensorflow|pytorch" in unknown.stderr
    assert "AzureML-Minimal" in [e["name"] for e in ok("environment", "list", "--curated")]


def test_an_unregistered_environment_name_is_not_found(tmp_path: Path) -> None:
    write(tmp_path / "score.py", ECHO_SCORE)
    register_factor(tmp_path, "scale", 5)

    result = invoke(
        "model", "deploy", "-n", "noenv", "-m", "scale:1", "--es", str(tmp_path / "score.py"),
        "-e", "nosuchenv",
    )  # fmt: skip

    assert result.exit_code == 3
    assert "no environment named 'nosuchenv'" in result.stderr
