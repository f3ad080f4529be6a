"""The front's request handling: azmlinfsrv's routes, headers and error bodies, plus limits.

Routes as azmlinfsrv 1.5.1 (Flask) has them: GET / (health), GET/POST/OPTIONS /score (HEAD is
routed too and answered 405 unless the script is @rawhttp), GET /swagger.json, and mlcli's
GET /metrics. Routing errors (404, 405) carry neither request ids nor the server version, as
on Azure; everything that reaches a route gets x-request-id, x-ms-request-id,
x-ms-client-request-id and TraceId handled the way azmlinfsrv's before/after-request hooks do.
mlcli's own answers (401, 413, 503) use Azure's error shape: {"message": ...}.
"""

from __future__ import annotations

import json
import os
import random
import time

from mlcli.server import outputs

NOT_FOUND = outputs.error_reply(
    404,
    "The requested URL was not found on the server. If you entered the URL manually please "
    "check your spelling and try again.",
)
ROUTING_405 = outputs.error_reply(405, "The method is not allowed for the requested URL.")
HEADER_LIMIT = 100
JSON_TYPE = (b"content-type", b"application/json")
HTML_TYPE = (b"content-type", b"text/html; charset=utf-8")
FAILED_FALSE = (b"x-ms-run-function-failed", b"False")
OPTIONS_HEADERS = [HTML_TYPE, (b"allow", b"GET, OPTIONS, HEAD")]

ROUTES = {
    "/": ("GET", "HEAD", "OPTIONS"),
    "/score": ("GET", "POST", "OPTIONS", "HEAD"),
    "/swagger.json": ("GET", "HEAD", "OPTIONS"),
    "/metrics": ("GET", "HEAD"),
}


class ScoringApp:
    """Answers each parsed Request (http.py) directly, or through the worker pool for /score."""

    telemetry = None  # telemetry.RequestTelemetry when configured (serve.py)
    cors = None  # cors.Cors when AML_CORS_ORIGINS is set (serve.py)

    def __init__(self, settings, pool, metrics, access_log, keys=None) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.access_log = access_log
        self.keys = keys
        self.max_body = settings.max_request_bytes
        self.log_bodies = settings.log_bodies
        version = settings.server_version
        self.version_header = [(b"x-ms-server-version", version.encode())] if version else []

    def handle(self, request) -> None:
        self.metrics.in_flight += 1
        path = request.path
        if "//" in path:
            path = _merge_slashes(path)
        methods = ROUTES.get(path)
        if methods is None:
            self.finish(request, "other", NOT_FOUND, None)
            return
        if request.method not in methods:
            self.finish(request, "other", ROUTING_405, None)
            return
        ids = RequestIds(request.headers)
        if ids.error is not None:
            self.finish(request, path, outputs.error_reply(431, ids.error), ids)
        elif path == "/score":
            self._score(request, ids)
        elif request.method == "OPTIONS":
            self.finish(request, path, (200, OPTIONS_HEADERS, b""), ids)
        elif path == "/":
            unready = self.pool.failing and self.pool.unready()
            if unready:
                reply = outputs.error_reply(503, f"No scoring worker is ready: {unready}.")
                self.finish(request, path, reply, ids)
            else:
                self.finish(request, path, (200, [HTML_TYPE], b"Healthy"), ids)
        elif path == "/swagger.json":
            self.finish(request, path, self._swagger(request.query), ids)
        else:
            headers = [(b"content-type", self.metrics.content_type.encode())]
            self.finish(request, path, (200, headers, self.metrics.exposition()), None)

    def reject(self, request, status: int) -> None:
        """413 decided by the connection before the body arrived (then the connection closes)."""
        self.metrics.in_flight += 1
        message = (
            f"The request body is larger than the limit of {self.max_body} bytes "
            "(MLCLI_MAX_REQUEST_BYTES)."
        )
        ids = RequestIds(request.headers)
        self.finish(request, "other", outputs.error_reply(status, message), ids, close=True)

    def _score(self, request, ids: RequestIds) -> None:
        if self.keys is not None and not self.keys.allows(ids.authorization):
            status, headers, body = outputs.error_reply(
                401, "Authorization failed: send the header 'Authorization: Bearer <key>'."
            )
            headers.append((b"www-authenticate", b"Bearer"))
            self.finish(request, "/score", (status, headers, body), ids)
            return
        self.pool.submit(ScoreJob(self, request, ids))

    def finish(self, request, route, reply, ids, *, run_ms=None, close=False) -> None:
        """Send the reply with azmlinfsrv's after-request headers; count it and log it."""
        status, headers, body = reply[0], reply[1], reply[2]
        if ids is not None:
            headers = self.after_request(request, headers, ids)
        request.respond(status, headers, body, close=close)
        elapsed = time.perf_counter() - request.started
        metrics = self.metrics
        metrics.in_flight -= 1
        metrics.observe(route, status, elapsed)
        if run_ms is not None:
            metrics.run_seconds.observe(run_ms / 1000)
        request_id = ids.request_id or ids.generated if ids is not None else ""
        logged_body = request.body if self.log_bodies else None
        self.access_log.request(
            request_id,
            request,
            status,
            elapsed,
            run_ms,
            logged_body,
            "N/A" if request.streaming else len(body),
        )
        if self.telemetry is not None:
            self.telemetry.request(request, route, status, body, elapsed, ids)

    def after_request(self, request, headers: list, ids: RequestIds) -> list:
        """azmlinfsrv's after-request headers: CORS, the server version, the request ids."""
        if self.cors is not None:
            headers = headers + self.cors.headers(request.method, request.headers)
        return headers + self.version_header + ids.response_headers()

    def _swagger(self, query: bytes) -> tuple:
        from urllib.parse import parse_qsl

        from mlcli.server.swagger import VERSIONS

        # the first ?version=, as the raw string Flask's request.args.get() returns
        given = [v for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                 if k == "version"]  # fmt: skip
        version = given[0] if given else "2"
        documents = self.pool.swagger
        supported = ", ".join(v for v in ("2", "3", "3.1") if documents.get(v) is not None)
        if version not in VERSIONS:
            return outputs.error_reply(
                404, f"Swagger version [{version}] is not valid. Supported versions: [{supported}]."
            )
        document = documents.get(VERSIONS[version])
        if document is None:
            return outputs.error_reply(
                404,
                f"Swagger version [{version}] is not supported for the scoring script. "
                f"Supported swagger versions: [{supported}].",
            )
        return 200, [JSON_TYPE, FAILED_FALSE], json.dumps(document).encode()


