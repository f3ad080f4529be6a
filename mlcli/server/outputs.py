"""Turn what run() returned into status, headers and body, as azmlinfsrv 1.5.1 does.

Anything that is not an HTTP response object goes through the standard library's
json.dumps with its defaults (ASCII escapes, NaN allowed), None becomes "{}", and a value
json cannot encode (bytes, numpy arrays, DataFrames...) is the caller's 500.
"""

from __future__ import annotations

import json
import re
import sys

FAILED_FALSE = (b"x-ms-run-function-failed", b"False")
JSON_HEADERS = ((b"content-type", b"application/json"), FAILED_FALSE)
HTML_TYPE = (b"content-type", b"text/html; charset=utf-8")

_dumps = json.dumps
# RFC 9110's token: what a header name may hold. A name with CR/LF in it would let a script's
# header write headers (or a body) of its own choosing; gunicorn refuses it too (a 500).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PLAIN = frozenset((dict, list, str, int, float, bool, tuple))


def json_reply(status: int, document: object, *, run_failed: bool = False) -> tuple:
    """(status, headers, body) for a JSON document, e.g. Azure's {"message": ...} errors."""
    failed = (b"x-ms-run-function-failed", b"True" if run_failed else b"False")
    headers = [(b"content-type", b"application/json"), failed]
    return status, headers, _dumps(document).encode()


def error_reply(status: int, message: str, *, run_failed: bool = False) -> tuple:
    return json_reply(status, {"message": message}, run_failed=run_failed)


def result_reply(result: object) -> tuple:
    """(status, headers, body) for run()'s return value; raises when json cannot encode it."""
    if type(result) in _PLAIN:
        return 200, list(JSON_HEADERS), _dumps(result).encode()
    if result is None:
        return 200, list(JSON_HEADERS), b"{}"
    response_class = _werkzeug_response_class()
    if response_class is not None and isinstance(result, response_class):
        return _from_response(result)
    return 200, list(JSON_HEADERS), _dumps(result).encode()


def _werkzeug_response_class():
    # AMLResponse (and flask.Response) derive from it; only look once a script imported it.
    module = sys.modules.get("werkzeug.wrappers.response")
    return getattr(module, "Response", None)


def streamed_response(result: object) -> bool:
    """Whether run() returned a response whose body is a generator (AMLResponse(gen, 200)):
    its pieces are sent as they are produced."""
    response_class = _werkzeug_response_class()
    return (
        response_class is not None
        and isinstance(result, response_class)
        and result.is_streamed
        and not isinstance(result.response, (list, tuple))
    )


def _from_response(response) -> tuple:
    status = response.status_code
    body = response.get_data()
    return status, response_headers(response), body


def response_headers(response) -> list:
    """A response object's headers as azmlinfsrv sends them (x-ms-run-function-failed True
    for a 5xx status), without Content-Length (the server sets it)."""
    status = response.status_code
    headers = []
    failed_seen = False
    for name, value in response.headers.to_wsgi_list():
        lowered = name.lower()
        if lowered == "content-length":
            continue
        if lowered == "x-ms-run-function-failed" and status >= 500:
            if failed_seen:
                continue
            failed_seen = True
            value = "True"
        value = str(value)
        if not _HEADER_NAME.fullmatch(name) or "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"the response header {name!r}: {value!r} cannot be sent")
        headers.append((name.encode("latin-1"), value.encode("latin-1")))
    if status >= 500 and not failed_seen:
        headers.append((b"x-ms-run-function-failed", b"True"))
    return headers
