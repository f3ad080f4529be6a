"""@rawhttp: run() answers with AMLResponse objects of every shape."""

from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    kind = request.args.get("kind", "")
    if kind == "created":
        return AMLResponse("made it", 201)
    if kind == "teapot":
        return AMLResponse({"error": "short and stout"}, 418, json_str=True)
    if kind == "headers":
        return AMLResponse("h", 200, {"X-Multi": "a, b,c", "Cache-Control": "no-cache"})
    if kind == "content_type":
        return AMLResponse(b"\x89PNG\r\n", 200, {"Content-Type": "image/png"})
    if kind == "none":
        return AMLResponse(None, 202)
    if kind == "server_error":
        return AMLResponse("model unavailable", 503)
    if kind == "failed_flag":
        return AMLResponse("x", 500, run_function_failed=False)
    if kind == "plain_dict":
        return {"not": "a response"}
    if kind == "bytes":
        return AMLResponse(b"binary\x00data", 200)
    if kind == "raise":
        raise RuntimeError("raw run failed")
    return AMLResponse(f"method={request.method}", 200)
