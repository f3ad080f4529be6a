"""`ml model deploy` on PROCESS: a scikit-learn model end to end, Azure's layout, and failures."""

from __future__ import annotations

import json
import os
import signal
import stat
from pathlib import Path

import pytest
from deploy_support import (
    ECHO_SCORE,
    FAILING_INIT,
    SLOW_INIT,
    alive,
    invoke,
    ml_process,
    ok,
    pending_server,
    port_taken,
    post,
    processes_with_token,
    register_factor,
    wait_for,
    write,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("shared_environments", "services_cleanup")]

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def test_a_sklearn_model_deploys_scores_updates_to_version_2_and_is_deleted(
    sklearn_assets: dict,
) -> None:
    ok("model", "register", "-n", "iris", "-p", str(sklearn_assets["logistic"]))
    ok("model", "register", "-n", "iris", "-p", str(sklearn_assets["tree"]))
    ic = str(sklearn_assets["ic"])

    deployed = ok("model", "deploy", "-n", "iris-svc", "-m", "iris:1", "--ic", ic)

    assert deployed["state"] == "Healthy"
    assert deployed["computeType"] == "PROCESS"
    assert deployed["models"] == ["iris:1"]
    uri = deployed["scoringUri"]
    assert uri == f"http://127.0.0.1:{deployed['port']}/score"
    by_cli = ok("service", "run", "-n", "iris-svc", "-d", json.dumps({"data": IRIS_ROWS}))
    assert by_cli == {"predictions": [0, 2], "kind": "LogisticRegression"}
    by_http = post(uri, {"data": IRIS_ROWS})
    assert by_http.status_code == 200
    assert by_http.json() == by_cli

    updated = ok("service", "update", "-n", "iris-svc", "-m", "iris:2")

    assert updated["models"] == ["iris:2"]
    assert updated["scoringUri"] == uri
    assert post(uri, {"data": IRIS_ROWS}).json()["kind"] == "DecisionTreeClassifier"
    assert not alive(deployed["serverDetails"]["pid"])

    ok("service", "delete", "-n", "iris-svc")

    assert not alive(updated["serverDetails"]["pid"])
    assert invoke("service", "show", "-n", "iris-svc").exit_code == 3
    assert ok("service", "list") == []


def test_two_models_deploy_together_and_the_script_reads_both_through_get_model_path(
    tmp_path: Path,
) -> None:
    write(tmp_path / "a" / "weights.txt", "alpha")
    write(tmp_path / "b" / "vocab" / "words.txt", "beta")
    ok("model", "register", "-n", "first", "-p", str(tmp_path / "a" / "weights.txt"))
    ok("model", "register", "-n", "second", "-p", str(tmp_path / "b"))
    script = write(
        tmp_path / "score.py",
        "import os\n"
        "from azureml.core.model import Model\n"
        "def init():\n"
        "    global texts\n"
        "    a = Model.get_model_path('first')\n"
        "    b = Model.get_model_path('second', version=1)\n"
        "    words = open(os.path.join(b, 'vocab', 'words.txt')).read()\n"
        "    texts = {'a': open(a).read(), 'b': words,\n"
        "             'modelDir': os.environ['AZUREML_MODEL_DIR'], 'paths': [a, b]}\n"
        "def run(data):\n"
        "    return texts\n",
    )

    deployed = ok(
        "model", "deploy", "-n", "pair", "-m", "first:1", "-m", "second:1", "--es", str(script)
    )

    answer = post(deployed["scoringUri"], {}).json()
    assert answer["a"] == "alpha"
    assert answer["b"] == "beta"
    assert answer["modelDir"].endswith("/app/azureml-models")
    assert answer["paths"][0] == f"{answer['modelDir']}/first/1/weights.txt"
    assert answer["paths"][1] == f"{answer['modelDir']}/second/1/b"
    assert sorted(deployed["models"]) == ["first:1", "second:1"]


