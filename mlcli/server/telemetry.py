"""Request telemetry through OpenTelemetry, as azmlinfsrv 1.5.1 sends it to Application Insights.

Off unless configured, and then nothing of OpenTelemetry is imported. On when
  - OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT / ..._LOGS_ENDPOINT) is set: OTLP/HTTP,
    configured by the standard OTEL_* variables (headers, timeouts, OTEL_TRACES_SAMPLER...);
  - AML_APP_INSIGHTS_ENABLED is true (deploymentConfig appInsightsEnabled) and a connection
    string is given (APPLICATIONINSIGHTS_CONNECTION_STRING, or azmlinfsrv's
    AML_APP_INSIGHTS_KEY): Azure Monitor's exporter, so Application Insights dashboards keep
    working.

The front process queues one tuple per request (not for GET /, as azmlinfsrv) and a child
process (span_export.py) turns them into SERVER spans with azmlinfsrv's custom dimensions
("Container Id", "Request Id", "Client Request Id", "Workspace Name", "Service Name",
"Response Value"...) plus "Models", so the SDK's costs stay off the request path. Each worker
sends the entry script's prints and the server's own log records as log records, tagged with
the request they belong to.
"""

from __future__ import annotations

import logging
import marshal
import os
import socket
import time
from pathlib import Path
from typing import Mapping

log = logging.getLogger("mlcli.server.telemetry")

FLUSH_S = 0.05
OTLP_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


def true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def connection_string(environ: Mapping[str, str]) -> str | None:
    """Application Insights' connection string when appInsightsEnabled; None otherwise."""
    if not true(environ.get("AML_APP_INSIGHTS_ENABLED")):
        return None
    text = environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if text:
        return text
    key = environ.get("AML_APP_INSIGHTS_KEY", "").strip()
    return f"InstrumentationKey={key}" if key else None


def response_logged(environ: Mapping[str, str]) -> bool:
    """azmlinfsrv's APP_INSIGHTS_LOG_RESPONSE_ENABLED (default true): the "Response Value"."""
    return true(environ.get("APP_INSIGHTS_LOG_RESPONSE_ENABLED", "true"))


def otlp_configured(environ: Mapping[str, str]) -> bool:
    return any(environ.get(name, "").strip() for name in OTLP_VARIABLES)


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return otlp_configured(environ) or connection_string(environ) is not None


def model_ids(model_dir: str | None) -> list[str]:
    """ "name:version" of every deployed model, read from the folders as azmlinfsrv does."""
    folder = Path(model_dir) if model_dir else None
    if folder is None or not folder.is_dir():
        return []
    if folder.name.isdigit():  # one model: azureml-models/<name>/<version>
        return [f"{folder.parent.name}:{folder.name}"]
    found = []
    for model in sorted(p for p in folder.iterdir() if p.is_dir()):
        found += [f"{model.name}:{v.name}" for v in sorted(model.iterdir()) if v.name.isdigit()]
    return found


def resource(environ: Mapping[str, str]):
    from opentelemetry.sdk.resources import Resource

    return Resource.create(
        {
            "service.name": environ.get("SERVICE_NAME") or "mlcli-scoring-server",
            "service.instance.id": container_id(environ),
        }
    )


def container_id(environ: Mapping[str, str]) -> str:
    return environ.get("HOSTNAME") or socket.gethostname()


def exporters(environ: Mapping[str, str], signal: str) -> list:
    """The span ("traces") or log ("logs") exporters the environment asks for."""
    exporters = []
    if otlp_configured(environ):
        if signal == "traces":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

            exporters.append(OTLPLogExporter())
    connection = connection_string(environ)
    if connection:
        # The exporter also reports on itself ("statsbeat") to Microsoft's own endpoints:
        # a service sends its telemetry where it is told to, nowhere else.
        for switch in (
            "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL",
            "APPLICATIONINSIGHTS_SDKSTATS_DISABLED",
        ):
            os.environ.setdefault(switch, "true")
        from azure.monitor.opentelemetry.exporter import (
            AzureMonitorLogExporter,
            AzureMonitorTraceExporter,
        )

        kind = AzureMonitorTraceExporter if signal == "traces" else AzureMonitorLogExporter
        # no local retry storage: a service must not fill its disk when the endpoint is down
        exporters.append(kind(connection_string=connection, disable_offline_storage=True))
    return exporters


