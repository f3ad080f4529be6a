"""How the core reports what it is doing: an `on_progress(message)` callback.

The core never prints. The CLI passes cli/output.py's `progress` (a live status line on a
terminal, timestamped lines elsewhere), tests pass `list.append`, and None means nobody listens.
A message is a step ("building environment ...") unless it is a `Notice`: a decision or a
warning the user must be able to read afterwards (a Python version substituted, a package not
installed), which the CLI prints as a line that stays, on a terminal or in a CI log.
"""

from collections.abc import Callable

Progress = Callable[[str], None]


class Notice(str):
    """A progress message that is a decision or a warning, not a step."""

    __slots__ = ()


def reporter(on_progress: Progress | None) -> Progress:
    """`on_progress`, or (for None) a callback that drops every message."""
    return on_progress or _ignore


def _ignore(_message: str) -> None:
    pass
