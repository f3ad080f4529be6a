"""azureml.contrib.services.aml_response: AMLResponse, what run() returns for full control.

Same constructor and header rules as azmlinfsrv's: a header value with commas becomes one
header per part; x-ms-run-function-failed is always set; json_str=True serialises with json.
"""

from __future__ import annotations

import json

from werkzeug.wrappers import Response


class AMLResponse(Response):
    """An HTTP response a run() returns as-is: body, status code and headers."""

    default_mimetype = "text/html"  # Flask's Response default, which azmlinfsrv's is based on

    def __init__(
        self,
        message,
        status_code,
        response_headers=None,
        json_str=False,
        run_function_failed=False,
    ):
        response_headers = {} if response_headers is None else response_headers
        if message is None:
            super().__init__(json.dumps({}), status=status_code, mimetype="application/json")
        elif json_str:
            super().__init__(json.dumps(message), status=status_code, mimetype="application/json")
        else:
            super().__init__(message, status=status_code)
            if "Content-Type" in response_headers:
                self.headers.remove("Content-Type")
        self.headers["x-ms-run-function-failed"] = run_function_failed
        for header, value in response_headers.items():
            for part in value.split(","):
                self.headers.add_header(header, part.strip())


__all__ = ["AMLResponse"]
