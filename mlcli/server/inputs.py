"""Turn an HTTP request into run()'s keyword arguments, with azmlinfsrv's rules and errors."""

from __future__ import annotations

import codecs
import inspect
import io
import json
import sys
from typing import Any
from urllib.parse import parse_qsl

from mlcli.server.entry import PLAIN, RAW, EntryScript


class BadInput(Exception):
    """400: the body cannot be what run() expects."""


class UnsupportedInput(Exception):
    """415: the content type cannot be what run() expects."""


class UnsupportedMethod(Exception):
    """Not GET or POST: OPTIONS is answered 200, anything else 405."""


# werkzeug (Flask's request) consumes these bodies as a form, so Flask's request.data is empty.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _quote_undecodable(error: UnicodeDecodeError) -> tuple[str, int]:
    # werkzeug's rule for query strings: bytes that are not UTF-8 stay percent-encoded (%FF)
    bad = error.object[error.start : error.end]
    return "".join(f"%{byte:02X}" for byte in bad), error.end


codecs.register_error("mlcli.url_quote", _quote_undecodable)


def query_parameters(query: bytes) -> dict:
    """/score?a=1&b=x&b=y -> {"a": 1, "b": ["x", "y"]}: values parsed as JSON when they are."""
    grouped: dict[str, list] = {}
    text = query.decode("latin-1")
    for key, value in parse_qsl(text, keep_blank_values=True, errors="mlcli.url_quote"):
        grouped.setdefault(key, []).append(_json_or_text(value))
    return {key: values[0] if len(values) == 1 else values for key, values in grouped.items()}


def mimetype(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def plain_body(content_type: str | None, body: bytes) -> str:
    """The POST body as the str an undecorated run(data) gets."""
    if body and mimetype(content_type) in FORM_TYPES:
        return ""
    try:
        return str(body, "utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"Input cannot be decoded as UTF-8: {exc}") from None


def is_json(content_type: str | None) -> bool:
    kind = mimetype(content_type)
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def schema_parameters(script: EntryScript, method: str, query: bytes, content_type, body) -> dict:
    """The named parameters of an @input_schema run(), taken from a JSON object body."""
    if method == "GET":
        source = query_parameters(query)
    else:
        if not is_json(content_type):
            raise UnsupportedInput("Expects Content-Type to be application/json")
        try:
            source = json.loads(body)
        except json.JSONDecodeError as exc:
            if body:
                raise BadInput(f"POST body could not be decoded as JSON: {exc}") from None
            raise BadInput("POST body is empty. Expecting a JSON dictionary.") from None
        if not isinstance(source, dict):
            raise BadInput("POST body should be a JSON dictionary.")
    params = {}
    for name, default in zip(script.input_names, script.input_defaults):
        value = source.get(name, default)
        if value is inspect.Parameter.empty:
            raise BadInput(f"A value is not provided for the {name!r} parameter.")
        params[name] = value
    return params


def run_arguments(script: EntryScript, request: tuple) -> dict:
    """run()'s keyword arguments for one request (see wire.py for the request tuple)."""
    _, _, method, path, query, content_type, headers, body, extra = request
    if script.mode == RAW:
        return {script.input_names[0]: raw_request(method, path, query, headers, body, extra)}
    if method == "POST":
        if script.mode == PLAIN:
            return {script.input_names[0]: plain_body(content_type, body)}
        return schema_parameters(script, method, query, content_type, body)
    if method == "GET":
        if script.mode == PLAIN:
            return {script.input_names[0]: json.dumps(query_parameters(query))}
        return schema_parameters(script, method, query, content_type, body)
    raise UnsupportedMethod(method)


def header_dict(headers: list) -> dict:
    """Request headers as Flask's dict(request.headers) shows them: 'X-Ms-Client-Request-Id'."""
    merged: dict[str, str] = {}
    for name, value in headers:
        if b"_" in name:  # gunicorn drops headers with underscores; so does the WSGI environ
            continue
        key = name.decode("latin-1").title()
        text = value.decode("latin-1")
        merged[key] = f"{merged[key]},{text}" if key in merged else text
    return merged


def wsgi_environ(method: str, path: str, query: bytes, headers: list, body: bytes, extra) -> dict:
    """A WSGI environ like the one gunicorn builds, for werkzeug's Request."""
    client, server, scheme, http_version = extra
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": path + ("?" + query.decode("latin-1") if query else ""),
        "SERVER_NAME": server[0] if server else "127.0.0.1",
        "SERVER_PORT": str(server[1]) if server else "80",
        "SERVER_PROTOCOL": f"HTTP/{http_version}",
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in headers:
        if b"_" in name:
            continue
        key = name.decode("latin-1").upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        text = value.decode("latin-1")
        environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def raw_request(method: str, path: str, query: bytes, headers: list, body: bytes, extra):
    from mlcli.server.v1compat.aml_request import AMLRequest

    return AMLRequest(wsgi_environ(method, path, query, headers, body, extra))
