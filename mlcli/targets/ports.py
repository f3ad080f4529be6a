"""Ports and listening sockets on this host: free ports, health checks, and handing a port
shared by two servers (SO_REUSEPORT, during an update) from the old one to the new one.

Both targets use these: PROCESS servers and LOCAL containers (host networking) listen in the
host's network namespace, so /proc/net/tcp and the servers' fds tell who listens where.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import http.client
import json
import os
import socket
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlcli.errors import ConflictError, DeployError
from mlcli.targets.procfs import group_members

SO_ATTACH_REUSEPORT_CBPF = 51  # <asm-generic/socket.h>
_SYS_PIDFD_GETFD = 438  # the same number on every architecture (Linux >= 5.6)


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
    for member in {pid, *group_members(pid)}:
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


def pick_port(host: str, port: int | None, *, shared: bool) -> int:
    """The configured port (checked free, unless `shared` with the service's previous
    revision), or a free one when none is configured."""
    port = port or free_port(host)
    if not shared and not port_is_free(host, port):
        raise ConflictError(
            f"port {port} on {host} is already in use by another program.",
            where="deploymentConfig, field port (or --po/--port)",
            fix="Choose a free port, or leave the port out and mlcli picks one.",
        )
    return port


PORT_CLAIMS = Path(tempfile.gettempdir()) / "mlcli-ports"


def claim_port(host: str, port: int | None, *, shared: bool) -> tuple[int, int | None]:
    """pick_port, race-free between mlcli deploys: (port, fd of a claim to pass to the server).

    A server binds its port at once but listens only once init() has run (so an update's new
    server takes no traffic early); until then the port looks free to another deploy's check,
    and SO_REUSEPORT would let both servers share it. So each server holds, for its lifetime,
    a shared flock on a per-port file (the deploy passes the descriptor down); a new service
    takes the port only if it can lock that file exclusively, and an update (`shared`) joins
    its previous revision's lock. Claims of one port take turns under a second lock. The
    files live in the temporary folder, so deploys from every MLCLI_HOME see each other; where
    they cannot be made (a read-only temporary folder) the claim is None: pick_port alone.
    """
    port = port or free_port(host)
    try:
        turn = _lock_file(PORT_CLAIMS / f"{port}.turn")
    except OSError:
        return pick_port(host, port, shared=shared), None
    try:
        fcntl.flock(turn, fcntl.LOCK_EX)
        claim = _lock_file(claim_file(port))
        try:
            if not shared:
                try:
                    fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise ConflictError(
                        f"port {port} is already taken by another mlcli service (starting or "
                        "running).",
                        where="deploymentConfig, field port (or --po/--port)",
                        fix="Choose a free port, or leave the port out and mlcli picks one.",
                    ) from None
                pick_port(host, port, shared=False)
            fcntl.flock(claim, fcntl.LOCK_SH)  # what the server holds
        except BaseException:
            os.close(claim)
            raise
    finally:
        os.close(turn)
    return port, claim


def claim_file(port: int) -> Path:
    """The lock file a server of `port` holds (a container opens it through a bind mount)."""
    return PORT_CLAIMS / f"{port}.lock"


def wait_claim_held(claim: int, *, running: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Wait until another process (a container's server) also holds the lock of `claim`, so
    the deploy can let go of the port without a moment in which nobody claims it. False when
    `running()` turns false or `timeout` passes first."""
    inode = os.fstat(claim).st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(pid != os.getpid() for pid in _flock_holders(inode)):
            return True
        if not running():
            return False
        time.sleep(0.05)
    return False


def _flock_holders(inode: int) -> list[int]:
    """The pids /proc/locks shows holding a flock on a file with this inode number."""
    holders = []
    with Path("/proc/locks").open(encoding="ascii") as locks:
        for line in locks:
            fields = line.split()
            if len(fields) < 6 or fields[1] != "FLOCK":  # "->" marks a waiter, not a holder
                continue
            if fields[5].rsplit(":", 1)[-1] == str(inode):
                holders.append(int(fields[4]))
    return holders


def port_token(port: int) -> str:
    """The secret every revision of the service on `port` gets as MLCLI_PORT_TOKEN: with it a
    new revision may share the port with the old one (mlcli/server/sockets.py), a stranger
    without it may not. Kept 0600 beside the port's claim; a fresh one when it cannot be."""
    import secrets

    path = PORT_CLAIMS / f"{port}.token"
    with contextlib.suppress(OSError):
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o1777)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            token = path.read_text().strip()
            if len(token) >= 32:
                return token
        else:
            token = secrets.token_hex(32)
            with os.fdopen(fd, "w") as out:
                out.write(token)
            return token
    return secrets.token_hex(32)


def _lock_file(path: Path) -> int:
    """A read-only descriptor of a lock file, made if missing (flock needs no write access,
    so one user's file serves every user's deploys)."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            path.parent.chmod(0o1777)  # every local user's deploys, like /tmp itself
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        # (O_CREAT only when missing: in a sticky folder, fs.protected_regular refuses
        # O_CREAT on another user's existing file)
        return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)


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


def health_problem(host: str, port: int, *, timeout: float = 2.0) -> str | None:
    """What a server that answers GET / with an error says (its JSON "message"), else None.

    The scoring server answers 503 with the reason while none of its workers is ready (a
    replacement whose init() fails and is being retried).
    """
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read(65536)
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if response.status == 200:
        return None
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return f"GET / answers {response.status}: {json.loads(body)['message']}"
    return f"GET / answers {response.status}"
