"""mlcli's scoring server: starting, serving an entry script, and what it imports."""

import subprocess
import sys

import pytest
from conftest import PROJECT, free_tcp_port, start_process


def test_health_answers_200_healthy_once_init_ran(start_mlcli) -> None:
    server = start_mlcli("echo.py")

    reply = server.request("GET", "/")

    assert reply.status == 200
    assert reply.body == b"Healthy"
    assert "echo: init called" in server.log()


def test_score_passes_the_body_to_run_as_a_string(start_mlcli) -> None:
    server = start_mlcli("echo.py")

    reply = server.request("POST", "/score", b'{"a": 1}', {"Content-Type": "application/json"})

    assert reply.status == 200
    assert reply.json() == '{"a": 1}'
    assert reply.header("x-ms-run-function-failed") == "False"
    assert float(reply.header("x-ms-run-fn-exec-ms")) >= 0


def test_an_init_that_raises_exits_3_with_the_traceback_in_the_log(start_mlcli) -> None:
    server = start_mlcli("init_raises.py", wait=False)

    code = server.wait_exit(timeout=60)

    assert code == 3
    log = server.log()
    assert "RuntimeError: model file is corrupt" in log
    assert "Traceback" in log


def _modules_loaded_by(code: str) -> set[str]:
    env = {"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"}
    output = subprocess.check_output(
        [sys.executable, "-c", code + "; print(' '.join(sys.modules))"], text=True, env=env
    )
    return set(output.split())


SERVER_MODULES = (
    "mlcli.server.serve, mlcli.server.app, mlcli.server.pool, mlcli.server.worker, "
    "mlcli.server.metrics, mlcli.server.auth, mlcli.server.swagger, mlcli.server.v1compat"
)


def test_server_modules_import_nothing_from_the_cli_side() -> None:
    loaded = _modules_loaded_by(f"import sys, {SERVER_MODULES}")

    assert loaded.isdisjoint({"click", "rich", "yaml", "jsonschema", "docker", "jmespath"})
    outside = {n for n in loaded if n.startswith("mlcli.") and not n.startswith("mlcli.server")}
    assert not outside, "only mlcli/__init__.py and mlcli/server/ may load"


def test_the_running_server_loads_only_its_own_small_dependencies() -> None:
    loaded = _modules_loaded_by(
        f"import sys, {SERVER_MODULES}, mlcli.server.http, httptools, uvloop, prometheus_client"
    )

    assert loaded.isdisjoint({"click", "rich", "yaml", "jsonschema", "docker", "jmespath"})
    assert not {n for n in loaded if n.startswith("mlcli.") and not n.startswith("mlcli.server")}


def test_a_missing_entry_script_exits_3_with_one_paragraph_and_no_traceback(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlcli.server", "--entry-script", "missing.py", "--port", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(PROJECT), "PATH": "/usr/bin:/bin"},
    )

    assert result.returncode == 3  # azmlinfsrv's code for a script it cannot serve
    assert "missing.py does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_azmlinfsrv_flags_and_environment_work_unchanged(start_mlcli, tmp_path) -> None:
    app_root = tmp_path / "app"
    (app_root / "model").mkdir(parents=True)
    (app_root / "model" / "model.txt").write_text("w=2")
    server = start_mlcli(
        "model_dir.py",
        workdir=app_root,
        args=("--model_dir", "model", "--worker_count", "2"),
    )

    reply = server.request("POST", "/score", b"x")

    assert reply.json() == {"weights": "w=2", "input": "x"}
    workers = {r["pid"] for r in server.log_records() if r.get("logger") == "mlcli.server.worker"}
    assert len(workers) == 2


def test_the_entry_script_can_come_from_the_environment(tmp_path) -> None:
    app_root = tmp_path / "app"
    (app_root / "src").mkdir(parents=True)
    (app_root / "src" / "score.py").write_text(
        "def init():\n    pass\n\n\ndef run(data):\n    return 'from env'\n"
    )
    port = free_tcp_port()
    env = {
        "PYTHONPATH": str(PROJECT),
        "PATH": "/usr/bin:/bin",
        "AML_APP_ROOT": str(app_root),  # AZUREML_ENTRY_SCRIPT is relative to it
        "AZUREML_ENTRY_SCRIPT": "src/score.py",
    }
    command = [sys.executable, "-m", "mlcli.server", "--port", str(port), "--host", "127.0.0.1"]
    server = start_process(command, workdir=tmp_path, port=port, env=env)
    try:
        server.wait_healthy()
        reply = server.request("POST", "/score", b"1")
    finally:
        server.stop()

    assert reply.json() == "from env"


@pytest.mark.slow
def test_the_server_runs_on_python_3_8_with_only_its_requirements(
    start_mlcli, py38_server_python
) -> None:
    """Model environments keep the Python their conda file asks for; 3.8 is common in v1."""
    server = start_mlcli("raw_responses.py", python=str(py38_server_python), workers=2)

    created = server.request("GET", "/score?kind=created")
    headers = server.request("GET", "/score?kind=headers")

    assert (created.status, created.body) == (201, b"made it")
    assert [v for k, v in headers.headers if k.lower() == "x-multi"] == ["a", "b", "c"]
    assert server.request("GET", "/metrics").status == 200


def test_azureml_source_directory_is_importable_from_the_script(start_mlcli, tmp_path) -> None:
    app_root = tmp_path / "app"
    (app_root / "src").mkdir(parents=True)
    (app_root / "src" / "helpers.py").write_text("def shout(text):\n    return text.upper()\n")
    script = tmp_path / "score.py"
    script.write_text(
        "from helpers import shout\n\n\ndef init():\n    pass\n\n\n"
        "def run(data):\n    return shout(data)\n"
    )
    server = start_mlcli(
        script,
        workdir=app_root,
        env={"AML_APP_ROOT": str(app_root), "AZUREML_SOURCE_DIRECTORY": "src"},
    )

    assert server.request("POST", "/score", b"quiet").json() == "QUIET"
