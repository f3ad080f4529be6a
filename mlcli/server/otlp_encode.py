"""Request spans (and model data log records) as OTLP/protobuf bytes, encoded straight from
the front's request tuples.

Building an OpenTelemetry SDK span per request and letting the OTLP exporter turn it into
protobuf messages costs 40-50 CPU us a span (measured: the SDK's span and batch processor,
then a Python-built KeyValue per attribute); with upb's message classes alone it is still
~27 us, as each attribute is a Python-level object. Most of a span is the same from request
to request (the Azure dimensions that are fixed per process, and those fixed per route and
status), so those parts are serialized once with opentelemetry-proto's own classes and
reused as bytes; only the handful of per-request values (ids, times, "Request Id",
"Response Value"...) are written here, with protobuf's wire format (length-delimited
fields, varints, fixed64 times), which is small and frozen. The tests decode what this
writes with opentelemetry-proto.

The same holds for azmlinfsrv's "model_data_collection" log record of each scored request
when data collection is on too (LogEncoder): through the SDK's logging handler it cost
~110-150 CPU us a request.

The bytes go out through the OTLP exporter the environment configures (endpoint, headers,
TLS, compression, retries are all its own): span_export.Batches hands it an `Encoded`
batch, which the exporter's encoding step passes through unchanged (see `install`).
"""

from __future__ import annotations

import os
import struct
import time
from typing import Any, Callable, Iterable, Mapping

SERVER_KIND = 2  # Span.SpanKind.SPAN_KIND_SERVER
_TIMES = struct.Struct("<BQBQ")  # Span fields 7 and 8 (fixed64): start and end, unix ns
_LOG_TIMES = _TIMES  # LogRecord fields 1 and 11 (fixed64): time and observed time


def varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): a string, bytes or embedded message."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def string_attribute(key: str, number: int = 9) -> Callable[[str], bytes]:
    """A function writing an attributes entry {key: AnyValue(string_value)}: field 9 of a
    Span, 6 of a LogRecord."""
    tag = bytes((number << 3 | 2,))
    key_field = field(1, key.encode("utf-8"))
    overhead = len(key_field) + 4
    longest_short = 0x7F - overhead  # every length fits a one-byte varint
    # tag, length of the KeyValue; its key; tag, length of the AnyValue; tag, length: all
    # that comes before the text, for each short length (bytes % formatting: 3x slower)
    heads = [
        tag + bytes((size + overhead,)) + key_field + bytes((0x12, size + 2, 0x0A, size))
        for size in range(longest_short + 1)
    ]

    def encode(value: str) -> bytes:
        text = value.encode("utf-8", "replace")
        size = len(text)
        if size <= longest_short:
            return heads[size] + text
        any_value = b"\x0a" + varint(size) + text  # AnyValue.string_value
        key_value = key_field + b"\x12" + varint(len(any_value)) + any_value
        return tag + varint(len(key_value)) + key_value

    return encode


def any_value(value: Any):
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue

    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, Any]) -> list:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def start_time_text(start_ns: int) -> str:
    """azmlinfsrv's "start_time" dimension: UTC, microseconds, a Z."""
    seconds = start_ns // 1_000_000_000
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        + f".{start_ns // 1000 % 1_000_000:06d}Z"
    )


def duration_text(milliseconds: float) -> str:
    """Application Insights' duration text, [d.]hh:mm:ss.fff, as azmlinfsrv formats it."""
    whole = int(milliseconds)
    if whole < 1000:  # nearly every request (a format spec here cost 0.5 us a span)
        return _SUB_SECOND[whole]
    parts = []
    for multiplier in (1000, 60, 60, 24):
        parts.append(whole % multiplier)
        whole //= multiplier
    millis, seconds, minutes, hours = parts
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"
    return f"{whole}.{text}" if whole else text


_SUB_SECOND = [f"00:00:00.{millis:03d}" for millis in range(1000)]


