"""PROCESS: the scoring server as a detached child process of the model's own environment.

The server runs in its own session (Ctrl-C in the terminal does not reach it, and it keeps
serving after `ml` exits), with stdout and stderr appended to the revision's log file. A
process is identified by its pid AND its start time read from /proc, so a pid the kernel has
since given to another program is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import http.client
import os
import signal
import socket
import struct
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlcli.errors import ConflictError, DeployError
from mlcli.targets import DOWN, HEALTHY, STARTING, Endpoint, LaunchSpec, Progress

SO_ATTACH_REUSEPORT_CBPF = 51  # <asm-generic/socket.h>
_SYS_PIDFD_GETFD = 438  # the same number on every architecture (Linux >= 5.6)
TOKEN_VARIABLE = "MLCLI_SERVICE_TOKEN"  # set by deploy in the server's environment
STOP_GRACE_S = float(os.environ.get("MLCLI_STOP_GRACE_S", "10"))

# Children we started, kept so Python reaps them (no zombies, no ResourceWarning) while a
# long-lived parent (a test session, the --no-wait finisher) is still running.
_SPAWNED: list[subprocess.Popen[bytes]] = []

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
)


class ProcessTarget:
    """Runs `<env python> -m mlcli.server` on 127.0.0.1, no container involved."""

    def start(self, spec: LaunchSpec, on_progress: Progress | None = None) -> Endpoint:
        from mlcli.environments import server_runtime_path

        port = spec.port or free_port(spec.host)
        if not spec.reuse_port and not port_is_free(spec.host, port):
            raise ConflictError(
                f"port {port} on {spec.host} is already in use by another program.",
                where="deploymentConfig, field port (or --po/--port)",
                fix="Choose a free port, or leave the port out and mlcli picks one.",
            )
        app_root = spec.app_root
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env_bin = str(Path(spec.environment.python).parent)
        env.update(
            {
                "PATH": env_bin + os.pathsep + env.get("PATH", os.defpath),
                "VIRTUAL_ENV": str(Path(spec.environment.path)),
                "PYTHONPATH": str(server_runtime_path()),
                "PYTHONUNBUFFERED": "1",
                "AML_APP_ROOT": str(app_root),
                "AZUREML_ENTRY_SCRIPT": str(app_root / spec.entry_script),
                "AZUREML_MODEL_DIR": str(app_root / spec.model_dir),
                "SERVICE_NAME": spec.service,
                **dict(spec.server_env),
            }
        )
        if spec.source_directory:
            env["AZUREML_SOURCE_DIRECTORY"] = str(app_root / spec.source_directory)
        if spec.keys_file:
            env["MLCLI_KEYS_FILE"] = str(spec.keys_file)
        workers = env.get("WORKER_COUNT", "1")
        command = [
            str(spec.environment.python),
            "-m",
            "mlcli.server",
            "--entry-script",
            str(app_root / spec.entry_script),
            "--host",
            spec.host,
            "--port",
            str(port),
            "--workers",
            workers,
        ]
        if on_progress:
            on_progress(f"starting the scoring server on {spec.host}:{port}")
        spec.log_file.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_file.open("ab") as log:
            try:
                proc = subprocess.Popen(
                    command,
                    cwd=app_root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                raise DeployError(
                    f"could not start {command[0]}: {exc.strerror}.",
                    fix="The environment may be damaged: remove it with `ml env prune` "
                    "and deploy again.",
                ) from exc
        _SPAWNED.append(proc)
        started = process_start_time(proc.pid)
        handle = {"pid": proc.pid, "startTime": started, "logFile": str(spec.log_file)}
        return Endpoint(spec.host, port, handle)

    def state(self, endpoint: Endpoint) -> str:
        pid, started = _identity(endpoint)
        if not process_matches(pid, started):
            return DOWN
        if not listening_in_group(pid, endpoint.port):
            return STARTING
        return HEALTHY if health_ok(endpoint.host, endpoint.port) else STARTING

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
        stop_process_group(pid, started, grace_s=STOP_GRACE_S)

    def hand_over(self, new: Endpoint, old: Endpoint) -> None:
        """Before `old` stops: new connections go to `new`, and `old` empties its queue."""
        if new.port != old.port:
            return
        new_pid, _ = _identity(new)
        old_pid, old_started = _identity(old)
        if steer_new_connections(new_pid, new.port) and process_matches(old_pid, old_started):
            wait_accept_queue_empty(old_pid, old.port)


def _identity(endpoint: Endpoint) -> tuple[int, int | None]:
    return int(endpoint.handle.get("pid", 0)), endpoint.handle.get("startTime")


# --- /proc: pids, start times, process groups, listening sockets -------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (stat field 22), None if gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def process_matches(pid: int, start_time: int | None) -> bool:
    """True when `pid` runs (not a zombie) and is the process that started at `start_time`."""
    _reap()
    if pid <= 0:
        return False
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == int(start_time)


def _group_members(pgid: int) -> list[int]:
    """Live processes in process group `pgid` (the server and any workers it forked)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


@dataclass(frozen=True, slots=True)
class _Listener:
    inode: str
    local: str  # "0100007F:1F90": address and port as /proc/net/tcp writes them
    accept_queue: int  # for a listening socket, rx_queue is the accept backlog


