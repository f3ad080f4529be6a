"""run() returns a large document (about 2 MB of JSON)."""

import json


def init():
    pass


def run(data):
    size = json.loads(data)["size"]
    return {"rows": [{"id": i, "score": i / 7, "label": f"item-{i}"} for i in range(size)]}
