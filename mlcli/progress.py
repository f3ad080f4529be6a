"""How the core reports what it is doing: an `on_progress(message)` callback.

The core never prints. The CLI passes a Rich status line (cli/output.py's `progress`), tests
pass `list.append`, and None means nobody listens.
"""

from collections.abc import Callable

Progress = Callable[[str], None]


def reporter(on_progress: Progress | None) -> Progress:
    """`on_progress`, or (for None) a callback that drops every message."""
    return on_progress or _ignore


def _ignore(_message: str) -> None:
    pass
