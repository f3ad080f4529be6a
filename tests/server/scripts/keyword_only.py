"""run() with a keyword-only input parameter and a default for request_headers."""


def init():
    pass


def run(*, payload, request_headers=None):
    return {"payload": payload, "has_headers": request_headers is not None}
