"""The PROCESS target: process identity from /proc, ports, process groups, the detached server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import alive, wait_for, write

from mlcli.errors import ConfigError, ConflictError
from mlcli.targets import DOWN, HEALTHY, STARTING, LaunchSpec, target_for
from mlcli.targets.ports import free_port, listening_in_group, port_is_free, steer_new_connections
from mlcli.targets.process import ProcessTarget, stop_by_token
from mlcli.targets.procfs import process_matches, process_start_time, stop_process_group

# A parent that forks a worker into its own process group, then waits forever.
PARENT_WITH_WORKER = """\
import os, sys, time
child = os.fork()
if child == 0:
    time.sleep(300)
    os._exit(0)
print(child, flush=True)
time.sleep(300)
"""


def spawn(code: str, **kwargs) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, **kwargs
    )


def test_a_running_process_matches_its_pid_and_start_time() -> None:
    proc = spawn("import time; time.sleep(60)")
    try:
        started = process_start_time(proc.pid)

        assert process_matches(proc.pid, started)
        assert not process_matches(proc.pid, started + 1)  # the same pid, another process
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_process_no_longer_matches_even_as_an_unreaped_zombie() -> None:
    proc = spawn("import time; time.sleep(60)")
    started = process_start_time(proc.pid)
    os.kill(proc.pid, 9)
    wait_for(lambda: not alive(proc.pid), what="the kill")

    assert not process_matches(proc.pid, started)
    proc.wait()


def test_a_port_with_a_listener_is_not_free_and_free_port_avoids_exclusions() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]

        assert not port_is_free("127.0.0.1", taken)
        assert free_port(exclude={taken}) != taken
    assert port_is_free("127.0.0.1", taken)


def test_listening_is_seen_only_once_the_process_calls_listen() -> None:
    code = (
        "import socket, sys\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
        "s.bind(('127.0.0.1', 0)); print(s.getsockname()[1], flush=True)\n"
        "sys.stdin.readline(); s.listen(); print('listening', flush=True)\n"
        "sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(proc.stdout.readline())
        bound_only = listening_in_group(proc.pid, port)
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.stdout.readline()

        assert not bound_only
        assert listening_in_group(proc.pid, port)
    finally:
        proc.kill()
        proc.wait()


def test_stopping_a_group_also_stops_workers_orphaned_by_a_kill_9_of_their_parent() -> None:
    parent = spawn(PARENT_WITH_WORKER, start_new_session=True)
    worker = int(parent.stdout.readline())
    started = process_start_time(parent.pid)
    os.kill(parent.pid, 9)
    parent.wait()
    assert alive(worker)

    stop_process_group(parent.pid, started, grace_s=5)

    wait_for(lambda: not alive(worker), timeout=10, what="the orphaned worker to stop")


def test_stop_by_token_finds_a_server_that_no_record_names() -> None:
    proc = spawn(
        "import time; time.sleep(60)",
        start_new_session=True,
        env={**os.environ, "MLCLI_SERVICE_TOKEN": "t0k3n"},
    )

    stop_by_token("t0k3n")

    assert proc.wait(timeout=10) != 0


def test_the_table_imports_only_the_target_asked_for() -> None:
    code = (
        "import sys; from mlcli.targets import target_for; target_for('process'); "
        "print(' '.join(sys.modules))"
    )
    loaded = set(subprocess.check_output([sys.executable, "-c", code], text=True).split())

    assert "mlcli.targets.process" in loaded
    assert "mlcli.targets.docker" not in loaded
    assert "docker" not in loaded


def test_an_unknown_compute_type_is_a_config_error_naming_the_field() -> None:
    with pytest.raises(ConfigError, match="computeType 'IOT' cannot be deployed") as raised:
        target_for("IOT")

    assert raised.value.where == "deploymentConfig, field computeType"


# --- the real server ----------------------------------------------------------------------------

ENV_DUMP_SCORE = """\
import json, os, sys
def init():
    with open(os.environ["DUMP_TO"], "w") as fh:
        json.dump({"env": dict(os.environ), "cwd": os.getcwd(), "path": sys.path,
                   "sid": os.getsid(0), "pid": os.getpid(), "ppid": os.getppid(),
                   "stdin": os.readlink("/proc/self/fd/0")}, fh)
def run(data):
    return data
