"""Request telemetry through OpenTelemetry, as azmlinfsrv 1.5.1 sends it to Application Insights.

Off unless configured, and then nothing of OpenTelemetry is imported. On when
  - OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT / ..._LOGS_ENDPOINT) is set: OTLP/HTTP,
    configured by the standard OTEL_* variables (headers, timeouts, OTEL_TRACES_SAMPLER...);
  - AML_APP_INSIGHTS_ENABLED is true (deploymentConfig appInsightsEnabled) and a connection
    string is given (APPLICATIONINSIGHTS_CONNECTION_STRING, or azmlinfsrv's
    AML_APP_INSIGHTS_KEY): Azure Monitor's exporter, so Application Insights dashboards keep
    working.

The front process sends one SERVER span per request (not for GET /, as azmlinfsrv) with
azmlinfsrv's custom dimensions ("Container Id", "Request Id", "Client Request Id", "Workspace
Name", "Service Name", "Response Value"...) plus "Models"; each worker sends the entry
script's prints and the server's own log records as log records, tagged with the request
they belong to. Spans are made from plain tuples every FLUSH_S on the event loop, so a request
pays for appending one tuple.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Mapping

log = logging.getLogger("mlcli.server.telemetry")

FLUSH_S = 0.05
OTLP_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
)


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


def connection_string(environ: Mapping[str, str]) -> str | None:
    """Application Insights' connection string when appInsightsEnabled; None otherwise."""
    if not _true(environ.get("AML_APP_INSIGHTS_ENABLED")):
        return None
    text = environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if text:
        return text
    key = environ.get("AML_APP_INSIGHTS_KEY", "").strip()
    return f"InstrumentationKey={key}" if key else None


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


def _resource(environ: Mapping[str, str]):
    from opentelemetry.sdk.resources import Resource

    return Resource.create(
        {
            "service.name": environ.get("SERVICE_NAME") or "mlcli-scoring-server",
            "service.instance.id": _container_id(environ),
        }
    )


def _container_id(environ: Mapping[str, str]) -> str:
    return environ.get("HOSTNAME") or socket.gethostname()


def _exporters(environ: Mapping[str, str], signal: str) -> list:
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
    """The front's request spans: finished requests queue as tuples, spans are made in
    batches on the loop and exported by the SDK's background thread."""

    def __init__(self, environ: Mapping[str, str], loop) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind

        self.provider = TracerProvider(resource=_resource(environ))
        for exporter in _exporters(environ, "traces"):
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("mlcli.server")
        self.kind = SpanKind.SERVER
        self.loop = loop
        self.pending: list[tuple] = []
        self.scheduled = False
        self.log_response = _true(environ.get("APP_INSIGHTS_LOG_RESPONSE_ENABLED", "true"))
        self.common = {
            "Container Id": _container_id(environ),
            "Workspace Name": environ.get("WORKSPACE_NAME")
            or environ.get("MLCLI_COLLECT_WORKSPACE", ""),
            "Service Name": environ.get("SERVICE_NAME", ""),
            "Models": ", ".join(model_ids(environ.get("AZUREML_MODEL_DIR"))),
        }

    def request(self, request, route: str, status: int, body: bytes, elapsed: float, ids) -> None:
        """Called once per answered request (ScoringApp.finish)."""
        if request.path == "/":
            return  # azmlinfsrv leaves health probes out
        end_ns = time.time_ns()
        self.pending.append(
            (request, route, status, body, end_ns - int(elapsed * 1e9), end_ns, ids)
        )
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_later(FLUSH_S, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        pending, self.pending = self.pending, []
        for request, route, status, body, start_ns, end_ns, ids in pending:
            span = self.tracer.start_span(
                route if route != "other" else request.path,
                kind=self.kind,
                start_time=start_ns,
                attributes=self._attributes(request, status, body, start_ns, end_ns, ids),
            )
            if status >= 500:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=end_ns)

    def _attributes(self, request, status, body, start_ns, end_ns, ids) -> dict[str, Any]:
        query = request.query.decode("latin-1") if request.query else ""
        url = request.path + ("?" + query if query else "")
        duration_ms = (end_ns - start_ns) / 1e6
        attributes: dict[str, Any] = {
            **self.common,
            "Request Id": (ids.request_id or ids.generated) if ids is not None else "",
            "Client Request Id": ids.client_request_id if ids is not None else "",
            "name": request.path,
            "url": url,
            "start_time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start_ns / 1e9))
            + f".{start_ns // 1000 % 1_000_000:06d}Z",
            "duration": _duration(duration_ms),
            "resultCode": str(status),
            "success": status < 400,
            "http_method": request.method,
            # OpenTelemetry's names, which Azure Monitor's exporter maps to its requests table
            "http.method": request.method,
            "http.route": request.path,
            "http.target": url,
            "http.status_code": status,
        }
        if self.log_response:
            attributes["Response Value"] = body.decode("utf-8", "replace") if body else ""
        return attributes

    def shutdown(self) -> None:
        self.flush()
        self.provider.shutdown()


def _duration(milliseconds: float) -> str:
    """Application Insights' duration text, d.hh:mm:ss.fff, as azmlinfsrv formats it."""
    whole = int(milliseconds)
    parts = []
    for multiplier in (1000, 60, 60, 24):
        parts.append(whole % multiplier)
        whole //= multiplier
    milliseconds_part, seconds, minutes, hours = parts
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}.{milliseconds_part:03d}"
    return f"{whole}.{text}" if whole else text


def start_front(environ: Mapping[str, str], loop) -> RequestTelemetry | None:
    """In the front process: request spans, or None (and no OpenTelemetry import) when off."""
    if not enabled(environ):
        if _true(environ.get("AML_APP_INSIGHTS_ENABLED")):
            log.warning(
                "appInsightsEnabled is true but no connection string was given: set "
                "APPLICATIONINSIGHTS_CONNECTION_STRING (or OTEL_EXPORTER_OTLP_ENDPOINT) for the "
                "service. Telemetry is off."
            )
        return None
    telemetry = RequestTelemetry(environ, loop)
    log.info("Telemetry on: request spans go to %s", ", ".join(_destinations(environ)))
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

    provider = LoggerProvider(resource=_resource(environ))
    for exporter in _exporters(environ, "logs"):
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