def _listen_table(port: int) -> dict[str, _Listener]:
    """Listening TCP sockets on `port` in this network namespace, by inode."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), Path(table).open() as fh:
            next(fh, None)
            for line in fh:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    queue = int(cols[4].split(":")[1], 16)
                    found[cols[9]] = _Listener(cols[9], cols[1], queue)
    return found


def _listening_fds(pid: int, port: int) -> list[tuple[int, int, _Listener]]:
    """(process, fd, socket) of each listening socket on `port` held by server `pid` or its
    workers (its process group)."""
    table = _listen_table(port)
    if not table:
        return []
    found = []
    for member in {pid, *_group_members(pid)}:
        fd_dir = Path(f"/proc/{member}/fd")
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    link = str(fd.readlink())
                    if link.startswith("socket:[") and link[8:-1] in table:
                        found.append((member, int(fd.name), table[link[8:-1]]))
    return found


def listening_in_group(pid: int, port: int) -> bool:
    """Whether the server `pid` (or a worker in its group) holds a listening socket on `port`.

    During an update two revisions share the port (SO_REUSEPORT), so a health probe through
    the port may be answered by the old one; this tells that the new one is serving too (the
    server listens only once init() has run).
    """
    return bool(_listening_fds(pid, port))


def steer_new_connections(pid: int, port: int) -> bool:
    """Make the kernel give every new connection on `port` to server `pid`'s listening socket.

    Two servers bound with SO_REUSEPORT share new connections by a hash; when the old one
    closes its socket, connections waiting in its accept queue are reset. So before the old
    server stops, a one-instruction classic BPF program ("return index N") is attached to the
    port's SO_REUSEPORT group, N being the newest listener (the kernel appends listeners in
    the order they call listen()). The program is attached through a copy of the new
    server's own socket (pidfd_getfd): no other socket joins the group. False when the
    kernel refuses (old kernel, no permission); the update then goes on without it.
    """
    mine = _listening_fds(pid, port)
    if len(mine) != 1:
        return False
    member, fd, listener = mine[0]
    group = [x for x in _listen_table(port).values() if x.local == listener.local]
    try:
        dup = _pidfd_getfd(member, fd)
    except OSError:
        return False
    instruction = struct.pack("HBBI", 0x06, 0, 0, len(group) - 1)  # BPF_RET | BPF_K
    program = ctypes.create_string_buffer(instruction, len(instruction))
    fprog = struct.pack("H6xQ", 1, ctypes.addressof(program))  # struct sock_fprog
    try:
        sock = socket.socket(fileno=dup)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)
        finally:
            sock.detach()
    except OSError:
        return False
    finally:
        os.close(dup)
    return True


def wait_accept_queue_empty(pid: int, port: int, *, timeout: float = 2.0) -> None:
    """Wait until server `pid` has accepted every connection queued on its listening socket."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(listener.accept_queue == 0 for _, _, listener in _listening_fds(pid, port)):
            time.sleep(0.02)  # handshakes already under way when the program was attached
            return
        time.sleep(0.01)


def _pidfd_getfd(pid: int, fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        dup = libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if dup < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return dup
    finally:
        os.close(pidfd)


def stop_process_group(pid: int, start_time: int | None, *, grace_s: float) -> None:
    """SIGTERM the server's process group (it drains), then SIGKILL what is left after grace.

    Group members outlive a server killed with -9 (orphaned workers still holding the port);
    the kernel never reuses a pid while it names a live group, so they are still ours.
    """
    leader_alive = process_matches(pid, start_time)
    if pid <= 0 or (not leader_alive and not _group_members(pid)):
        return
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not process_matches(pid, start_time) and not _group_members(pid):
            return
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (process_matches(pid, start_time) or _group_members(pid)):
        time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap() -> None:
    for proc in list(_SPAWNED):
        if proc.poll() is not None:
            _SPAWNED.remove(proc)


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
        fields = _stat_fields(int(entry.name))
        if fields and needle in environ.split(b"\0"):
            groups.add(int(fields[2]))  # the server's group: it and its workers
    for pgid in groups:
        stop_process_group(pgid, process_start_time(pgid), grace_s=STOP_GRACE_S)


# --- ports and health ----------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1", *, exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """A port nothing listens on now, picked by the OS (and not in `exclude`)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise DeployError(f"no free TCP port found on {host}.", fix="Set a port in deploymentConfig.")


def port_is_free(host: str, port: int) -> bool:
    """True when no socket is bound to host:port (SO_REUSEADDR ignores TIME_WAIT leftovers)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def health_ok(host: str, port: int, *, timeout: float = 2.0) -> bool:
    """GET / answers 200: the server's liveness route, as Azure's."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


# --- log files ---------------------------------------------------------------------------------


def follow_file(
    path: Path,
    *,
    tail: int | None = None,
    follow: bool = False,
    alive: Callable[[], bool] | None = None,
    poll_s: float = 0.2,
) -> Iterator[str]:
    """Lines of `path` (the last `tail`), then, with `follow`, new lines while `alive()` holds."""
    with path.open("rb") as fh:
        lines: deque[bytes] | list[bytes] = deque(fh, maxlen=tail) if tail else fh.readlines()
        for line in lines:
            yield line.decode("utf-8", "replace").rstrip("\r\n")
        if not follow:
            return
        pending = b""
        while True:
            chunk = fh.read()
            if chunk:
                pending += chunk
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    yield line.decode("utf-8", "replace").rstrip("\r")
                continue
            if alive is not None and not alive():
                if pending:
                    yield pending.decode("utf-8", "replace")
                return
            time.sleep(poll_s)
