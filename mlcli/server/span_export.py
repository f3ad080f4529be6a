"""`python -m mlcli.server.span_export`: the front's request spans, made and exported here.

The front (telemetry.RequestTelemetry) writes length-prefixed marshal frames to this
process's stdin, each a list of request tuples; each tuple becomes a SERVER span with
azmlinfsrv's Application Insights custom dimensions. For OTLP/HTTP the spans are encoded
straight to protobuf bytes (otlp_encode.py) and sent in batches by the OTLP exporter; for
Azure Monitor's exporter (which takes SDK spans) they are built as SDK spans and handed to
the SDK's batch processor. The process ignores SIGINT/SIGTERM like the workers: it stops
when the front closes the pipe (also when the front is killed), after exporting what it
still holds.
"""

from __future__ import annotations

import logging
import marshal
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Mapping

from mlcli.server import logs, otlp_encode, telemetry

log = logging.getLogger("mlcli.server.span_export")

duration_text = otlp_encode.duration_text  # where the tests and older callers find it


def _setting(environ: Mapping[str, str], name: str, default: int) -> int:
    try:
        value = int(environ.get(name, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


class Batches:
    """Encoded spans (or log records) -> an OTLP exporter, in batches, at least every
    OTEL_BSP_SCHEDULE_DELAY ms (OTEL_BLRP_... for logs; 5000) as the SDK's batch processors.
    A thread exports, so reading the front's pipe never waits for the network; beyond
    ..._MAX_QUEUE_SIZE items waiting, new ones are dropped and logged.

    A batch is up to ..._MAX_EXPORT_BATCH_SIZE items, 2048 unless set (the SDK's is 512) and
    at most MAX_BATCH_BYTES: each POST costs the exporter about 1 ms of CPU whatever its
    size (measured: 10.3, 2.5 and 0.5 CPU us a span in batches of 128, 512 and 2048), which
    a busy service would pay on every 512 requests."""

    MAX_BATCH_BYTES = 4 * 1024 * 1024

    def __init__(
        self,
        exporter,
        request: Callable[[list[bytes]], bytes],
        environ: Mapping[str, str],
        *,
        prefix: str = "OTEL_BSP",
        what: str = "request spans",
    ) -> None:
        self.exporter = exporter
        self.request = request
        self.what = what
        self.delay = _setting(environ, f"{prefix}_SCHEDULE_DELAY", 5000) / 1000
        self.max_batch = _setting(environ, f"{prefix}_MAX_EXPORT_BATCH_SIZE", 2048)
        self.max_queue = _setting(environ, f"{prefix}_MAX_QUEUE_SIZE", 4 * self.max_batch)
        self.max_queue = max(self.max_queue, self.max_batch)
        self.waiting: list[bytes] = []
        self.dropped = 0
        self.stopping = False
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._loop, name="mlcli-otlp-batches", daemon=True)
        self.thread.start()

    def add(self, spans: list[bytes]) -> None:
        with self.changed:
            room = self.max_queue - len(self.waiting)
            if len(spans) > room:
                if not self.dropped:
                    log.warning("The span exporter cannot keep up: %s are dropped", self.what)
                self.dropped += len(spans) - max(room, 0)
                spans = spans[: max(room, 0)]
            self.waiting += spans
            if len(self.waiting) >= self.max_batch:
                self.changed.notify()

    def _loop(self) -> None:
        while True:
            with self.changed:
                deadline = time.monotonic() + self.delay
                while not self.stopping and len(self.waiting) < self.max_batch:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self.changed.wait(left)
                batch = self.waiting[: self.max_batch]
                del self.waiting[: self.max_batch]
                done = self.stopping and not self.waiting
            if batch:
                self._export(batch)
            if done:
                return

    def _export(self, batch: list[bytes]) -> None:
        start = 0
        while start < len(batch):  # split what would make too large a request
            end, size = start, 0
            while end < len(batch) and (
                end == start or size + len(batch[end]) < self.MAX_BATCH_BYTES
            ):
                size += len(batch[end])
                end += 1
            part = batch[start:end]
            payload = otlp_encode.Encoded(self.request(part), len(part))
            try:
                self.exporter.export(payload)
            except Exception:  # the exporter logs its own failures; this is for the unexpected
                log.exception("Exporting %d %s failed", len(part), self.what)
            start = end

    def shutdown(self) -> None:
        with self.changed:
            self.stopping = True
            self.changed.notify()
        self.thread.join(timeout=30)
        self.exporter.shutdown()


class SpanMaker:
    """Request tuples -> spans for each configured exporter.

    OTLP/HTTP exporters get spans (and, when data collection is on as well, azmlinfsrv's
    model data log records) encoded straight from the tuples (Batches). Others
    (Azure Monitor) get the finished, read-only SDK span the SDK's processors take
    (ReadableSpan), built without a live span's bookkeeping and per-attribute checks,
    which cost four times more (measured: 115 vs 25 us a span). Both are sampled by the
    sampler the OTEL_TRACES_SAMPLER variables choose.
    """

    def __init__(self, environ) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        provider = TracerProvider(resource=telemetry.resource(environ), shutdown_on_exit=False)
        trace.set_tracer_provider(provider)  # the global one: Azure Monitor reads the resource
        self.resource = provider.resource
        self.sample = self._sampling(provider.sampler, SpanKind.SERVER)
        self.log_response = telemetry.response_logged(environ)
        self.common = {
            "Container Id": telemetry.container_id(environ),
            "Workspace Name": environ.get("WORKSPACE_NAME")
            or environ.get("MLCLI_COLLECT_WORKSPACE", ""),
            "Service Name": environ.get("SERVICE_NAME", ""),
            "Models": ", ".join(telemetry.model_ids(environ.get("AZUREML_MODEL_DIR"))),
        }
        self.encoder = otlp_encode.SpanEncoder(
            dict(self.resource.attributes), self.common, "mlcli.server"
        )
        self.batches: list[Batches] = []
        self.processors = []
        for exporter in telemetry.exporters(environ, "traces"):
            if _takes_encoded(exporter, "OTLPSpanExporter", "encode_spans"):
                self.batches.append(Batches(exporter, self.encoder.request, environ))
            else:
                self.processors.append(BatchSpanProcessor(exporter))
        self._readable_span, self._span_context = ReadableSpan, SpanContext
        self.scope = InstrumentationScope("mlcli.server")
        self.kind = SpanKind.SERVER
        self.error = Status(StatusCode.ERROR)
        self.unset = Status(StatusCode.UNSET)
        self.sampled = TraceFlags(TraceFlags.SAMPLED)
        self.traces = logging.getLogger("mlcli.server.model_data")
        self.traces.propagate = False
        self.log_provider = None
        self.log_batches: list[Batches] = []
        if telemetry.true(environ.get("AML_MODEL_DC_STORAGE_ENABLED")):
            self._model_data_exporters(environ)

    def _model_data_exporters(self, environ: Mapping[str, str]) -> None:
        self.log_encoder = otlp_encode.LogEncoder(
            dict(self.resource.attributes), self.common, self.traces.name
        )
        others = []
        for exporter in telemetry.exporters(environ, "logs"):
            if _takes_encoded(exporter, "OTLPLogExporter", "encode_logs"):
                self.log_batches.append(
                    Batches(
                        exporter,
                        self.log_encoder.request,
                        environ,
                        prefix="OTEL_BLRP",
                        what="model data records",
                    )
                )
            else:
                others.append(exporter)
        if others:
            from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            self.log_provider = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
            for exporter in others:
                self.log_provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
            self.traces.addHandler(LoggingHandler(logger_provider=self.log_provider))
            self.traces.setLevel(logging.INFO)

    @staticmethod
    def _sampling(sampler, kind) -> Callable[[bytes, str], bool] | None:
        """None when every span is kept (the default: a request span has no parent, so
        ParentBased asks its root, AlwaysOn); otherwise a test of a span's ids and name."""
        description = sampler.get_description()
        if description == "AlwaysOnSampler" or description.startswith(
            "ParentBased{root:AlwaysOnSampler,"
        ):
            return None

        def sample(ids: bytes, name: str) -> bool:
            trace_id = int.from_bytes(ids[:16], "big")
            return sampler.should_sample(None, trace_id, name, kind).decision.is_sampled()

        return sample

    def make_all(self, batch: list) -> None:
        """A frame's request tuples -> spans (and model data traces when collection is on)."""
        encoded, logged = [], []
        for record, ids in zip(batch, otlp_encode.random_ids(len(batch))):
            if record[10] is not None:
                if self.log_batches:
                    logged.append(self.log_encoder.record(record, ids))
                if self.log_provider is not None:
                    self.model_data(record[8], record[9], record[10], record[5])
            if self.sample is not None and not self.sample(ids, record[0]):
                continue
            if self.batches:
                encoded.append(self.encoder.span(record, ids, self.log_response))
            if self.processors:
                self.sdk_span(record, ids)
        for batches in self.batches:
            batches.add(encoded)
        if logged:
            for batches in self.log_batches:
                batches.add(logged)

    def sdk_span(self, record: tuple, ids: bytes) -> None:
        name, path, method, query, status, body, start_ns, end_ns, request_id, client_id = record[
            :10
        ]
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
        context = self._span_context(
            int.from_bytes(ids[:16], "big"),
            int.from_bytes(ids[16:], "big"),
            is_remote=False,
            trace_flags=self.sampled,
        )
        span = self._readable_span(
            name=name,
            context=context,
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
        """Export what the batches and processors still hold."""
        for batches in (*self.batches, *self.log_batches):
            batches.shutdown()
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
            "start_time": otlp_encode.start_time_text(start_ns),
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


def _takes_encoded(exporter, kind: str, encoding: str) -> bool:
    """An OTLP/HTTP exporter (kind: its class name) whose module lets Encoded batches
    through its encoding step (otlp_encode.install)."""
    module = sys.modules.get(type(exporter).__module__)
    if type(exporter).__name__ != kind or module is None:
        return False
    return otlp_encode.install(module, encoding)


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
            maker.make_all(batch)
    finally:
        maker.shutdown()


if __name__ == "__main__":
    main()
