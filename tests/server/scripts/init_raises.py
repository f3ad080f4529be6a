"""init() fails: the server must exit non-zero with the traceback in its log."""


def init():
    raise RuntimeError("model file is corrupt")


def run(data):
    return data
