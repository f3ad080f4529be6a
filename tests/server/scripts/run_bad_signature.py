"""run(*args) is not accepted: the server refuses to start."""


def init():
    pass


def run(*args):
    return args
