"""Fixtures for the scoring server: mlcli's server and azmlinfsrv 1.5.1 as real processes.

`reference_python` builds, once per machine, a virtual environment with the real
azureml-inference-server-http 1.5.1 (plus inference-schema, numpy, pandas) under
~/.cache/mlcli-tests/, keyed by version, so reruns start at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlcli.environments.build import find_uv, uv_environment

SCRIPTS = Path(__file__).parent / "scripts"
REFERENCE_VERSION = "1.5.1"
REFERENCE_PACKAGES = (
    f"azureml-inference-server-http=={REFERENCE_VERSION}",
    "inference-schema",
    "numpy",
    "pandas",
)
CACHE = Path(os.environ.get("MLCLI_TEST_CACHE", Path.home() / ".cache" / "mlcli-tests"))
PROJECT = Path(__file__).resolve().parents[2]


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)


def exchange(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    *,
    timeout: float = 30,
) -> Reply:
    """One HTTP request on a fresh connection to 127.0.0.1:port.

    headers: a dict, or a list of (name, value) pairs to send a header more than once.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(headers, list):
            conn.putrequest(method, path)
            for name, value in headers:
                conn.putheader(name, value)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
        else:
            conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, response.getheaders(), data)
    finally:
        conn.close()


@dataclass
class ServerProcess:
    """A scoring server started as a subprocess; its combined stdout/stderr go to log_path."""

    process: subprocess.Popen
    port: int
    log_path: Path
    workdir: Path
    stopped: bool = field(default=False)

    def request(self, method: str, path: str, body=None, headers=None, **kw) -> Reply:
        return exchange(self.port, method, path, body, headers, **kw)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_records(self) -> list[dict]:
        records = []
        for line in self.log().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
        return records

    def wait_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.process.returncode} before it was healthy:\n"
                    + self.log()[-4000:]
                )
            with contextlib.suppress(OSError, http.client.HTTPException):
                if exchange(self.port, "GET", "/", timeout=2).status == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"server not healthy after {timeout} s:\n" + self.log()[-4000:])

    def wait_exit(self, timeout: float = 30) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stopped = True
        return self.process.returncode


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_workdir(workdir: Path, script: str | Path, files: dict | None = None) -> Path:
    """Copy an entry script (a name under scripts/, or a path) into a fresh app root."""
    workdir.mkdir(parents=True, exist_ok=True)
    source = SCRIPTS / script if isinstance(script, str) else script
    target = workdir / source.name
    shutil.copyfile(source, target)
    for name, content in (files or {}).items():
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return target


def start_process(command: list[str], *, workdir: Path, port: int, env: dict) -> ServerProcess:
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return ServerProcess(process, port, log_path, workdir)


def server_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "MLCLI_"))}
    env.pop("AML_APP_ROOT", None)
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def launch_mlcli(
    workdir: Path,
    script: str | Path,
    *,
    env: dict | None = None,
    workers: int | None = None,
    files: dict | None = None,
    python: str = sys.executable,
    args: tuple = (),
    port: int | None = None,
) -> ServerProcess:
    """Start `python -m mlcli.server` on a copy of the script in workdir (not waiting)."""
    port = port or free_tcp_port()
    entry = prepare_workdir(workdir, script, files)
    command = [python, "-m", "mlcli.server", "--entry-script", entry.name, "--port", str(port)]
    command += ["--host", "127.0.0.1", *args]
    if workers:
        command += ["--workers", str(workers)]
    environ = server_env({"MLCLI_LOG_FORMAT": "json", **(env or {})})
    # a test's own PYTHONPATH entries (env=) go first
    environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (environ.get("PYTHONPATH"), str(PROJECT)) if p
    )
    return start_process(command, workdir=workdir, port=port, env=environ)


