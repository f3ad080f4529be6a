"""@rawhttp: run() gets the request itself and describes it back."""

import json

from azureml_inference_server_http.api.aml_request import AMLRequest, rawhttp
from azureml_inference_server_http.api.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request: AMLRequest):
    description = {
        "method": request.method,
        "path": request.path,
        "full_path": request.full_path,
        "args": request.args.to_dict(flat=False),
        "data": request.get_data(as_text=True),
        "is_json": request.is_json,
        "content_type": request.content_type,
        "header": request.headers.get("X-Custom"),
        "form": request.form.to_dict(flat=False),
        "files": {name: f.read().decode() for name, f in request.files.items()},
        "mimetype": request.mimetype,
        "mimetype_params": request.mimetype_params,
        "content_length": request.content_length,
        "query_string": request.query_string.decode("latin-1"),
        "scheme": request.scheme,
        "is_secure": request.is_secure,
        "remote_addr": request.remote_addr,
        "cookies": request.cookies.to_dict(),
        "values": request.values.to_dict(flat=False),
        "headers": sorted((k, v) for k, v in request.headers.items() if k.lower() != "host"),
        "silent_json": request.get_json(silent=True),
        "path_port_free": request.url.split("/", 3)[-1],
    }
    if request.method == "POST" and request.is_json:
        description["json"] = request.get_json()
    return AMLResponse(json.dumps(description), 200, {"Content-Type": "application/json"})
