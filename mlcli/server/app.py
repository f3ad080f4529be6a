"""The ASGI app of the front process: azmlinfsrv's routes, headers and error bodies, plus limits.

Routes as azmlinfsrv 1.5.1 (Flask) has them: GET / (health), GET/POST/OPTIONS /score (HEAD is
routed too and answered 405 unless the script is @rawhttp), GET /swagger.json, and mlcli's
GET /metrics. Routing errors (404, 405) carry neither request ids nor the server version, as
on Azure; everything that reaches a route gets x-request-id, x-ms-request-id,
x-ms-client-request-id and TraceId handled the way azmlinfsrv's before/after-request hooks do.
"""

from __future__ import annotations

import json
import time
import uuid

from mlcli.server import outputs
from mlcli.server.pool import Overloaded

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

ROUTES = {
    "/": ("GET", "HEAD", "OPTIONS"),
    "/score": ("GET", "POST", "OPTIONS", "HEAD"),
    "/swagger.json": ("GET", "HEAD", "OPTIONS"),
    "/metrics": ("GET", "HEAD"),
}


class RequestIdError(Exception):
    """431: a request id header is longer than azmlinfsrv accepts."""


class ScoringApp:
    def __init__(self, settings, pool, metrics, access_log, keys=None) -> None:
        self.settings = settings
        self.pool = pool
        self.metrics = metrics
        self.access_log = access_log
        self.keys = keys
        self.max_body = settings.max_request_bytes
        version = settings.server_version
        self.version_header = [(b"x-ms-server-version", version.encode())] if version else []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        metrics = self.metrics
        metrics.in_flight.inc()
        path = scope["path"]
        if "//" in path:
            path = _merge_slashes(path)
        method = scope["method"]
        methods = ROUTES.get(path)
        run_ms = None
        request_id = ""
        if methods is None:
            route, (status, headers, body) = "other", NOT_FOUND
        elif method not in methods:
            route, (status, headers, body) = "other", ROUTING_405
        else:
            route = path
            ids = RequestIds(scope["headers"])
            request_id = ids.request_id
            if ids.error is not None:
                status, headers, body = outputs.error_reply(431, ids.error)
            elif path == "/score":
                status, headers, body, run_ms = await self._score(scope, receive, method, ids)
            elif method == "OPTIONS":
                status, headers, body = 200, [HTML_TYPE, (b"allow", b"GET, OPTIONS, HEAD")], b""
            elif path == "/":
                status, headers, body = 200, [HTML_TYPE], b"Healthy"
            elif path == "/swagger.json":
                status, headers, body = self._swagger(scope["query_string"])
            else:
                route = "/metrics"
                status, headers = 200, [(b"content-type", metrics.content_type.encode())]
                body = metrics.exposition()
            headers = headers + self.version_header + ids.response_headers()

        headers = [*headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        elapsed = time.perf_counter() - started
        metrics.in_flight.dec()
        metrics.observe(route, status, elapsed)
        self.access_log.request(request_id, method, scope, status, elapsed, run_ms)

    async def _score(self, scope, receive, method: str, ids: RequestIds) -> tuple:
        if self.keys is not None and not self.keys.allows(ids.authorization):
            status, headers, body = outputs.error_reply(
                401, "Authorization failed: send the header 'Authorization: Bearer <key>'."
            )
            headers.append((b"www-authenticate", b"Bearer"))
            return status, headers, body, None
        if ids.content_length is not None and ids.content_length > self.max_body:
            return (*self._too_large(), None)
        body = b""
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                body = body + chunk if body else chunk
                if len(body) > self.max_body:
                    return (*self._too_large(), None)
            if not message.get("more_body", False):
                break
        extra = (scope.get("client"), scope.get("server"), scope["scheme"], scope["http_version"])
        try:
            status, headers, body, run_ms, _ = await self.pool.score(
                ids.request_id or ids.generated,
                method,
                scope["path"],
                scope["query_string"],
                ids.content_type,
                scope["headers"],
                body,
                extra,
            )
        except Overloaded as exc:
            status, headers, body = outputs.error_reply(
                503,
                f"The service is busy: {exc}. Retry later.",
            )
            return status, headers, body, None
        if run_ms is not None:
            self.metrics.run_seconds.observe(run_ms / 1000)
        return status, list(headers), body, run_ms

    def _too_large(self) -> tuple:
        status, headers, body = outputs.error_reply(
            413,
            f"The request body is larger than the limit of {self.max_body} bytes "
            "(MLCLI_MAX_REQUEST_BYTES).",
        )
        headers.append((b"connection", b"close"))
        return status, headers, body

    def _swagger(self, query: bytes) -> tuple:
        from mlcli.server.inputs import query_parameters
        from mlcli.server.swagger import VERSIONS

        requested = query_parameters(query).get("version", "2") if query else "2"
        if isinstance(requested, list):
            requested = requested[0]
        version = str(requested)
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


def _merge_slashes(path: str) -> str:
    while "//" in path:
        path = path.replace("//", "/")
    return path


class RequestIds:
    """The request id headers, resolved as azmlinfsrv's _init_headers hook does."""

    __slots__ = (
        "authorization",
        "client_request_id",
        "content_length",
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
        self.content_length = None
        for name, value in headers:
            if name == b"content-type":
                self.content_type = value.decode("latin-1")
            elif name == b"content-length":
                self.content_length = int(value)
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
            self.generated = request_id = str(uuid.uuid4())
        else:
            request_id = x_request_id.decode("latin-1")
        if len(request_id) > HEADER_LIMIT:
            self.error = f"x-request-id must not exceed {HEADER_LIMIT} characters"
            self.generated = str(uuid.uuid4())
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
            headers.append((b"traceid", self.trace_id))
        return headers


def _join(previous: bytes | None, value: bytes) -> bytes:
    # a repeated header reaches Flask as one value joined with commas (WSGI environ)
    return value if previous is None else previous + b"," + value
