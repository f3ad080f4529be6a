"""init() fails while a file named `fail-init` sits beside the script: a replacement worker
that cannot start (a model file gone, a database down), and then can again."""

import os
from pathlib import Path

FLAG = Path(__file__).with_name("fail-init")


def init():
    if FLAG.exists():
        raise RuntimeError("the model store is unreachable")


def run(data):
    return {"pid": os.getpid()}
