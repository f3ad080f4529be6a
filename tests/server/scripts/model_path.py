"""Model.get_model_path as v1 scripts call it, for one model or several."""

import json
from pathlib import Path

from azureml.core.model import Model
from azureml.exceptions import AzureMLException


def init():
    pass


def run(data):
    request = json.loads(data)
    try:
        path = Model.get_model_path(request["name"], version=request.get("version"))
    except AzureMLException as exc:
        return {"error": type(exc).__name__, "message": exc.message}
    return {"path": path, "content": Path(path).read_text()}
