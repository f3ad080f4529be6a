"""HTTP/1.1 connections of the front process, parsed by httptools on a uvloop event loop.

Why not an ASGI server: measured here, uvicorn's ASGI layer costs about 30 us of CPU per
request against 7 us for httptools driven directly, and the front process is the one part
of the server that every request crosses. So the parser's callbacks build a Request and hand
it to the app, which answers through a callback; one write() sends status, headers and body.

Handled here: keep-alive (HTTP/1.1 default, HTTP/1.0 on request), pipelined requests
(answered in order), `Expect: 100-continue`, HEAD (headers only), bodies over the limit
(413, then close), malformed requests (400, then close), idle connections (closed after
KEEP_ALIVE_S), and a graceful close for shutdown.

A kept-alive connection closed by the server can race a request the client is sending on it
at that moment: the request is lost (a client does not resend a POST). So on shutdown,
open connections stay open for DRAIN_GRACE_S: requests arriving on them are answered with
`Connection: close` (the client reconnects, to the server that replaces this one); only
then are the still idle ones closed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from http import HTTPStatus

import httptools

KEEP_ALIVE_S = 5.0  # idle time before a kept-alive connection is closed (uvicorn's default)
STALLED_S = 60.0  # a request whose bytes stop arriving for this long is dropped
MAX_HEADER_BYTES = 64 * 1024
MAX_PIPELINED = 16  # requests read ahead of their answers before reading pauses
DRAIN_GRACE_S = 1.0  # on shutdown, how long idle kept-alive connections may still bring a request

STATUS_LINES = {
    status.value: f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode() for status in HTTPStatus
}


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        line = STATUS_LINES[status] = f"HTTP/1.1 {status} \r\n".encode()
    return line


class Request:
    """One parsed request; `respond()` queues its answer on the connection, in order."""

    __slots__ = (
        "body",
        "cancelled",
        "conn",
        "content_length",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "raw_path",
        "response",
        "started",
    )

    def __init__(self, conn: Connection, method: str, url: bytes, headers: list, version: str):
        self.conn = conn
        self.method = method
        self.headers = headers
        self.http_version = version
        self.started = time.perf_counter()
        self.body = b""
        self.response: bytes | None = None
        self.cancelled = False
        self.keep_alive = True
        self.content_length = None
        parsed = httptools.parse_url(url)
        self.raw_path = parsed.path
        self.path = _decode_path(parsed.path)
        self.query = parsed.query or b""

    def respond(self, status: int, headers: list, body: bytes, *, close: bool = False) -> None:
        if self.response is not None or self.cancelled:
            return
        parts = [status_line(status)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"content-length: %d\r\n" % len(body))
        if close or not self.keep_alive or self.conn.closing:
            self.keep_alive = False
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        if self.method != "HEAD":
            parts.append(body)
        self.response = b"".join(parts)
        self.conn.flush()

    def client(self) -> tuple | None:
        return self.conn.peer

    def server(self) -> tuple | None:
        return self.conn.sockname


def _decode_path(raw: bytes) -> str:
    if b"%" not in raw:
        return raw.decode("latin-1")
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(raw).decode("utf-8", "replace")


class Connection(asyncio.Protocol):
    """One client connection: parses requests and writes their answers in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.app = server.app
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[Request] = deque()
        self.closing = False
        self.peer = None
        self.sockname = None
        self.last_active = time.monotonic()
        self._url = b""
        self._headers: list = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._current: Request | None = None
        self._rejected = False  # answered before its body arrived (413): ignore the rest
        self._paused = False
        self._receiving = False  # between the first byte of a request and its end

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        self.server.connections.add(self)

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        self.closing = True
        for request in self.pending:
            request.cancelled = True
        self.pending.clear()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, "Protocol upgrades are not supported.")
        except httptools.HttpParserError:
            self._fail(400, "Invalid HTTP request.")

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._receiving = True
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = []
        self._body_size = 0
        self._rejected = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise httptools.HttpParserError("headers too large")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        request = Request(
            self,
            parser.get_method().decode("ascii"),
            self._url,
            self._headers,
            parser.get_http_version(),
        )
        request.keep_alive = parser.should_keep_alive()
        self._current = request
        self.pending.append(request)
        if len(self.pending) > MAX_PIPELINED and not self._paused:
            self._paused = True
            self.transport.pause_reading()  # a client pipelining too far ahead waits
        expects_continue = False
        for name, value in self._headers:
            if name == b"content-length":
                request.content_length = int(value)
            elif name == b"expect" and value.lower() == b"100-continue":
                expects_continue = True
        if request.content_length is not None and request.content_length > self.app.max_body:
            self._rejected = True
            self.app.reject(request, 413)
        elif expects_continue and len(self.pending) == 1:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._rejected:
            return
        self._body_size += len(body)
        if self._body_size > self.app.max_body:
            self._rejected = True
            self._body = []
            self.app.reject(self._current, 413)
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._current
        self._current = None
        self._header_bytes = 0
        self._receiving = False
        if request is None or self._rejected:
            return
        body = self._body
        request.body = body[0] if len(body) == 1 else b"".join(body)
        self._body = []
        self.app.handle(request)

    # -- writing ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every answer that is ready and not waiting behind an earlier one."""
        pending = self.pending
        transport = self.transport
        while pending and pending[0].response is not None:
            request = pending.popleft()
            if transport is None:
                continue
            transport.write(request.response)
            self.last_active = time.monotonic()
            if not request.keep_alive:
                self._close()
                return
        if self._paused and transport is not None and len(pending) <= MAX_PIPELINED:
            self._paused = False
            transport.resume_reading()
        if self.closing and not pending and self._current is None:
            self._close()

    def _fail(self, status: int, message: str) -> None:
        from mlcli.server.outputs import error_reply

        if self.transport is None:
            return
        if self._current is not None and self._current.response is None:
            request = self._current
        else:
            request = Request(self, "GET", b"/", [], "1.1")
            self.pending.append(request)
        self._current = None
        _, headers, body = error_reply(status, message)
        request.respond(status, headers, body, close=True)

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    def shutdown(self) -> None:
        """From now on, answer with `Connection: close` and close once answered."""
        self.closing = True

    def close_if_idle(self) -> None:
        if not self.pending and not self._receiving:
            self._close()

    def idle_too_long(self, now: float) -> bool:
        idle = now - self.last_active
        if self.pending:
            return False
        if self._current is not None or self._header_bytes:
            return idle > STALLED_S
        return idle > KEEP_ALIVE_S


class HttpServer:
    """Listens on an already-bound socket and closes idle connections once a second."""

    def __init__(self, app) -> None:
        self.app = app
        self.connections: set[Connection] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, sock, *, backlog: int = 2048) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), sock=sock, backlog=backlog
        )
        self._sweeper = loop.call_later(1.0, self._sweep)

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            if conn.idle_too_long(now):
                conn._close()
        self._sweeper = asyncio.get_running_loop().call_later(1.0, self._sweep)

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, answer every request already received or arriving on an open
        connection within DRAIN_GRACE_S, then close the idle connections and the rest."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shutdown()
        grace_end = time.monotonic() + DRAIN_GRACE_S
        while self.connections and time.monotonic() < grace_end:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn.close_if_idle()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.connections and (deadline is None or time.monotonic() < deadline):
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            conn._close()
        if self._sweeper is not None:
            self._sweeper.cancel()
