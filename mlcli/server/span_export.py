"""`python -m mlcli.server.span_export`: the front's request spans, made and exported here.

The front (telemetry.RequestTelemetry) writes length-prefixed marshal frames to this
process's stdin, each a list of request tuples; each tuple becomes a SERVER span with
azmlinfsrv's Application Insights custom dimensions, handed to the OpenTelemetry SDK's batch
processor and the exporters the environment configures (telemetry.exporters). The process
ignores SIGINT/SIGTERM like the workers: it stops when the front closes the pipe (also when
the front is killed), after exporting what it still holds.
"""

from __future__ import annotations

import logging
import marshal
import os
import signal
import sys
import time
from typing import Any

from mlcli.server import logs, telemetry

log = logging.getLogger("mlcli.server.span_export")


def duration_text(milliseconds: float) -> str:
    """Application Insights' duration text, [d.]hh:mm:ss.fff, as azmlinfsrv formats it."""
    whole = int(milliseconds)
    parts = []
    for multiplier in (1000, 60, 60, 24):
        parts.append(whole % multiplier)
        whole //= multiplier
    millis, seconds, minutes, hours = parts
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    return f"{whole}.{text}" if whole else text


class SpanMaker:
    """Request tuples -> spans on the SDK's tracer."""

    def __init__(self, environ) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.provider = TracerProvider(resource=telemetry.resource(environ))
        for exporter in telemetry.exporters(environ, "traces"):
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("mlcli.server")
        self.kind = SpanKind.SERVER
        self.error = Status(StatusCode.ERROR)
        self.common = {
            "Container Id": telemetry.container_id(environ),
            "Workspace Name": environ.get("WORKSPACE_NAME")
            or environ.get("MLCLI_COLLECT_WORKSPACE", ""),
            "Service Name": environ.get("SERVICE_NAME", ""),
            "Models": ", ".join(telemetry.model_ids(environ.get("AZUREML_MODEL_DIR"))),
        }

    def make(self, record: tuple) -> None:
        name, path, method, query, status, body, start_ns, end_ns, request_id, client_id = record
        span = self.tracer.start_span(
            name,
            kind=self.kind,
            start_time=start_ns,
            attributes=self.attributes(
                path, method, query, status, body, start_ns, end_ns, request_id, client_id
            ),
        )
        if status >= 500:
            span.set_status(self.error)
        span.end(end_time=end_ns)

    def attributes(
        self, path, method, query, status, body, start_ns, end_ns, request_id, client_id
    ) -> dict[str, Any]:
        url = path + ("?" + query.decode("latin-1") if query else "")
        attributes: dict[str, Any] = {
            **self.common,
            "Request Id": request_id,
            "Client Request Id": client_id,
            "name": path,
            "url": url,
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start_ns / 1e9))
            + f".{start_ns // 1000 % 1_000_000:06d}Z",
            "duration": duration_text((end_ns - start_ns) / 1e6),
            "resultCode": str(status),
            "success": status < 400,
            "http_method": method,
            # OpenTelemetry's names, which Azure Monitor's exporter maps to its requests table
            "http.method": method,
            "http.route": path,
            "http.target": url,
            "http.status_code": status,
        }
        if body is not None:
            attributes["Response Value"] = body.decode("utf-8", "replace")
        return attributes


def frames(stream) -> Any:
    """The lists of request tuples the front sends, until it closes the pipe."""
    while True:
        header = stream.read(4)
        if len(header) < 4:
            return
        payload = stream.read(int.from_bytes(header, "big"))
        if len(payload) < int.from_bytes(header, "big"):
            return  # the front died mid-write: the partial frame is lost
        yield marshal.loads(payload)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logs.configure(("mlcli.server",))
    maker = SpanMaker(os.environ)
    try:
        for batch in frames(sys.stdin.buffer):
            for record in batch:
                maker.make(record)
    finally:
        maker.provider.shutdown()  # exports what the batch processor still holds


if __name__ == "__main__":
    main()
