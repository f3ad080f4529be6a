"""An undecorated run() may still return an AMLResponse; it is sent as-is."""

import json

from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def run(data):
    payload = json.loads(data)
    return AMLResponse(payload["message"], payload["status"], {"X-Reason": payload["reason"]})
