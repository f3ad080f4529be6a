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
    }
    if request.method == "POST" and request.is_json:
        description["json"] = request.get_json()
    return AMLResponse(json.dumps(description), 200, {"Content-Type": "application/json"})
