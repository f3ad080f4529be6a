"""Streams its answer: the second piece only once the client, having read the first, drops
a file named `go` in the app root (so the test fails by hanging if pieces are not streamed)."""

import os
import time
from pathlib import Path

from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


def run(data):
    def pieces():
        yield "first\n"
        cue = Path(os.environ["AML_APP_ROOT"]) / "go"
        for _ in range(400):
            if cue.exists():
                break
            time.sleep(0.05)
        yield "second\n"

    return AMLResponse(pieces(), 200, {"Content-Type": "text/plain"})
