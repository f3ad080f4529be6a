"""HTTP/1.1 connections of the front process, parsed by httptools on a uvloop event loop.

Why not an ASGI server: measured here, uvicorn's ASGI layer costs about 30 us of CPU per
request against 7 us for httptools driven directly, and the front process is the one part
of the server that every request crosses. So the parser's callbacks build a Request and hand
it to the app, which answers through a callback; one write() sends status, headers and body.

Handled here: keep-alive (HTTP/1.1 default, HTTP/1.0 on request), pipelined requests
(answered in order), `Expect: 100-continue`, HEAD (headers only), bodies over the limit
(413, then close), malformed requests (400, then close), idle connections (closed after
`keep_alive_s`), and a graceful close for shutdown.

A hostile client costs one connection's worth of work and bounded memory (ClientLimits, whose
defaults are nginx's and gunicorn's): a request head (request line and headers) is refused
past MAX_HEAD_BYTES as its bytes arrive, not once a header ends (httptools buffers a header
until then), its URL past MAX_URL_BYTES (414), more than MAX_HEADERS headers (431); a head
must arrive within `header_timeout_s` of its first byte and a body may pause at most
`body_timeout_s` between reads (408). A body gathered from many small chunks grows one buffer,
not a list of small objects, and the bodies held at once across all connections share one
budget (`max_body_bytes_held`, 503 past it). After an error the rest of what the client sends
is discarded: one answer, no parsing. When the connection count reaches `max_connections` (from
RLIMIT_NOFILE, which serve.py raises), the connection idle longest is closed to make room.
A client that does not read its answers is no longer read from (requests parsed past
MAX_PIPELINED wait unhandled), and is reset after `send_timeout_s`.

An error answered before the client has sent all of its request (413, 400) is followed by a
lingering close, as nginx does: the answer goes out, the write side is shut, and what the
client still sends is read and dropped for up to LINGER_S. Closing at once would reset the
connection while the client is still sending, and a client reading the answer only after
sending its body (urllib, requests) would see ConnectionResetError instead of the 413.

A kept-alive connection closed by the server can race a request the client is sending on it
at that moment: the request is lost (a client does not resend a POST). So on shutdown,
open connections stay open for DRAIN_GRACE_S: requests arriving on them are answered with
`Connection: close` (the client reconnects, to the server that replaces this one); only
then are the still idle ones closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import deque
from http import HTTPStatus

import httptools

from mlcli.server.settings import ClientLimits

log = logging.getLogger("mlcli.server")

MAX_HEAD_BYTES = 64 * 1024  # request line and headers (nginx: 4 buffers of 8 KB)
MAX_URL_BYTES = 16 * 1024  # gunicorn's limit_request_line is 4094, nginx's buffer 8 KB
MAX_HEADERS = 100  # gunicorn's limit_request_fields
MAX_PIPELINED = 16  # requests read ahead of their answers before reading pauses
# A streamed answer's bytes written but not yet taken by the client: past this the client
# reads slower than the script writes, and is dropped (the pieces would pile up in memory).
MAX_STREAM_BUFFERED = 8 * 1024 * 1024
DRAIN_GRACE_S = 1.0  # on shutdown, how long idle kept-alive connections may still bring a request
LINGER_S = 30.0  # nginx's lingering_time: the longest a refused client's bytes are drained
LINGER_IDLE_S = 5.0  # nginx's lingering_timeout: ... or until it pauses this long


class Refused(Exception):
    """Raised in a parser callback: answer `status` with `message`, then close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
        "held",
        "http_version",
        "keep_alive",
        "method",
        "path",
        "query",
        "response",
        "started",
        "stream_status",
        "streaming",
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
        self.held = 0  # body bytes counted against the server's budget (HttpServer.hold)
        self.streaming = False  # answering with chunked transfer (stream_start)
        self.stream_status = 0  # the status its head went out with
        parsed = httptools.parse_url(url)
        self.path = _decode_path(parsed.path)
        self.query = parsed.query or b""

    def stream_start(self, status: int, headers: list) -> bool:
        """Send the head of a chunked answer now, if it can go out now (this request is the
        connection's oldest unanswered one, over HTTP/1.1, not HEAD); False otherwise, and
        the caller sends the pieces as one body later."""
        conn = self.conn
        if (
            self.cancelled
            or self.response is not None
            or conn.transport is None
            or self.http_version != "1.1"
            or self.method == "HEAD"
            or not conn.pending
            or conn.pending[0] is not self
        ):
            return False
        parts = [status_line(status)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"transfer-encoding: chunked\r\n")
        if not self.keep_alive or conn.closing:
            self.keep_alive = False
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        conn.transport.write(b"".join(parts))
        self.streaming = True
        self.stream_status = status
        return True

    def stream_piece(self, data: bytes) -> None:
        transport = self.conn.transport
        if data and transport is not None and not self.cancelled:
            transport.write(b"%x\r\n%b\r\n" % (len(data), data))
            if transport.get_write_buffer_size() > MAX_STREAM_BUFFERED:
                self.conn.drop_slow_reader()

    def respond(self, status: int, headers: list, body: bytes, *, close: bool = False) -> None:
        if self.held:
            self.conn.server.release(self)
        if self.response is not None or self.cancelled:
            return
        if self.streaming:  # the head and the pieces went out: the last chunk ends it
            if status == self.stream_status:
                self.response = b"0\r\n\r\n"
            else:  # the generator failed midway: close without the last chunk, so the
                self.response = b""  # client sees a cut body, as gunicorn leaves it
                self.keep_alive = False
            self.conn.flush()
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
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.pending: deque[Request] = deque()
        self._parked: deque[Request] = deque()  # parsed, not yet handed to the app
        self._unparking = False
        self.closing = False
        self.peer = None
        self.sockname = None
        self.last_active = self.phase_started = time.monotonic()
        self._url = b""
        self._headers: list = []
        self._header_bytes = 0
        self._head_bytes = 0  # bytes received since the current head began
        self._in_head = True  # the next bytes belong to a request line or headers
        self._heads = 0  # heads parsed on this connection
        self._body: bytes | bytearray | None = None
        self._body_size = 0
        self._current: Request | None = None
        self._rejected = False  # answered before its body arrived (413): ignore the rest
        self._failed = False  # answered with an error: what the client sends now is dropped
        self._linger = False  # close with a lingering close once the error is written
        self._lingering = 0.0  # since when the lingering close is under way (0: not)
        self._paused = False
        self._write_blocked = 0.0  # since when the client has not been reading its answers
        self._receiving = False  # between the first byte of a request and its end

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        self.sockname = transport.get_extra_info("sockname")
        server = self.server
        if len(server.connections) >= self.limits.max_connections and not server.make_room():
            self.closing = True
            transport.close()
            return
        server.connections.add(self)

    def connection_lost(self, exc) -> None:
        server = self.server
        server.connections.discard(self)
        self.closing = True
        for request in self.pending:
            request.cancelled = True
            if request.held:
                server.release(request)
        self.pending.clear()
        self.transport = None

    def pause_writing(self) -> None:
        # A client that sends requests but does not read the answers: stop reading its
        # requests, or their answers would pile up in memory.
        self._write_blocked = time.monotonic()
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_blocked = 0.0
        if self._parked:
            self._unpark()
        if not self._paused and self.transport is not None:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_active = time.monotonic()
        if self._failed:
            return  # one answer per error; the rest is dropped (and lingered over)
        if self._in_head:
            # Counted as the bytes arrive: httptools holds a header until it ends.
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                allowed = len(data) - (self._head_bytes - MAX_HEAD_BYTES)
                heads = self._heads
                view = memoryview(data)  # slices without copies (a body may follow the head)
                self._feed(view[:allowed])
                if self._failed:
                    return
                if self._heads == heads:  # the head went on past the limit
                    self._fail(431, f"The request head exceeds {MAX_HEAD_BYTES} bytes.")
                    return
                data = view[allowed:]
        try:  # (not through _feed: one call less per request)
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parse_failed(exc)

    def _feed(self, data: bytes | memoryview) -> None:
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._parse_failed(exc)

    def _parse_failed(self, exc: Exception) -> None:
        if isinstance(exc, httptools.HttpParserUpgrade):
            self._fail(400, "Protocol upgrades are not supported.")
        elif isinstance(exc.__context__, Refused):
            self._fail(exc.__context__.status, exc.__context__.message)
        else:
            self._fail(400, "Invalid HTTP request.")

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._receiving = True
        self.phase_started = self.last_active  # set by data_received just before
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = None
        self._body_size = 0
        self._rejected = False

    def on_url(self, url: bytes) -> None:
        # pieces as they arrive (one piece per read at most): += stays cheap, the total bounded
        self._url += url
        if len(self._url) > MAX_URL_BYTES:
            raise Refused(414, f"The request URL exceeds {MAX_URL_BYTES} bytes.")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEAD_BYTES:
            raise Refused(431, f"The request head exceeds {MAX_HEAD_BYTES} bytes.")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._heads += 1
        if len(self._headers) > MAX_HEADERS:  # (their bytes are bounded as they arrive)
            raise Refused(431, f"The request has more than {MAX_HEADERS} headers.")
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
            self._reject()
        elif request.content_length and not self.server.hold(request, request.content_length):
            self._refuse_busy()
        elif expects_continue and len(self.pending) == 1:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._rejected:
            return
        self._body_size += len(body)
        if self._body_size > self.app.max_body:
            self._body = None
            self._reject()
            return
        request = self._current
        if request.content_length is None and not self.server.hold(request, len(body)):
            self._body = None
            self._refuse_busy()
            return
        held = self._body
        if held is None:
            self._body = body
        elif type(held) is bytes:
            # A body in many pieces (tiny chunks) grows one buffer: a list of small bytes
            # objects would cost ~50 bytes of overhead per piece.
            grown = self._body = bytearray(held)
            grown += body
        else:
            held += body

    def on_message_complete(self) -> None:
        request = self._current
        self._current = None
        self._header_bytes = 0
        self._receiving = False
        self._in_head = True
        self._head_bytes = 0
        if request is None or self._rejected:
            return
        body = self._body
        self._body = None
        request.body = b"" if body is None else body if type(body) is bytes else bytes(body)
        if self._parked or self._write_blocked or self._paused:
            # Many requests can arrive in one read: the ones past MAX_PIPELINED, or sent by
            # a client that does not read its answers, wait here, so that their answers are
            # not all held in memory at once.
            self._parked.append(request)
        else:
            self.app.handle(request)

    def _unpark(self) -> None:
        if self._unparking:  # an answer given at once flushes, and flushing unparks: no recursion
            return
        self._unparking = True
        parked = self._parked
        try:
            while (
                parked
                and not self._write_blocked
                and len(self.pending) - len(parked) < MAX_PIPELINED
                and self.transport is not None
            ):
                self.app.handle(parked.popleft())
        finally:
            self._unparking = False

    def _refuse_busy(self) -> None:
        """503: the bodies already held across connections reach the server's budget."""
        self._rejected = True
        self._fail(
            503,
            f"The service holds {self.server.limits.max_body_bytes_held} bytes of request "
            "bodies already (MLCLI_MAX_BODY_BYTES_HELD). Retry later.",
        )

    def _reject(self) -> None:
        """413 before the body has arrived: answer now, drop the rest, close lingering."""
        self._rejected = self._failed = self._linger = True
        if not self._paused:
            self._paused = True
            if not self._write_blocked:
                self.transport.pause_reading()
        self.app.reject(self._current, 413)

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
            self.last_active = self.phase_started = time.monotonic()
            if not request.keep_alive:
                self._close_after_answer()
                return
        if self._parked:
            self._unpark()
        if (
            self._paused
            and transport is not None
            and len(pending) <= MAX_PIPELINED
            and not self._failed
        ):
            self._paused = False
            self.last_active = self.phase_started = time.monotonic()
            if not self._write_blocked:
                transport.resume_reading()
        if self.closing and not pending and self._current is None:
            self._close()

    def _fail(self, status: int, message: str, *, linger: bool = True) -> None:
        from mlcli.server.outputs import error_reply

        if self.transport is None:
            return
        self._failed = True
        self._linger = linger
        if not self._paused:  # until the error is written (behind earlier answers, maybe)
            self._paused = True
            if not self._write_blocked:
                self.transport.pause_reading()
        if self._current is not None and self._current.response is None:
            request = self._current
        else:
            request = Request(self, "GET", b"/", [], "1.1")
            self.pending.append(request)
        self._current = None
        _, headers, body = error_reply(status, message)
        request.respond(status, headers, body, close=True)

    def _close_after_answer(self) -> None:
        transport = self.transport
        if not self._linger or transport is None or not transport.can_write_eof():
            self._close()
            return
        self.closing = True
        self._lingering = time.monotonic()
        transport.write_eof()  # the answer, then FIN; what the client still sends is read
        if self._paused:
            self._paused = False
            if not self._write_blocked:
                transport.resume_reading()

    def drop_slow_reader(self) -> None:
        if self.transport is not None and not self.closing:
            log.warning(
                "Dropped a client that read a streamed answer slower than it was produced "
                "(over %d bytes waiting)",
                MAX_STREAM_BUFFERED,
            )
            self._reset()

    def _reset(self) -> None:
        """Drop the connection with a reset: close() would keep the unread answers in the
        kernel until the client reads them, which it does not."""
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.closing = True
        self.transport.abort()

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

    def check_deadlines(self, now: float) -> None:
        """Close what has been idle too long; answer 408 to a head or body that stalls; drop
        a client that has read none of its answers for `send_timeout_s` (nginx's send_timeout)."""
        if self._write_blocked:  # not reading meanwhile: no other deadline runs
            if now - self._write_blocked > self.limits.send_timeout_s and self.transport:
                self._reset()
            return
        if self._lingering:
            if now - self._lingering > LINGER_S or now - self.last_active > LINGER_IDLE_S:
                self._close()
            return
        if self._failed or self._paused:
            return
        limits = self.limits
        if self._current is not None:  # headers in, body under way
            if now - self.last_active > limits.body_timeout_s:
                self._fail(408, "The request body stopped arriving.", linger=False)
        elif self._receiving:  # a head under way
            if now - self.phase_started > limits.header_timeout_s:
                self._fail(408, "The request head took too long to arrive.", linger=False)
        elif not self.pending and now - self.last_active > limits.keep_alive_s:
            self._close()

    def evictable_since(self) -> float | None:
        """When this connection began waiting on its client (idle, or sending a head);
        None while it holds a request or is closing."""
        if self.pending or self.closing or self._lingering:
            return None
        return self.phase_started