class ScoreJob:
    """A /score request on its way through the pool (see pool.py for the job protocol)."""

    __slots__ = ("app", "ids", "pieces", "queued_at", "request")

    def __init__(self, app: ScoringApp, request, ids: RequestIds) -> None:
        self.app = app
        self.request = request
        self.ids = ids
        self.queued_at = 0.0
        self.pieces = None  # a streamed answer that could not go out as it came: its pieces

    def stream(self, message: tuple) -> None:
        """A streamed answer under way (AMLResponse(generator)): its head or its next piece."""
        request = self.request
        if message[0] == "head":
            headers = self.app.after_request(request, message[3], self.ids)
            if not request.stream_start(message[2], headers):
                self.pieces = []
        elif self.pieces is not None:
            self.pieces.append(message[2])
        else:
            request.stream_piece(message[2])

    @property
    def cancelled(self) -> bool:
        return self.request.cancelled

    def message(self, seq: int, needs_headers: bool) -> tuple:
        request = self.request
        ids = self.ids
        if needs_headers:
            headers = request.headers
            extra = (request.client(), request.server(), "http", request.http_version)
        else:
            headers = extra = None
        return (
            seq,
            ids.request_id or ids.generated,
            request.method,
            request.path,
            request.query,
            ids.content_type,
            headers,
            request.body,
            extra,
        )

    @property
    def jobs(self) -> tuple:
        """The requests this unit of the pool's work answers (a Batch holds several)."""
        return (self,)

    def settle(self, answer: tuple) -> None:
        """The worker's answer."""
        self.finish(answer)

    def finish(self, reply: tuple) -> None:
        if self.pieces is not None:
            reply = (reply[0], reply[1], b"".join(self.pieces), *reply[3:])
        self.app.finish(self.request, "/score", reply, self.ids, run_ms=reply[3])


_random = random.Random(os.urandom(32))


def new_request_id() -> str:
    """A version-4 UUID string, as azmlinfsrv generates; from a seeded PRNG, not getrandom(2)
    per request (an id needs to be unique, not unpredictable)."""
    number = _random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)
    text = "%032x" % (number | (0x4000 << 64) | (0x8000 << 48))
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _merge_slashes(path: str) -> str:
    while "//" in path:
        path = path.replace("//", "/")
    return path


class RequestIds:
    """The request id headers, resolved as azmlinfsrv's _init_headers hook does."""

    __slots__ = (
        "authorization",
        "client_request_id",
        "content_type",
        "error",
        "generated",
        "legacy_request_id",
        "request_id",
        "trace_id",
    )

    def __init__(self, headers: list) -> None:
        x_request_id = x_ms_request_id = x_ms_client_request_id = None
        self.trace_id = self.authorization = self.content_type = None
        for name, value in headers:
            if name == b"content-type":
                self.content_type = value.decode("latin-1")
            elif name == b"x-request-id":
                x_request_id = _join(x_request_id, value)
            elif name == b"authorization":
                self.authorization = value
            elif name == b"x-ms-request-id":
                x_ms_request_id = _join(x_ms_request_id, value)
            elif name == b"x-ms-client-request-id":
                x_ms_client_request_id = _join(x_ms_client_request_id, value)
            elif name == b"traceid":
                self.trace_id = _join(self.trace_id, value)
        self.error = None
        self.generated = ""
        self.request_id = self.client_request_id = self.legacy_request_id = ""

        if x_request_id is None:
            self.generated = request_id = new_request_id()
        else:
            request_id = x_request_id.decode("latin-1")
        if len(request_id) > HEADER_LIMIT:
            self.error = f"x-request-id must not exceed {HEADER_LIMIT} characters"
            self.generated = new_request_id()
            return
        self.request_id = request_id

        legacy = x_ms_request_id.decode("latin-1") if x_ms_request_id else ""
        client = x_ms_client_request_id.decode("latin-1") if x_ms_client_request_id else ""
        if legacy:
            client = client or legacy
        else:
            legacy = client or request_id
        if len(legacy) > HEADER_LIMIT or len(client) > HEADER_LIMIT:
            self.error = (
                f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} "
                "characters"
            )
            return
        self.legacy_request_id = legacy
        self.client_request_id = client

    def response_headers(self) -> list:
        headers = []
        if self.request_id:
            headers.append((b"x-request-id", self.request_id.encode("latin-1")))
        if self.legacy_request_id:
            headers.append((b"x-ms-request-id", self.legacy_request_id.encode("latin-1")))
        if self.client_request_id:
            headers.append((b"x-ms-client-request-id", self.client_request_id.encode("latin-1")))
        if self.trace_id is not None:
            headers.append((b"TraceId", self.trace_id))
        return headers


def _join(previous: bytes | None, value: bytes) -> bytes:
    # a repeated header reaches Flask as one value joined with commas (WSGI environ)
    return value if previous is None else previous + b"," + value
