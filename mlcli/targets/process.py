"""PROCESS: the scoring server as a detached child process of the model's own environment.

The server runs in its own session (Ctrl-C in the terminal does not reach it, and it keeps
serving after `ml` exits), with stdout and stderr appended to the revision's log file. It
is known by its pid and start time (procfs.py), reached through its port (ports.py), and its
log is read from that file (logfiles.py).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

from mlcli.app_root import server_command
from mlcli.errors import DeployError
from mlcli.progress import Progress
from mlcli.targets import TOKEN_VARIABLE, Endpoint, LaunchSpec, ServiceState, Target
from mlcli.targets.logfiles import follow_file
from mlcli.targets.ports import (
    claim_port,
    health_ok,
    listening_in_group,
    port_token,
    steer_new_connections,
    wait_accept_queue_empty,
)
from mlcli.targets.procfs import (
    process_matches,
    process_start_time,
    stat_fields,
    stop_process_group,
    track_child,
)

STOP_GRACE_S = float(os.environ.get("MLCLI_STOP_GRACE_S", "10"))
# A stopped server answers every request it has received before it exits: one may run for
# the scoring timeout; the server's own margins (1 s for idle keep-alive connections, 10 s
# past the timeout for the answers, 10 s for the workers to exit) come on top.
DRAIN_MARGIN_S = 25.0

# Variables of the CLI's own interpreter that must not leak into a model environment.
# PYTHONDONTWRITEBYTECODE too: the environment is mlcli's cache, and without .pyc files every
# server start recompiles numpy/scikit-learn (seconds); the first start writes them for all.
_DROPPED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "VIRTUAL_ENV",
    "__PYVENV_LAUNCHER__",
    "PYTHONDONTWRITEBYTECODE",
    # the scoring server's own settings: a service gets exactly what its configs say, never a
    # stray value from the shell that ran `ml model deploy`
    "AZUREML_ENTRY_SCRIPT",
    "AZUREML_MODEL_DIR",
    "AZUREML_SOURCE_DIRECTORY",
    "AML_APP_ROOT",
    "WORKER_COUNT",
    "WORKER_TIMEOUT",
    "SCORING_TIMEOUT_MS",
)


def _dropped(name: str) -> bool:
    return name in _DROPPED_ENV or name.startswith("MLCLI_")


def drain_grace_s(server_env: Mapping[str, str]) -> float:
    """How long a stopped server may take to drain before it is killed: without this, an
    update would cut a request longer than a fixed grace and still report success."""
    timeout_ms = server_env.get("SCORING_TIMEOUT_MS", "")
    if not timeout_ms.isdigit():
        return STOP_GRACE_S
    return max(STOP_GRACE_S, int(timeout_ms) / 1000 + DRAIN_MARGIN_S)


class ProcessTarget(Target):
    """Runs `<env python> -m mlcli.server` on 127.0.0.1, no container involved."""

    def start(self, spec: LaunchSpec, on_progress: Progress | None = None) -> Endpoint:
        port, claim = claim_port(spec.host, spec.port, shared=spec.reuse_port)
        try:
            return self._start(spec, port, () if claim is None else (claim,), on_progress)
        finally:
            if claim is not None:
                os.close(claim)  # the server holds its copy for as long as it runs

    def _start(
        self, spec: LaunchSpec, port: int, claim: tuple[int, ...], on_progress: Progress | None
    ) -> Endpoint:
        from mlcli.environments import server_runtime_path

        app_root = str(spec.app_root)
        env = {k: v for k, v in os.environ.items() if not _dropped(k)}
        env_bin = str(Path(spec.environment.python).parent)
        env.update(
            {
                "PATH": env_bin + os.pathsep + env.get("PATH", os.defpath),
                "VIRTUAL_ENV": str(Path(spec.environment.path)),
                "PYTHONPATH": str(server_runtime_path()),
                "PYTHONUNBUFFERED": "1",
                **spec.layout.server_environment(app_root),
                "SERVICE_NAME": spec.service,
                **dict(spec.server_env),
            }
        )
        if spec.keys_file:
            env["MLCLI_KEYS_FILE"] = str(spec.keys_file)
        env["MLCLI_LOG_FILE"] = str(spec.log_file)  # the server rotates it by size
        env["MLCLI_PORT_TOKEN"] = port_token(port)  # lets the next revision share the port
        if spec.reuse_port:  # an update: the old revision may predate the token (sockets.py)
            env["MLCLI_PORT_JOIN_UNMARKED"] = "1"
        env.setdefault("MLCLI_LOG_FORMAT", "json")  # `ml service get-logs` reads either
        python = str(spec.environment.python)
        workers = env.get("WORKER_COUNT", "1")
        command = server_command(
            python, spec.layout, app_root, host=spec.host, port=port, workers=workers
        )
        if on_progress:
            on_progress(f"starting the scoring server on {spec.host}:{port}")
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(spec.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(log_fd, "ab") as log:
            try:
                proc = subprocess.Popen(
                    command,
                    cwd=app_root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=claim,
                )
            except OSError as exc:
                raise DeployError(
                    f"could not start {command[0]}: {exc.strerror}.",
                    fix="The environment may be damaged: remove it with `ml env prune` "
                    "and deploy again.",
                ) from exc
        track_child(proc)
        started = process_start_time(proc.pid)
        handle = {
            "pid": proc.pid,
            "startTime": started,
            "python": python,
            "pythonVersion": spec.environment.python_version,
            "logFile": str(spec.log_file),
            "stopGraceS": drain_grace_s(spec.server_env),
        }
        return Endpoint(spec.host, port, handle)

    def state(self, endpoint: Endpoint) -> str:
        pid, started = _identity(endpoint)
        if not process_matches(pid, started):
            return ServiceState.DOWN
        if not listening_in_group(pid, endpoint.port):
            return ServiceState.TRANSITIONING
        return (
            ServiceState.HEALTHY
            if health_ok(endpoint.host, endpoint.port)
            else ServiceState.TRANSITIONING
        )

    def logs(
        self, endpoint: Endpoint, *, tail: int | None = None, follow: bool = False
    ) -> Iterator[str]:
        log_file = Path(endpoint.handle.get("logFile", ""))
        if not log_file.is_file():
            return
        pid, started = _identity(endpoint)
        yield from follow_file(
            log_file, tail=tail, follow=follow, alive=lambda: process_matches(pid, started)
        )

    def stop(self, endpoint: Endpoint) -> None:
        pid, started = _identity(endpoint)
        grace_s = float(endpoint.handle.get("stopGraceS") or STOP_GRACE_S)
        stop_process_group(pid, started, grace_s=grace_s)

    def hand_over(self, new: Endpoint, old: Endpoint) -> None:
        """Before `old` stops: new connections go to `new`, and `old` empties its queue."""
        if new.port != old.port:
            return
        new_pid, _ = _identity(new)
        old_pid, old_started = _identity(old)
        if steer_new_connections(new_pid, new.port) and process_matches(old_pid, old_started):
            wait_accept_queue_empty(old_pid, old.port)

    def stop_by_token(self, token: str) -> None:
        stop_by_token(token)


def _identity(endpoint: Endpoint) -> tuple[int, int | None]:
    return int(endpoint.handle.get("pid", 0)), endpoint.handle.get("startTime")


def stop_by_token(token: str) -> None:
    """Stop PROCESS servers whose environment carries this deploy's token.

    A deployer killed between starting the server and recording its pid leaves a server
    that no record names; the token, written to the record before the start, finds it.
    """
    needle = f"{TOKEN_VARIABLE}={token}".encode()
    groups = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        fields = stat_fields(int(entry.name))
        if fields and needle in environ.split(b"\0"):
            groups.add(int(fields[2]))  # the server's group: it and its workers
    for pgid in groups:
        stop_process_group(pgid, process_start_time(pgid), grace_s=STOP_GRACE_S)