class RequestTelemetry:
    """The front's side of request spans: a tuple per request, sent in batches through a pipe
    to a child process (span_export.py) that makes the spans and exports them. The front,
    which every request goes through, pays for a tuple and its share of a marshal.dumps; the
    SDK's span objects and the exporters' encoding run in the child. The pipe is
    non-blocking: when the child falls behind, batches beyond MAX_BACKLOG are dropped and
    counted (mlcli_telemetry_dropped_spans), never waited for."""

    MAX_BACKLOG = 8 * 1024 * 1024  # bytes written but not yet taken by the child

    def __init__(self, environ: Mapping[str, str], loop) -> None:
        import subprocess
        import sys

        self.loop = loop
        self.pending: list[tuple] = []
        self.scheduled = False
        self.backlog = bytearray()
        self.backlog_spans = 0  # spans in the backlog (counted as dropped if the child dies)
        self.dropped = 0
        # azmlinfsrv's "model_data_collection" trace (Input, Prediction) needs both bodies
        self.model_data = true(environ.get("AML_MODEL_DC_STORAGE_ENABLED"))
        self.log_response = self.model_data or response_logged(environ)
        self.child = subprocess.Popen(
            [sys.executable, "-m", "mlcli.server.span_export"],
            stdin=subprocess.PIPE,
            env=dict(environ),
        )
        self.fd = self.child.stdin.fileno()
        os.set_blocking(self.fd, False)

    def request(self, request, route: str, status: int, body: bytes, elapsed: float, ids) -> None:
        """Called once per answered request (ScoringApp.finish)."""
        path = request.path
        if path == "/":
            return  # azmlinfsrv leaves health probes out
        if self.fd < 0:
            self.dropped += 1
            return
        end_ns = time.time_ns()
        self.pending.append(
            (
                route if route != "other" else path,
                path,
                request.method,
                request.query,
                status,
                bytes(body) if self.log_response else None,
                end_ns - int(elapsed * 1e9),
                end_ns,
                (ids.request_id or ids.generated) if ids is not None else "",
                ids.client_request_id if ids is not None else "",
                bytes(request.body) if self.model_data and status == 200 else None,
            )
        )
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if self.pending:
            pending, self.pending = self.pending, []
            frame = marshal.dumps(pending)
            if self.fd < 0 or len(self.backlog) + len(frame) > self.MAX_BACKLOG:
                self.dropped += len(pending)
            else:
                self.backlog += len(frame).to_bytes(4, "big") + frame
                self.backlog_spans += len(pending)
        self._drain()
        if self.backlog and not self.scheduled:
            self.scheduled = True
            self.loop.call_later(FLUSH_S, self.flush)

    def _drain(self) -> None:
        if not self.backlog or self.fd < 0:
            return
        try:
            written = os.write(self.fd, self.backlog)
        except BlockingIOError:
            return
        except OSError as exc:  # the child is gone: say so once; later spans count as dropped
            log.error("The span exporter process stopped (%s); request spans are dropped", exc)
            self.fd = -1
            self.backlog.clear()
            self.dropped += self.backlog_spans
            return
        del self.backlog[:written]
        if not self.backlog:
            self.backlog_spans = 0

    def collect(self):
        """prometheus-client collector: spans dropped because the exporter fell behind."""
        from prometheus_client.core import CounterMetricFamily

        yield CounterMetricFamily(
            "mlcli_telemetry_dropped_spans",
            "Request spans dropped because the span exporter process could not keep up.",
            value=self.dropped,
        )

    def shutdown(self, timeout: float = 15) -> None:
        """Hand over what is left, then let the child export it and exit."""
        self.flush()
        if self.fd >= 0:
            os.set_blocking(self.fd, True)
            try:
                self.child.stdin.write(bytes(self.backlog))
                self.child.stdin.close()
            except OSError:
                pass
        try:
            self.child.wait(timeout)
        except Exception:
            self.child.kill()


def start_front(environ: Mapping[str, str], loop, registry=None) -> RequestTelemetry | None:
    """In the front process: request spans, or None (and no OpenTelemetry import) when off."""
    if not enabled(environ):
        if true(environ.get("AML_APP_INSIGHTS_ENABLED")):
            log.warning(
                "appInsightsEnabled is true but no connection string was given: set "
                "APPLICATIONINSIGHTS_CONNECTION_STRING (or OTEL_EXPORTER_OTLP_ENDPOINT) for the "
                "service. Telemetry is off."
            )
        return None
    telemetry = RequestTelemetry(environ, loop)
    log.info("Telemetry on: request spans go to %s", ", ".join(_destinations(environ)))
    if registry is not None:
        registry.register(telemetry)
    return telemetry


def _destinations(environ: Mapping[str, str]) -> list[str]:
    found = []
    if otlp_configured(environ):
        found.append("OTLP/HTTP")
    if connection_string(environ):
        found.append("Azure Monitor (Application Insights)")
    return found


class _Forwarder(logging.Handler):
    """Hands a copy of each record to OpenTelemetry's handler, tagged with the request the
    worker is scoring (Azure's "Request Id") and with the JSON log's extra fields flattened
    (the JSON handler still gets the record as it was)."""

    def __init__(self, target: logging.Handler) -> None:
        super().__init__(level=logging.INFO)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        from mlcli.server import collect

        copy = logging.makeLogRecord(record.__dict__)
        fields = copy.__dict__.pop("fields", None) or {}
        for key, value in fields.items():
            plain = isinstance(value, (str, int, float, bool))
            copy.__dict__.setdefault(key, value if plain else str(value))
        if collect.current_request_id:
            copy.__dict__.setdefault("Request Id", collect.current_request_id)
        self.target.emit(copy)


def start_worker(environ: Mapping[str, str]) -> None:
    """In a worker: the script's prints and the server's log records also go out as
    OpenTelemetry log records. Nothing happens (and nothing is imported) when off."""
    if not enabled(environ):
        return
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from mlcli.server import logs

    provider = LoggerProvider(resource=resource(environ))
    for exporter in exporters(environ, "logs"):
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    forwarder = _Forwarder(LoggingHandler(level=logging.INFO, logger_provider=provider))
    logging.getLogger("mlcli.server").addHandler(forwarder)
    prints = logging.getLogger("mlcli.script")  # not "score": a script may log under that name
    prints.propagate = False
    prints.setLevel(logging.INFO)
    prints.addHandler(forwarder)

    def forward(stream: str, line: str) -> None:
        level = logging.INFO if stream == "stdout" else logging.WARNING
        prints.log(level, line, extra={"stream": stream})

    logs.LineStream.forward = staticmethod(forward)