class HttpServer:
    """Listens on an already-bound socket; checks the connections' deadlines once a second."""

    def __init__(self, app, limits: ClientLimits | None = None) -> None:
        self.app = app
        self.limits = limits or ClientLimits()
        self.connections: set[Connection] = set()
        self.bodies_held = 0  # bytes of request bodies being received or waiting to be scored
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
            conn.check_deadlines(now)
        self._sweeper = asyncio.get_running_loop().call_later(1.0, self._sweep)

    def hold(self, request: Request, size: int) -> bool:
        """Count `size` more body bytes of `request` against the budget shared by every
        connection (many clients each sending a body under the per-request limit would
        otherwise add up without bound); False when they do not fit."""
        if self.bodies_held + size > self.limits.max_body_bytes_held:
            return False
        self.bodies_held += size
        request.held += size
        return True

    def release(self, request: Request) -> None:
        self.bodies_held -= request.held
        request.held = 0

    def make_room(self) -> bool:
        """At max_connections: close the connection that has waited on its client longest
        (nginx reuses its idle keep-alive connections the same way). False if none can go."""
        oldest = None
        oldest_since = 0.0
        for conn in self.connections:
            since = conn.evictable_since()
            if since is not None and (oldest is None or since < oldest_since):
                oldest, oldest_since = conn, since
        if oldest is None:
            return False
        oldest._close()
        return True

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
