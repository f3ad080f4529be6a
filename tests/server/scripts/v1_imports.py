"""Every import path v1 scripts use for the azureml names resolves inside mlcli's server."""

import azureml.contrib.services.aml_response as response_module
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from azureml.core import Model
from azureml.core.model import Model as ModelFromModule
from azureml.exceptions import ModelNotFoundException, WebserviceException
from azureml_inference_server_http.api import aml_request as server_request
from azureml_inference_server_http.api.aml_response import AMLResponse as ServerResponse


def init():
    pass


@rawhttp
def run(request):
    checks = {
        "model_same": Model is ModelFromModule,
        "response_same": AMLResponse is ServerResponse is response_module.AMLResponse,
        "request_same": server_request.AMLRequest is AMLRequest,
        "raw_request_type": isinstance(request, AMLRequest),
        "exceptions": [ModelNotFoundException.__name__, WebserviceException.__name__],
    }
    return AMLResponse(checks, 200, json_str=True)
