"""Binding the listening port: shared only with this service's own successor, never a stranger.

An update starts the new revision on the old one's port (SO_REUSEPORT) so that no request is
refused while the new one runs init(); but SO_REUSEPORT alone would let any second server on
the port take half of the traffic. So a port already in use is refused (exit 1, naming the
port, as azmlinfsrv's gunicorn refuses it), unless the server proves it is the successor:
each server publishes, for as long as it holds its port, an abstract Unix socket named after
the port and a hash of MLCLI_PORT_TOKEN (the deployer gives every revision of one service on
one port the same secret: mlcli/targets/ports.py port_token); a newcomer holding the same
secret finds that name and may join. Abstract sockets live in the network namespace, so
PROCESS servers and LOCAL containers (host networking) see each other's; a name vanishes when
its holder exits, even on kill -9. A server started by hand has no token: it never shares.

One more case: a predecessor started by an mlcli from before these names publishes none. An
update says so (MLCLI_PORT_JOIN_UNMARKED=1: the deployer holds the port's claim with the old
revision and vouches for it), and the server then joins a holder that published no name at
all; a holder that published another name is still refused.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

TOKEN_VARIABLE = "MLCLI_PORT_TOKEN"
JOIN_UNMARKED_VARIABLE = "MLCLI_PORT_JOIN_UNMARKED"
_PREFIX = "mlcli-port-"


class PortInUse(Exception):
    """The port is held by a program this server may not share it with."""


def _name(port: int, token: str) -> str:
    """What every holder of `token` on `port` publishes, followed by -<its pid> (the names
    of a predecessor and its successor, alive together, must differ)."""
    digest = hashlib.sha256(f"{port}:{token}".encode()).hexdigest()[:32]
    return f"{_PREFIX}{port}-{digest}"


def _published(port: int) -> set[str]:
    """Names of the servers that hold `port` now (abstract sockets, from /proc/net/unix)."""
    found = set()
    with contextlib.suppress(OSError), Path("/proc/net/unix").open() as table:
        marker = f"@{_PREFIX}{port}-"
        for line in table:
            path = line.rstrip("\n").rsplit(" ", 1)[-1]
            if path.startswith(marker):
                found.add(path[1:])
    return found


def _listener_elsewhere(host: str, port: int) -> bool:
    """Whether another socket listens on host:port (SO_REUSEADDR: TIME_WAIT leftovers of
    an earlier server do not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


class Binding:
    """A bound (not yet listening) socket and the name this server publishes for its port."""

    def __init__(self, sock: socket.socket, published: socket.socket | None) -> None:
        self.sock = sock
        self._published = published

    def close(self) -> None:
        self.sock.close()
        if self._published is not None:
            self._published.close()


def bind(host: str, port: int, environ: Mapping[str, str]) -> Binding:
    """Bind host:port with SO_REUSEPORT (so a successor can join), after checking that nobody
    holds it, or only this server's predecessor; PortInUse otherwise."""
    token = environ.get(TOKEN_VARIABLE, "")
    linux = sys.platform.startswith("linux")
    holders = _published(port) if linux else set()
    taken = bool(holders) or _listener_elsewhere(host, port)
    kin = token and any(h.startswith(_name(port, token) + "-") for h in holders)
    vouched = environ.get(JOIN_UNMARKED_VARIABLE) == "1" and not holders
    kin = kin or vouched
    if taken and not kin:
        raise PortInUse(_in_use(host, port, "Address already in use"))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(_in_use(host, port, exc.strerror)) from None
        raise PortInUse(f"Cannot bind {host}:{port} ({exc.strerror}).") from None
    return Binding(sock, _publish(port, token) if linux else None)


def _publish(port: int, token: str) -> socket.socket | None:
    """Hold the name that tells a successor with `token` it may share `port` (without a
    token, a name no successor can match: it still tells strangers the port is taken)."""
    if not token:
        import secrets

        token = secrets.token_hex(16)
    published = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        published.bind(f"\0{_name(port, token)}-{os.getpid()}")
    except OSError:
        published.close()
        return None
    return published


def _in_use(host: str, port: int, why: str) -> str:
    return (
        f"port {port} on {host} is already in use by another program ({why}). Stop that "
        f"program or choose another --port (or --health_port)."
    )
