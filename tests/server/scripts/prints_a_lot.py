"""run() prints as many 1 KB lines as asked, then a last line naming the request."""

import json


def init():
    pass


def run(data):
    request = json.loads(data)
    line = "x" * 1024
    for _ in range(request["lines"]):
        print(line)
    print(f"last line of request {request['n']}")
    return request["n"]