"""


def launch_spec(tmp_path: Path, port: int | None, **changes) -> LaunchSpec:
    from mlcli.config import load_deployment_config
    from mlcli.environments import ensure_environment, minimal_spec

    app_root = tmp_path / "svc" / "r1" / "app"
    write(app_root / "score.py", ENV_DUMP_SCORE)
    (app_root / "azureml-models" / "m" / "1").mkdir(parents=True)
    values = {
        "workspace": "default",
        "service": "svc",
        "revision": 1,
        "compute_type": "PROCESS",
        "app_root": app_root,
        "entry_script": "score.py",
        "source_directory": None,
        "model_dir": "azureml-models/m/1",
        "models": (("m", 1),),
        "environment": ensure_environment(minimal_spec()),
        "port": port,
        "reuse_port": False,
        "server_env": {"WORKER_COUNT": "1", "DUMP_TO": str(tmp_path / "dump.json")},
        "keys_file": None,
        "log_file": tmp_path / "svc" / "r1" / "server.log",
        "deployment": load_deployment_config(None),
        "inference": None,
    }
    values.update(changes)
    return LaunchSpec(**values)


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments")
def test_the_server_runs_detached_with_azures_variables_and_only_the_runtime_on_its_path(
    tmp_path: Path, free_port: int
) -> None:
    from mlcli.environments import server_runtime_path

    target = ProcessTarget()
    endpoint = target.start(launch_spec(tmp_path, free_port))
    try:
        wait_for(lambda: target.state(endpoint) == HEALTHY, what="the server")
        dump = json.loads((tmp_path / "dump.json").read_text())
        app_root = tmp_path / "svc" / "r1" / "app"

        assert endpoint.port == free_port
        assert dump["env"]["AML_APP_ROOT"] == str(app_root)
        assert dump["env"]["AZUREML_MODEL_DIR"] == str(app_root / "azureml-models/m/1")
        assert dump["env"]["AZUREML_ENTRY_SCRIPT"] == str(app_root / "score.py")
        assert set(dump["env"]["PYTHONPATH"].split(os.pathsep)) == {str(server_runtime_path())}
        assert dump["cwd"] == str(app_root)
        assert dump["stdin"] == "/dev/null"
        server_pid = endpoint.handle["pid"]
        assert os.getsid(server_pid) == server_pid  # its own session: Ctrl-C does not reach it
        assert Path(endpoint.handle["logFile"]).read_text().strip()
    finally:
        target.stop(endpoint)

    assert target.state(endpoint) == DOWN


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments")
def test_a_port_held_by_another_program_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]

        with pytest.raises(ConflictError, match=f"port {port} .* already in use"):
            ProcessTarget().start(launch_spec(tmp_path, port))

    assert not (tmp_path / "dump.json").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments")
def test_a_second_revision_binds_beside_the_first_and_is_starting_until_it_listens(
    tmp_path: Path, free_port: int
) -> None:
    slow_init = "import time\ndef init():\n    time.sleep(2)\ndef run(data):\n    return data\n"
    target = ProcessTarget()
    first = target.start(launch_spec(tmp_path / "a", free_port))
    second = None
    try:
        wait_for(lambda: target.state(first) == HEALTHY, what="the first server")
        spec = launch_spec(tmp_path / "b", free_port, reuse_port=True)
        write(spec.app_root / "score.py", slow_init)
        second = target.start(spec)

        assert target.state(second) == STARTING  # GET / answers, but from the first server
        wait_for(lambda: target.state(second) == HEALTHY, what="the second server")
        assert second.port == first.port
    finally:
        target.stop(first)
        if second is not None:
            target.stop(second)


LISTENER = """\
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
print("listening", flush=True)
while True:
    conn, _ = s.accept()
    conn.sendall(sys.argv[2].encode()); conn.close()
"""


def test_steering_sends_every_new_connection_to_the_newest_listener(free_port: int) -> None:
    old = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(free_port), "old"], stdout=subprocess.PIPE, text=True
    )
    old.stdout.readline()
    new = subprocess.Popen(
        [sys.executable, "-c", LISTENER, str(free_port), "new"], stdout=subprocess.PIPE, text=True
    )
    new.stdout.readline()
    try:
        steered = steer_new_connections(new.pid, free_port)

        answers = set()
        for _ in range(50):
            with socket.create_connection(("127.0.0.1", free_port), timeout=5) as conn:
                answers.add(conn.recv(16))
        assert steered
        assert answers == {b"new"}
    finally:
        for proc in (old, new):
            proc.kill()
            proc.wait()