def launch_azmlinfsrv(
    python: Path,
    workdir: Path,
    script: str | Path,
    *,
    env: dict | None = None,
    workers: int | None = None,
    files: dict | None = None,
    args: tuple = (),
    port: int | None = None,
) -> ServerProcess:
    """Start the real azmlinfsrv on a copy of the script in workdir (not waiting)."""
    port = port or free_tcp_port()
    entry = prepare_workdir(workdir, script, files)
    command = [str(python), "-m", "azureml_inference_server_http"]
    command += ["--entry_script", entry.name, "--port", str(port), *args]
    if workers:
        command += ["--worker_count", str(workers)]
    return start_process(command, workdir=workdir, port=port, env=server_env(env))


def stop_all(servers: list[ServerProcess]) -> None:
    for server in servers:
        server.stop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGKILL)  # its own session: workers too


@pytest.fixture
def start_mlcli(tmp_path: Path) -> Iterator:
    """Start mlcli's server on a script: start_mlcli("echo.py", env={...}, workers=2)."""
    started: list[ServerProcess] = []

    def start(script, *, wait: bool = True, workdir: Path | None = None, **kw) -> ServerProcess:
        port = kw.pop("port", None) or free_tcp_port()
        server = launch_mlcli(workdir or tmp_path / f"mlcli-{port}", script, port=port, **kw)
        started.append(server)
        if wait:
            server.wait_healthy()
        return server

    yield start
    stop_all(started)


def _uv(*args: str) -> None:
    """uv as mlcli resolves it (its own dependency), never a bare `uv` from PATH."""
    subprocess.run([str(find_uv()), *args], env=uv_environment(), check=True)


def _build_reference(target: Path) -> None:
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    _uv("venv", "-q", "--relocatable", "--python", python, str(staging))
    _uv("pip", "install", "-q", "--python", str(staging / "bin" / "python"), *REFERENCE_PACKAGES)
    (staging / "READY").write_text(" ".join(REFERENCE_PACKAGES))
    staging.rename(target)


@pytest.fixture(scope="session")
def reference_python() -> Path:
    """The python of a venv with azmlinfsrv 1.5.1, built once and cached across runs."""
    target = (
        CACHE / f"azmlinfsrv-{REFERENCE_VERSION}-py{sys.version_info.major}{sys.version_info.minor}"
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once build it once
        if not (target / "READY").exists():
            shutil.rmtree(target, ignore_errors=True)
            _build_reference(target)
    return target / "bin" / "python"


@pytest.fixture
def start_azmlinfsrv(tmp_path: Path, reference_python: Path) -> Iterator:
    """Start the real azmlinfsrv 1.5.1 on a script (same arguments as start_mlcli)."""
    started: list[ServerProcess] = []

    def start(script, *, wait: bool = True, workdir: Path | None = None, **kw) -> ServerProcess:
        port = kw.pop("port", None) or free_tcp_port()
        workdir = workdir or tmp_path / f"azml-{port}"
        server = launch_azmlinfsrv(reference_python, workdir, script, port=port, **kw)
        started.append(server)
        if wait:
            server.wait_healthy()
        return server

    yield start
    stop_all(started)


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _oldest_python() -> Path | None:
    """Python 3.8 from pyenv (uv cannot download one here)."""
    roots = [Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"]
    for root in roots:
        for candidate in sorted(root.glob("3.8*/bin/python3.8")):
            return candidate
    return None


@pytest.fixture(scope="session")
def py38_server_python() -> Path:
    """A Python 3.8 venv holding exactly mlcli/server/requirements.txt, cached by its hash."""
    import hashlib

    interpreter = _oldest_python()
    if interpreter is None:
        pytest.skip("no Python 3.8 under ~/.pyenv/versions")
    requirements = PROJECT / "mlcli" / "server" / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    target = CACHE / f"server-py38-{digest}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "READY").exists():
            staging = target.with_name(target.name + f".tmp-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            _uv("venv", "-q", "--relocatable", "--python", str(interpreter), str(staging))
            _uv("pip", "install", "-q", "--python", str(staging / "bin" / "python"),
                "-r", str(requirements))  # fmt: skip
            (staging / "READY").write_text(digest)
            staging.rename(target)
    return target / "bin" / "python"