def test_the_app_root_is_azures_layout_with_read_only_model_copies(tmp_path: Path) -> None:
    source = tmp_path / "project"
    write(source / "score.py", ECHO_SCORE.replace("def init():", "import helper\ndef init():"))
    write(source / "helper.py", "VALUE = 1\n")
    write(tmp_path / "ic.yml", "entryScript: score.py\nsourceDirectory: project\n")
    register_factor(tmp_path, "scale", 3)

    deployed = ok(
        "model", "deploy", "-n", "layout", "-m", "scale:1", "--ic", str(tmp_path / "ic.yml")
    )

    app_root = Path(deployed["serverDetails"]["logFile"]).parent / "app"
    assert (app_root / "project" / "score.py").is_file()
    assert (app_root / "project" / "helper.py").is_file()
    model_file = app_root / "azureml-models" / "scale" / "1" / "factor.txt"
    assert model_file.read_text() == "3"
    assert not model_file.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    store_blobs = list((app_root.parents[3] / "store").rglob("*"))
    assert all(b.stat().st_ino != model_file.stat().st_ino for b in store_blobs if b.is_file())
    assert post(deployed["scoringUri"], {"data": [1, 2]}).json() == {"result": [3.0, 6.0]}


def test_es_and_cf_flags_are_read_in_the_source_directory_as_azure_reads_them(
    sklearn_assets: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("model", "register", "-n", "iris", "-p", str(sklearn_assets["logistic"]))
    monkeypatch.chdir(sklearn_assets["root"])  # holds src/score.py and src/env.yml

    deployed = ok(
        "model", "deploy", "-n", "sdflags", "-m", "iris:1",
        "--sd", "src", "--es", "score.py", "--cf", "env.yml",
    )  # fmt: skip

    assert deployed["state"] == "Healthy"
    assert post(deployed["scoringUri"], {"data": IRIS_ROWS}).json()["kind"] == (
        "LogisticRegression"
    )


def test_an_es_flag_found_neither_in_the_source_directory_nor_here_names_both_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_factor(tmp_path, "scale", 2)
    write(tmp_path / "src" / "helper.py", "")
    monkeypatch.chdir(tmp_path)

    result = invoke("model", "deploy", "-n", "nosd", "-m", "scale:1", "--sd", "src", "--es", "s.py")

    assert result.exit_code == 2
    assert "--es/--entry-script" in result.stderr
    assert str(tmp_path / "src" / "s.py") in result.stderr
    assert str(tmp_path / "s.py") in result.stderr
    assert "Traceback" not in result.stderr
    assert ok("service", "list") == []


def test_deploying_over_an_existing_name_without_overwrite_is_refused_as_azure_does(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    first = ok("model", "deploy", "-n", "taken", "-m", "scale:1", "--es", str(script))

    result = invoke("model", "deploy", "-n", "taken", "-m", "scale:1", "--es", str(script))

    assert result.exit_code == 4
    assert "A service with name 'taken' already exists" in result.stderr
    assert "--overwrite" in result.stderr
    assert ok("service", "show", "-n", "taken")["serverDetails"] == first["serverDetails"]


def test_overwrite_replaces_the_service_on_the_same_port(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    register_factor(tmp_path, "scale", 5)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    first = ok("model", "deploy", "-n", "over", "-m", "scale:1", "--es", str(script))

    second = ok(
        "model", "deploy", "-n", "over", "-m", "scale:2", "--es", str(script), "--overwrite"
    )

    assert second["scoringUri"] == first["scoringUri"]
    assert second["revision"] == 2
    assert post(second["scoringUri"], {"data": [1]}).json() == {"result": [5.0]}
    assert not alive(first["serverDetails"]["pid"])


def test_no_wait_returns_transitioning_and_the_service_becomes_healthy(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)

    returned = ok(
        "model", "deploy", "-n", "later", "-m", "scale:1", "--es", str(script), "--no-wait"
    )

    assert returned["state"] == "Transitioning"
    wait_for(lambda: ok("service", "show", "-n", "later")["state"] == "Healthy", what="the service")
    assert ok("service", "run", "-n", "later", "-d", '{"data": [4]}') == {"result": [8.0]}


def test_deployment_settings_reach_the_server_as_its_environment(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(
        tmp_path / "score.py",
        "import os\n"
        "def init():\n    pass\n"
        "def run(data):\n"
        "    keys = ('SCORING_TIMEOUT_MS', 'MLCLI_MAX_CONCURRENT_REQUESTS',\n"
        "            'MLCLI_MAX_QUEUE_WAIT_MS', 'WORKER_COUNT', 'MLCLI_MAX_REQUEST_BYTES')\n"
        "    return {k: os.environ.get(k) for k in keys}\n",
    )
    dc = write(
        tmp_path / "deploymentConfig.json",
        json.dumps({"computeType": "process", "workers": 2, "maxRequestBodyMB": 1}),
    )

    deployed = ok(
        "model", "deploy", "-n", "tuned", "-m", "scale:1", "--es", str(script), "--dc", str(dc),
        "--tm", "1234", "--rm", "3", "--mr", "250",
    )  # fmt: skip

    assert post(deployed["scoringUri"], {}).json() == {
        "SCORING_TIMEOUT_MS": "1234",
        "MLCLI_MAX_CONCURRENT_REQUESTS": "3",
        "MLCLI_MAX_QUEUE_WAIT_MS": "250",
        "WORKER_COUNT": "2",
        "MLCLI_MAX_REQUEST_BYTES": str(1024 * 1024),
    }
    assert deployed["scoringTimeoutMs"] == 1234
    assert deployed["workers"] == 2


def test_server_settings_in_the_users_shell_do_not_reach_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_factor(tmp_path, "scale", 2)
    for name, value in {
        "MLCLI_BATCH_MAX_SIZE": "8",
        "MLCLI_LOG_BODIES": "1",
        "AZUREML_SOURCE_DIRECTORY": "/elsewhere",
        "WORKER_TIMEOUT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    script = write(
        tmp_path / "score.py",
        "import os\n"
        "def init():\n    pass\n"
        "def run(data):\n"
        "    keys = ('MLCLI_BATCH_MAX_SIZE', 'MLCLI_LOG_BODIES', 'AZUREML_SOURCE_DIRECTORY',\n"
        "            'WORKER_TIMEOUT')\n"
        "    return {k: os.environ.get(k) for k in keys}\n",
    )

    deployed = ok("model", "deploy", "-n", "clean", "-m", "scale:1", "--es", str(script))

    assert post(deployed["scoringUri"], {}).json() == {
        "MLCLI_BATCH_MAX_SIZE": None,
        "MLCLI_LOG_BODIES": None,
        "AZUREML_SOURCE_DIRECTORY": None,
        "WORKER_TIMEOUT": None,
    }


# --- failures -----------------------------------------------------------------------------------


def test_init_raising_leaves_a_failed_service_and_prints_the_cause_with_the_log(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", FAILING_INIT)

    result = invoke("model", "deploy", "-n", "broken", "-m", "scale:1", "--es", str(script))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert "RuntimeError" in result.stderr
    assert "weights are corrupt" in result.stderr
    assert "Traceback (most recent call last)" in result.stderr  # the script's, from the log
    assert "ml service get-logs -n broken" in result.stderr
    shown = ok("service", "show", "-n", "broken")
    assert shown["state"] == "Failed"
    assert "weights are corrupt" in shown["error"]["message"]
    logs = invoke("service", "get-logs", "-n", "broken")
    assert "weights are corrupt" in logs.stdout
    assert not alive(shown["serverDetails"]["pid"])


def test_a_missing_entry_script_is_a_config_error_and_nothing_is_recorded(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    ic = write(tmp_path / "inferenceConfig.json", json.dumps({"entryScript": "nope.py"}))

    result = invoke("model", "deploy", "-n", "nofile", "-m", "scale:1", "--ic", str(ic))

    assert result.exit_code == 2
    assert "nope.py" in result.stderr
    assert "entryScript" in result.stderr
    assert "Traceback" not in result.stderr
    assert ok("service", "list") == []


def test_a_conda_file_with_an_unknown_package_names_it_and_leaves_nothing(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    write(tmp_path / "score.py", ECHO_SCORE)
    write(
        tmp_path / "env.yml",
        "dependencies:\n  - python=3.11\n  - mlcli-no-such-package-xyz=1.0\n",
    )
    ic = write(
        tmp_path / "ic.json", json.dumps({"entryScript": "score.py", "condaFile": "env.yml"})
    )

    result = invoke("model", "deploy", "-n", "nopkg", "-m", "scale:1", "--ic", str(ic))

    assert result.exit_code == 1
    assert "mlcli-no-such-package-xyz" in result.stderr
    assert "Traceback" not in result.stderr
    assert ok("service", "list") == []
    assert not (Path(os.environ["MLCLI_HOME"]) / "workspaces/default/services/nopkg").exists()


def test_a_port_in_use_is_refused_with_exit_4_and_nothing_recorded(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    with port_taken() as port:
        result = invoke(
            "model", "deploy", "-n", "clash", "-m", "scale:1", "--es", str(script),
            "--po", str(port),
        )  # fmt: skip

    assert result.exit_code == 4
    assert f"port {port}" in result.stderr
    assert ok("service", "list") == []


def test_a_server_killed_with_sigkill_shows_unhealthy(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    deployed = ok("model", "deploy", "-n", "victim", "-m", "scale:1", "--es", str(script))

    os.kill(deployed["serverDetails"]["pid"], signal.SIGKILL)
    wait_for(lambda: not alive(deployed["serverDetails"]["pid"]), what="the kill")

    assert ok("service", "show", "-n", "victim")["state"] == "Unhealthy"
    assert ok("service", "list", "--query", "[].state") == ["Unhealthy"]
    assert invoke("service", "run", "-n", "victim", "-d", "{}").exit_code != 0


def test_kill_9_of_the_cli_during_deploy_leaves_no_server_and_no_healthy_record(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", SLOW_INIT)
    deploying = ml_process("model", "deploy", "-n", "orphan", "-m", "scale:1", "--es", str(script))
    pending = wait_for(lambda: pending_server("orphan"), what="the server to start")

    deploying.kill()
    deploying.wait()

    shown = ok("service", "show", "-n", "orphan")
    assert shown["state"] == "Failed"
    assert "interrupted" in shown["error"]["message"]
    assert not alive(pending["pid"])
    assert processes_with_token(pending["token"]) == []


def test_ctrl_c_during_deploy_stops_the_half_started_server_and_removes_the_record(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", SLOW_INIT)
    deploying = ml_process("model", "deploy", "-n", "abort", "-m", "scale:1", "--es", str(script))
    pending = wait_for(lambda: pending_server("abort"), what="the server to start")

    deploying.send_signal(signal.SIGINT)

    assert deploying.wait(timeout=30) != 0
    assert not alive(pending["pid"])
    assert processes_with_token(pending["token"]) == []
    assert ok("service", "list") == []


def test_deleting_a_model_a_service_uses_is_refused_unless_forced(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    script = write(tmp_path / "score.py", ECHO_SCORE)
    deployed = ok("model", "deploy", "-n", "user", "-m", "scale:1", "--es", str(script))

    refused = invoke("model", "delete", "-i", "scale:1")

    assert refused.exit_code == 4
    assert "user" in refused.stderr
    assert ok("model", "show", "-i", "scale:1")["id"] == "scale:1"
    ok("model", "delete", "-i", "scale:1", "--force")
    assert post(deployed["scoringUri"], {"data": [1]}).json() == {"result": [2.0]}