class SpanEncoder:
    """Request tuples -> serialized OTLP Span messages, and batches of them -> an
    ExportTraceServiceRequest's bytes."""

    ROUTE_CACHE = 256  # (route, path, method, query, status) combinations kept as bytes

    def __init__(
        self, resource_attributes: Mapping[str, Any], common: Mapping[str, str], scope: str
    ) -> None:
        from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource

        resource = Resource(attributes=key_values(resource_attributes))
        self._resource = field(1, resource.SerializeToString())  # ResourceSpans.resource
        self._scope = field(1, InstrumentationScope(name=scope).SerializeToString())
        self._common = self._attributes(common)  # the same on every span of the process
        self._routes: dict[tuple, bytes] = {}
        self._request_id = string_attribute("Request Id")
        self._client_request_id = string_attribute("Client Request Id")
        self._start_time = string_attribute("start_time")
        self._duration = string_attribute("duration")
        self._response = string_attribute("Response Value")
        self._second = -1
        self._second_text = ""

    @staticmethod
    def _attributes(attributes: Mapping[str, Any]) -> bytes:
        from opentelemetry.proto.trace.v1.trace_pb2 import Span

        return Span(attributes=key_values(attributes)).SerializeToString()

    def _route(self, name: str, path: str, method: str, query: bytes, status: int) -> bytes:
        """Span name, kind, status and the dimensions fixed by route, method and status."""
        from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

        url = path + ("?" + query.decode("latin-1") if query else "")
        span = Span(
            name=name,
            kind=SERVER_KIND,
            status=Status(code=Status.STATUS_CODE_ERROR if status >= 500 else 0),
            attributes=key_values(
                {
                    "name": path,
                    "url": url,
                    "resultCode": str(status),
                    "success": status < 400,
                    "http_method": method,
                    # OpenTelemetry's names, which Azure Monitor maps to its requests table
                    "http.method": method,
                    "http.route": path,
                    "http.target": url,
                    "http.status_code": status,
                }
            ),
        )
        return span.SerializeToString()

    def span(self, record: tuple, ids: bytes, log_response: bool) -> bytes:
        """One Span message (without its field tag); ids: 16 bytes of trace id, 8 of span id."""
        name, path, method, query, status, body, start_ns, end_ns, request_id, client_id = record[
            :10
        ]
        key = (name, path, method, query, status)
        route = self._routes.get(key)
        if route is None:
            if len(self._routes) >= self.ROUTE_CACHE:
                self._routes.clear()
            route = self._routes[key] = self._route(name, path, method, query, status)
        second = start_ns // 1_000_000_000
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        parts = [
            b"\x0a\x10",
            ids[:16],
            b"\x12\x08",
            ids[16:],
            _TIMES.pack(0x39, start_ns, 0x41, end_ns),
            route,
            self._common,
            self._request_id(request_id),
            self._client_request_id(client_id),
            # microseconds, zero-padded: a 1 in front cut off (a format spec is 2x slower)
            self._start_time(
                self._second_text + str(start_ns // 1000 % 1_000_000 + 1_000_000)[1:] + "Z"
            ),
            self._duration(duration_text((end_ns - start_ns) / 1e6)),
        ]
        if log_response and body is not None:
            parts.append(self._response(body.decode("utf-8", "replace")))
        return b"".join(parts)

    def request(self, spans: Iterable[bytes]) -> bytes:
        """An ExportTraceServiceRequest holding the spans, under this process's resource."""
        return _request(self._resource, self._scope, spans)


def _request(resource: bytes, scope: bytes, items: Iterable[bytes]) -> bytes:
    """ExportTraceServiceRequest and ExportLogsServiceRequest have the same shape and field
    numbers: resource_*(1) { resource(1), scope_*(2) { scope(1), spans / log_records(2) } }."""
    parts = [scope]
    for item in items:  # each item's tag and length, then the item, copied once
        size = len(item)
        parts += (_ITEM_HEADS[size] if size < len(_ITEM_HEADS) else b"\x12" + varint(size), item)
    return field(1, resource + field(2, b"".join(parts)))


_ITEM_HEADS = [b"\x12" + varint(size) for size in range(1 << 14)]  # 2-byte lengths and less


class LogEncoder:
    """azmlinfsrv's "model_data_collection" record of a scored request (its input and
    prediction) -> a serialized OTLP LogRecord, tied to the request's span."""

    def __init__(
        self, resource_attributes: Mapping[str, Any], common: Mapping[str, str], scope: str
    ) -> None:
        from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope
        from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
        from opentelemetry.proto.resource.v1.resource_pb2 import Resource

        resource = Resource(attributes=key_values(resource_attributes))
        self._resource = field(1, resource.SerializeToString())
        self._scope = field(1, InstrumentationScope(name=scope).SerializeToString())
        self._fixed = LogRecord(
            severity_number=9,  # SEVERITY_NUMBER_INFO, as logging.INFO maps
            severity_text="INFO",
            body=AnyValue(string_value="model_data_collection"),
            attributes=key_values(common),
        ).SerializeToString()
        self._request_id = string_attribute("Request Id", 6)
        self._client_request_id = string_attribute("Client Request Id", 6)
        self._input = string_attribute("Input", 6)
        self._prediction = string_attribute("Prediction", 6)

    def record(self, record: tuple, ids: bytes) -> bytes:
        """One LogRecord message (without its field tag); ids: the request span's."""
        body, end_ns, request_id, client_id, given = (record[5], record[7], *record[8:11])
        return b"".join(
            (
                _LOG_TIMES.pack(0x09, end_ns, 0x59, time.time_ns()),
                b"\x4a\x10",  # trace_id (9), then span_id (10)
                ids[:16],
                b"\x52\x08",
                ids[16:],
                self._fixed,
                self._request_id(request_id),
                self._client_request_id(client_id),
                self._input(given.decode("utf-8", "replace")),
                self._prediction(body.decode("utf-8", "replace") if body else ""),
            )
        )

    def request(self, records: Iterable[bytes]) -> bytes:
        """An ExportLogsServiceRequest holding the records, under this process's resource."""
        return _request(self._resource, self._scope, records)


class Encoded:
    """A batch already encoded as an OTLP export request. The OTLP exporter calls
    encode_spans(batch).SerializeToString() (encode_logs for logs): the hook `install` puts
    in its module returns the batch itself, so these methods give the bytes. len() is the
    item count (the exporter's own metrics)."""

    def __init__(self, payload: bytes, count: int) -> None:
        self.payload = payload
        self.count = count

    def __len__(self) -> int:
        return self.count

    def SerializeToString(self) -> bytes:  # protobuf's name
        return self.payload

    SerializePartialToString = SerializeToString


def install(exporter_module, name: str) -> bool:
    """Let an OTLP/HTTP exporter module send Encoded batches: its encoding step (the
    module's `encode_spans` or `encode_logs`, the names its export() calls since 1.15)
    passes them through and encodes SDK spans and records as before. False when the module
    has no such step (a future version): the caller then uses the SDK's objects."""
    original = getattr(exporter_module, name, None)
    if original is None or not callable(original):
        return False
    if getattr(original, "passes_encoded", False):
        return True

    def encode(items):
        if isinstance(items, Encoded):
            return items
        return original(items)

    encode.passes_encoded = True  # type: ignore[attr-defined]
    setattr(exporter_module, name, encode)
    return True


def random_ids(count: int) -> Iterable[bytes]:
    """24 random bytes per span (trace id and span id), one getrandom(2) per batch."""
    pool = os.urandom(24 * count)
    return (pool[i : i + 24] for i in range(0, 24 * count, 24))
