"""Streams one piece, then its generator raises: the answer is cut off midway."""

from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def run(data):
    def pieces():
        yield "first\n"
        raise RuntimeError("the generator broke")

    return AMLResponse(pieces(), 200, {"Content-Type": "text/plain"})
