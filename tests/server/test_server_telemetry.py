"""Telemetry: request spans with azmlinfsrv's Application Insights dimensions and the script's
log lines, sent over OTLP/HTTP to a real receiver (decoded with opentelemetry-proto) and by
Azure Monitor's exporter to a local ingestion endpoint; nothing of OpenTelemetry when off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PROJECT
from otlp_receiver import Receiver, attributes

FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100"}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def test_otlp_gets_a_span_per_request_with_azures_dimensions(start_mlcli, receiver):
    server = start_mlcli(
        "prints_and_logs.py",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "SERVICE_NAME": "svc",
             "WORKSPACE_NAME": "ws1", **FAST_EXPORT},
    )  # fmt: skip

    reply = server.request(
        "POST", "/score?x=1", b'{"a": 1}', {"Content-Type": "application/json",
                                            "x-ms-client-request-id": "client-7"}
    )  # fmt: skip

    assert reply.status == 200
    request_id = reply.header("x-request-id")
    [(resource, span)] = receiver.wait_for(
        lambda: [s for s in receiver.spans() if attributes(s[1]).get("Request Id") == request_id]
    )
    values = attributes(span)
    assert span.name == "/score"
    assert span.kind == span.SPAN_KIND_SERVER
    assert values["Client Request Id"] == "client-7"
    assert values["Service Name"] == "svc"
    assert values["Workspace Name"] == "ws1"
    assert values["Container Id"]
    assert values["resultCode"] == "200"
    assert values["success"] is True
    assert values["http_method"] == "POST"
    assert values["url"] == "/score?x=1"
    assert values["Response Value"] == reply.body.decode()
    assert span.end_time_unix_nano > span.start_time_unix_nano
    assert attributes(resource)["service.name"] == "svc"


def test_otlp_gets_the_scripts_prints_as_log_records_of_their_request(start_mlcli, receiver):
    server = start_mlcli(
        "prints_and_logs.py", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **FAST_EXPORT}
    )

    reply = server.request("POST", "/score", b"12345", {"Content-Type": "text/plain"})

    request_id = reply.header("x-request-id")
    lines = receiver.wait_for(
        lambda: [r for r in receiver.log_records() if attributes(r).get("Request Id") == request_id]
    )
    bodies = {record.body.string_value for record in lines}
    assert "run got 5 characters" in bodies
    assert "a warning on stderr" in bodies
    init_lines = {r.body.string_value for r in receiver.log_records()}
    assert "init: loading the model" in init_lines


def test_errors_are_spans_with_an_error_status(start_mlcli, receiver):
    server = start_mlcli(
        "run_raises.py", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **FAST_EXPORT}
    )

    reply = server.request("POST", "/score", b"{}", {"Content-Type": "application/json"})

    assert reply.status == 500
    [(_, span)] = receiver.wait_for(
        lambda: [s for s in receiver.spans() if attributes(s[1]).get("resultCode") == "500"]
    )
    assert attributes(span)["success"] is False
    assert span.status.code == span.status.STATUS_CODE_ERROR


def test_health_probes_send_no_span(start_mlcli, receiver):
    server = start_mlcli(
        "echo.py", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, **FAST_EXPORT}
    )
    for _ in range(5):
        server.request("GET", "/")
    server.request("GET", "/swagger.json")

    names = receiver.wait_for(lambda: [s.name for _, s in receiver.spans()])
    time.sleep(0.5)
    assert "/" not in {s.name for _, s in receiver.spans()}
    assert "/swagger.json" in names


def test_azure_monitor_gets_request_envelopes_with_the_custom_dimensions(start_mlcli, receiver):
    key = "00000000-0000-0000-0000-000000000001"
    connection = f"InstrumentationKey={key};IngestionEndpoint={receiver.url}/"
    server = start_mlcli(
        "echo.py",
        env={"AML_APP_INSIGHTS_ENABLED": "true", "APPLICATIONINSIGHTS_CONNECTION_STRING":
             connection, "SERVICE_NAME": "svc", **FAST_EXPORT},
    )  # fmt: skip

    reply = server.request("POST", "/score", b'{"a": 1}', {"Content-Type": "application/json"})

    request_id = reply.header("x-request-id")
    requests = receiver.wait_for(
        lambda: [
            e
            for e in receiver.envelopes()
            if e["data"]["baseType"] == "RequestData"
            and e["data"]["baseData"]["properties"].get("Request Id") == request_id
        ]
    )
    envelope = requests[0]
    assert envelope["iKey"] == key
    data = envelope["data"]["baseData"]
    assert data["responseCode"] == "200"
    assert data["success"] is True
    assert data["properties"]["Service Name"] == "svc"
    assert data["properties"]["Response Value"] == reply.body.decode()
    # only the ingestion endpoint it was given, nothing else (no statsbeat to Microsoft)
    assert {path for path, _, _ in receiver.posts} <= {"/v2.1/track"}


def test_app_insights_without_a_connection_string_warns_and_stays_off(start_mlcli):
    server = start_mlcli("echo.py", env={"AML_APP_INSIGHTS_ENABLED": "true"})

    assert (
        server.request("POST", "/score", b"{}", {"Content-Type": "application/json"}).status == 200
    )
    warnings = [r["message"] for r in server.log_records() if r.get("level") == "WARNING"]
    assert any("no connection string" in message for message in warnings)


def test_telemetry_off_imports_nothing_of_opentelemetry() -> None:
    code = (
        "import sys, asyncio\n"
        "from mlcli.server import serve, worker, telemetry\n"
        "assert telemetry.start_front({}, asyncio.new_event_loop()) is None\n"
        "telemetry.start_worker({})\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'azure'))))\n"
    )
    output = subprocess.check_output([sys.executable, "-c", code], text=True, cwd=PROJECT)

    assert output.strip() == "[]"


def test_spans_of_the_last_requests_are_sent_when_the_server_stops(start_mlcli, receiver):
    # the SDK's usual 5 s batch delay: only the shutdown can have sent it in time
    server = start_mlcli("echo.py", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    reply = server.request("POST", "/score", b"{}", {"Content-Type": "application/json"})

    assert server.stop() == 0

    request_id = reply.header("x-request-id")
    assert [s for _, s in receiver.spans() if attributes(s).get("Request Id") == request_id]


def span_exporter_pid(server_pid: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            if parent == server_pid and b"mlcli.server.span_export" in command:
                return int(entry.name)
    raise AssertionError("no span exporter process")


def test_a_dead_span_exporter_costs_spans_never_requests(start_mlcli, receiver):
    server = start_mlcli("echo.py", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
    os.kill(span_exporter_pid(server.process.pid), signal.SIGKILL)

    replies = [
        server.request("POST", "/score", b"{}", {"Content-Type": "application/json"})
        for _ in range(20)
    ]
    time.sleep(0.3)
    replies += [server.request("POST", "/score", b"{}", {"Content-Type": "application/json"})]

    assert {r.status for r in replies} == {200}
    metrics = server.request("GET", "/metrics").body.decode()
    dropped = [line for line in metrics.splitlines() if line.startswith("mlcli_telemetry_dropped")]
    assert dropped
    assert float(dropped[0].split()[-1]) >= 1
    assert server.stop() == 0


def test_with_collection_on_each_scored_request_is_also_a_model_data_trace(start_mlcli, receiver):
    server = start_mlcli(
        "echo.py",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "AML_MODEL_DC_STORAGE_ENABLED": "true",
             "SERVICE_NAME": "svc", **FAST_EXPORT},
    )  # fmt: skip

    reply = server.request("POST", "/score", b'{"a": 7}', {"Content-Type": "application/json"})

    request_id = reply.header("x-request-id")
    [record] = receiver.wait_for(
        lambda: [
            r
            for r in receiver.log_records()
            if r.body.string_value == "model_data_collection"
            and attributes(r).get("Request Id") == request_id
        ]
    )
    values = attributes(record)
    assert values["Input"] == '{"a": 7}'
    assert values["Prediction"] == reply.body.decode()
    assert values["Service Name"] == "svc"
