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
    """Request tuples -> finished spans for the SDK's batch processors.

    A request's span is over before it gets here, so it is built as the finished, read-only
    span the processors take (ReadableSpan), sampled by the sampler the OTEL_TRACES_SAMPLER
    variables choose: without a live span's bookkeeping and its per-attribute checks, which
    cost four times more (measured: 115 vs 25 us a span).
    """

    def __init__(self, environ) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanKind, Status, StatusCode, TraceFlags

        provider = TracerProvider(resource=telemetry.resource(environ), shutdown_on_exit=False)
        # the global one: Azure Monitor's exporter reads the resource from it
        from opentelemetry import trace

        trace.set_tracer_provider(provider)
        self.resource = provider.resource
        self.sampler = provider.sampler  # from OTEL_TRACES_SAMPLER, as the SDK reads it
        self.processors = [BatchSpanProcessor(e) for e in telemetry.exporters(environ, "traces")]
        self.ids = RandomIdGenerator()
        self.scope = InstrumentationScope("mlcli.server")
        self.kind = SpanKind.SERVER
        self.error = Status(StatusCode.ERROR)
        self.unset = Status(StatusCode.UNSET)
        self.sampled = TraceFlags(TraceFlags.SAMPLED)
        self.log_response = telemetry.response_logged(environ)
        self.traces = logging.getLogger("mlcli.server.model_data")
        self.traces.propagate = False
        self.log_provider = None
        if telemetry.true(environ.get("AML_MODEL_DC_STORAGE_ENABLED")):
            from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            self.log_provider = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
            for exporter in telemetry.exporters(environ, "logs"):
                self.log_provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
            self.traces.addHandler(LoggingHandler(logger_provider=self.log_provider))
            self.traces.setLevel(logging.INFO)
        self.common = {
            "Container Id": telemetry.container_id(environ),
            "Workspace Name": environ.get("WORKSPACE_NAME")
            or environ.get("MLCLI_COLLECT_WORKSPACE", ""),
            "Service Name": environ.get("SERVICE_NAME", ""),
            "Models": ", ".join(telemetry.model_ids(environ.get("AZUREML_MODEL_DIR"))),
        }

    def make(self, record: tuple) -> None:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext

        name, path, method, query, status, body, start_ns, end_ns, request_id, client_id, given = (
            record
        )
        if given is not None:
            self.model_data(request_id, client_id, given, body)
        attributes = self.attributes(
            path,
            method,
            query,
            status,
            body if self.log_response else None,
            start_ns,
            end_ns,
            request_id,
            client_id,
        )
        trace_id = self.ids.generate_trace_id()
        sampling = self.sampler.should_sample(None, trace_id, name, self.kind, attributes)
        if not sampling.decision.is_sampled():
            return
        span = ReadableSpan(
            name=name,
            context=SpanContext(
                trace_id, self.ids.generate_span_id(), is_remote=False, trace_flags=self.sampled
            ),
            resource=self.resource,
            attributes=attributes,
            kind=self.kind,
            status=self.error if status >= 500 else self.unset,
            start_time=start_ns,
            end_time=end_ns,
            instrumentation_scope=self.scope,
        )
        for processor in self.processors:
            processor.on_end(span)

    def model_data(self, request_id: str, client_id: str, body: bytes, prediction) -> None:
        """azmlinfsrv's trace of a scored request when data collection is on as well."""
        self.traces.info(
            "model_data_collection",
            extra={
                **self.common,
                "Request Id": request_id,
                "Client Request Id": client_id,
                "Input": body.decode("utf-8", "replace"),
                "Prediction": prediction.decode("utf-8", "replace") if prediction else "",
            },
        )

    def shutdown(self) -> None:
        """Export what the batch processors still hold."""
        for processor in self.processors:
            processor.shutdown()
        if self.log_provider is not None:
            self.log_provider.shutdown()

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
        maker.shutdown()


if __name__ == "__main__":
    main()
