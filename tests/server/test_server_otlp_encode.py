"""Request spans encoded straight to OTLP/protobuf (mlcli/server/otlp_encode.py): what it writes
decodes with opentelemetry-proto into the spans the SDK route would have made, and the span
exporter process uses it with the OTLP exporter installed here."""

from __future__ import annotations

import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from mlcli.server import otlp_encode, span_export

COMMON = {"Container Id": "c1", "Workspace Name": "ws", "Service Name": "svc", "Models": "m:1"}


def record(**changes) -> tuple:
    start = time.time_ns()
    values = {
        "name": "/score",
        "path": "/score",
        "method": "POST",
        "query": b"",
        "status": 200,
        "body": b'{"label": "POSITIVE"}',
        "start_ns": start,
        "end_ns": start + 1_500_000,
        "request_id": "5f1c3a2e-1111-4222-8333-000000000001",
        "client_id": "client-7",
        "given": None,
        **changes,
    }
    return tuple(values.values())


def decoded(records: list[tuple], log_response: bool = True):
    encoder = otlp_encode.SpanEncoder({"service.name": "svc", "n": 3}, COMMON, "mlcli.server")
    spans = [
        encoder.span(r, ids, log_response)
        for r, ids in zip(records, otlp_encode.random_ids(len(records)), strict=True)
    ]
    request = ExportTraceServiceRequest.FromString(encoder.request(spans))
    [resource_spans] = request.resource_spans
    [scope_spans] = resource_spans.scope_spans
    return resource_spans.resource, scope_spans, list(scope_spans.spans)


def values(span: Span) -> dict:
    found = {}
    for item in span.attributes:
        kind = item.value.WhichOneof("value")
        found[item.key] = getattr(item.value, kind)
    return found


def test_a_request_span_decodes_with_every_azure_dimension():
    given = record(query=b"x=1")

    resource, scope_spans, [span] = decoded([given])

    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "svc"
    assert {a.key: a.value.int_value for a in resource.attributes}["n"] == 3
    assert scope_spans.scope.name == "mlcli.server"
    assert span.name == "/score"
    assert span.kind == Span.SPAN_KIND_SERVER
    assert len(span.trace_id) == 16
    assert len(span.span_id) == 8
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (given[6], given[7])
    assert span.status.code == Status.STATUS_CODE_UNSET
    assert values(span) == {
        **COMMON,
        "Request Id": "5f1c3a2e-1111-4222-8333-000000000001",
        "Client Request Id": "client-7",
        "name": "/score",
        "url": "/score?x=1",
        "start_time": otlp_encode.start_time_text(given[6]),
        "duration": "00:00:00.001",
        "resultCode": "200",
        "success": True,
        "http_method": "POST",
        "http.method": "POST",
        "http.route": "/score",
        "http.target": "/score?x=1",
        "http.status_code": 200,
        "Response Value": '{"label": "POSITIVE"}',
    }


def test_long_and_non_ascii_values_and_errors_decode_too():
    answer = ('{"text": "' + "é" * 300 + '"}').encode()
    failed = record(status=503, body=answer, end_ns=time.time_ns() + 90_061_001_000_000)

    _, _, [ok, error] = decoded([record(), failed])

    assert values(error)["Response Value"] == answer.decode()
    assert values(error)["success"] is False
    assert values(error)["resultCode"] == "503"
    assert values(error)["duration"].startswith("1.01:01:")  # over a day: [d.]hh:mm:ss.fff
    assert error.status.code == Status.STATUS_CODE_ERROR
    assert ok.status.code == Status.STATUS_CODE_UNSET
    assert ok.trace_id != error.trace_id


def test_without_response_logging_there_is_no_response_value():
    _, _, [span] = decoded([record()], log_response=False)

    assert "Response Value" not in values(span)


def test_the_span_exporter_process_encodes_for_the_installed_otlp_exporter(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    maker = span_export.SpanMaker(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "SERVICE_NAME": "svc"}
    )
    try:
        # the fast route, not SDK spans: an exporter upgrade that breaks it fails here
        assert len(maker.batches) == 1
        assert maker.processors == []
        assert maker.sample is None  # the default sampler keeps every span: no per-span test
    finally:
        maker.batches[0].exporter.export = lambda batch: None
        maker.shutdown()


def test_a_sampler_from_the_environment_is_honoured(monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    maker = span_export.SpanMaker({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    sent = []
    maker.batches[0].exporter.export = sent.append
    maker.make_all([record() for _ in range(10)])
    maker.shutdown()

    assert sent == []


def test_a_model_data_record_decodes_with_the_input_prediction_and_the_requests_span():
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    encoder = otlp_encode.LogEncoder({"service.name": "svc"}, COMMON, "mlcli.server.model_data")
    [ids] = otlp_encode.random_ids(1)
    given = record(given=b'{"text": "great"}')

    request = ExportLogsServiceRequest.FromString(encoder.request([encoder.record(given, ids)]))

    [resource_logs] = request.resource_logs
    [scope_logs] = resource_logs.scope_logs
    [log_record] = scope_logs.log_records
    assert scope_logs.scope.name == "mlcli.server.model_data"
    assert log_record.body.string_value == "model_data_collection"
    assert log_record.severity_text == "INFO"
    assert log_record.time_unix_nano == given[7]
    assert abs(log_record.observed_time_unix_nano - time.time_ns()) < 60e9
    assert (log_record.trace_id, log_record.span_id) == (ids[:16], ids[16:])
    assert values(log_record) == {
        **COMMON,
        "Request Id": given[8],
        "Client Request Id": "client-7",
        "Input": '{"text": "great"}',
        "Prediction": '{"label": "POSITIVE"}',
    }


def test_with_collection_on_model_data_records_take_the_encoded_route_too(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    maker = span_export.SpanMaker(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "AML_MODEL_DC_STORAGE_ENABLED": "true",
        }
    )
    sent = []
    for batches in (*maker.batches, *maker.log_batches):
        batches.exporter.export = sent.append
    maker.make_all([record(given=b"{}") for _ in range(3)])
    maker.shutdown()

    assert len(maker.log_batches) == 1
    assert maker.log_provider is None
    assert sorted(len(batch) for batch in sent) == [3, 3]  # 3 spans, 3 records
