"""Returns the input exactly as run() receives it (a str for an undecorated run)."""


def init():
    print("echo: init called")


def run(data):
    return data
