"""run() asks for request_headers: they arrive as Flask shows them (Title-Cased names)."""

KEEP = ("Content-Type", "X-Custom", "X-Ms-Client-Request-Id", "Traceid", "X-Repeated", "Accept")


def init():
    pass


def run(data, request_headers):
    return {
        "data": data,
        "headers": {k: v for k, v in request_headers.items() if k in KEEP},
        "names": sorted(k for k in request_headers if k not in ("Host", "User-Agent")),
    }
