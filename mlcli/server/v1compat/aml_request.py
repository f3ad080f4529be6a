"""azureml.contrib.services.aml_request: @rawhttp and AMLRequest.

A run() decorated with @rawhttp receives the whole HTTP request. azmlinfsrv hands it a Flask
request; we hand it a werkzeug Request (Flask's base class), so request.method, .args,
.headers, .get_data(), .get_json(), .form and .files behave exactly as they do on Azure.
"""

from __future__ import annotations

from werkzeug.wrappers import Request

# Read by the server after it imported the entry script (any decorated function sets it,
# as in azmlinfsrv).
_rawHttpRequested = False


def rawhttp(func):
    """Ask for raw HTTP access: run(request) gets the request, not the parsed body."""
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


class AMLRequest(Request):
    """The request object a @rawhttp run() receives."""

    def __init__(self, environ: dict | None = None, *args, **kwargs) -> None:
        super().__init__(environ if environ is not None else {}, *args, **kwargs)


__all__ = ["AMLRequest", "rawhttp"]
