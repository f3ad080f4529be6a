"""Returns a response whose header name carries CR/LF (werkzeug lets a name through)."""

from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def run(data):
    streamed = data == "stream"
    body = iter(["a", "b"]) if streamed else "body"
    return AMLResponse(body, 200, {"X-Ok\r\nInjected": "yes"})
