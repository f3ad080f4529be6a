"""Streams 400 MB as fast as it can, in 1 MB pieces."""

from azureml.contrib.services.aml_response import AMLResponse

PIECE = b"x" * (1 << 20)


def init():
    pass


def run(data):
    return AMLResponse((PIECE for _ in range(400)), 200, {"Content-Type": "text/plain"})
