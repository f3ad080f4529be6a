"""run() can take its worker process down (as a segfault or an OOM kill would)."""

import json
import os


def init():
    pass


def run(data):
    if json.loads(data).get("crash"):
        os._exit(1)
    return {"pid": os.getpid()}
