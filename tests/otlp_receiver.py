"""A real OTLP/HTTP and Application Insights ingestion receiver on 127.0.0.1 for the telemetry
tests: it keeps every POST and decodes them (opentelemetry-proto; Azure's JSON envelopes)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps every POST: (path, body, headers)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes, dict]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                received.append((self.path, body, dict(self.headers)))
                answer = b""
                if "/track" in self.path:  # Application Insights' ingestion answer
                    count = len(json.loads(body))
                    answer = json.dumps(
                        {"itemsReceived": count, "itemsAccepted": count, "errors": []}
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, found: Callable[[], list], timeout: float = 20) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            items = found()
            if items:
                return items
            time.sleep(0.05)
        raise AssertionError(f"nothing received; got {[p for p, _, _ in self.posts]}")

    def spans(self) -> list:
        spans = []
        for path, body, _ in list(self.posts):
            if path == "/v1/traces":
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    for scope in resource_spans.scope_spans:
                        spans += [(resource_spans.resource, span) for span in scope.spans]
        return spans

    def log_records(self) -> list:
        records = []
        for path, body, _ in list(self.posts):
            if path == "/v1/logs":
                request = ExportLogsServiceRequest.FromString(body)
                for resource_logs in request.resource_logs:
                    for scope in resource_logs.scope_logs:
                        records += list(scope.log_records)
        return records

    def envelopes(self) -> list[dict]:
        return [
            e for path, body, _ in list(self.posts) if "/track" in path for e in json.loads(body)
        ]


def attributes(item) -> dict:
    """An OTLP span's, log record's or resource's attributes as a plain dict."""
    values = {}
    for pair in item.attributes:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values
