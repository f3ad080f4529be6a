"""run_batch(items, request_headers): one header dict per item, in order."""

import json


def init():
    pass


def run(data):
    return {"id": json.loads(data)["id"], "client": None}


def run_batch(items, request_headers):
    return [
        {"id": json.loads(item)["id"], "client": headers.get("X-Client")}
        for item, headers in zip(items, request_headers, strict=True)
    ]
