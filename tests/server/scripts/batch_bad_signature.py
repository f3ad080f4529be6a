"""run_batch() that cannot take a list of items."""


def init():
    pass


def run(data):
    return data


def run_batch():
    return []
