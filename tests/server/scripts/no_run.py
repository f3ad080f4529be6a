"""No run(): the server refuses to start."""


def init():
    pass
