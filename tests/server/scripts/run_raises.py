"""run() raises, in different ways."""

import json


def init():
    pass


def run(data):
    kind = json.loads(data)["kind"]
    if kind == "value":
        raise ValueError("bad input value")
    if kind == "key":
        return {}["missing"]
    if kind == "timeout":
        raise TimeoutError("a socket of the script timed out")
    return "fine"
