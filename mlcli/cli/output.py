"""Results to stdout (json, jsonc, table, tsv, yaml or none, after --query); the rest to stderr.

Commands hand plain dicts to `emit`; every format is made from those same dicts. Rich, jmespath
and yaml are imported only by the format that needs them, so `-o json` stays cheap.
"""

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click

from mlcli.cli.options import ONLY_SHOW_ERRORS, VERBOSE
from mlcli.errors import ConfigError
from mlcli.progress import Notice

_consoles: dict[str, Any] = {}


def emit(
    data: Any, output: str = "json", query: str | None = None, *, columns: Sequence[str] = ()
) -> None:
    """Print a command's result; `columns` picks the table's columns when there is no query."""
    output = output.lower()
    if query:
        data = apply_query(data, query)
    if output == "none":
        return
    if output == "json":
        text = to_json(data)
    elif output == "jsonc":
        text = _jsonc(data)
    elif output == "yaml":
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip("\n")
    elif output == "tsv":
        text = "\n".join("\t".join(_cell(v) for v in _tsv_row(row)) for row in _rows(data))
    elif output == "table":
        text = _table(data, () if query else columns)
    else:
        raise ConfigError(f"unknown output format {output!r}.", where="-o/--output")
    if text:
        click.echo(text)


def apply_query(data: Any, query: str) -> Any:
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.search(query, data)
    except JMESPathError as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(
            f"{query!r} is not a valid JMESPath query: {message}.",
            where="--query",
            fix='See https://jmespath.org; e.g. --query "[].version".',
        ) from exc


def stderr_console() -> Any:
    """A Rich console on stderr; colour and animation only when stderr is a terminal."""
    if "stderr" not in _consoles:
        from rich.console import Console

        _consoles["stderr"] = Console(stderr=True)
    return _consoles["stderr"]


def quiet() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(ONLY_SHOW_ERRORS))


def verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get(VERBOSE))


def warn(message: str) -> None:
    """A warning on stderr, unless --only-show-errors."""
    if not quiet():
        click.secho(f"warning: {message}", fg="yellow", err=True)


@contextlib.contextmanager
def progress(title: str) -> Iterator[Callable[[str], None]]:
    """An `on_progress(message)` callback for the core (see mlcli/progress.py).

    A Notice (a decision, a warning) is always a line that stays, on a terminal or in a CI log,
    unless --only-show-errors. Steps: on a terminal a live status line (each one also kept as
    a line with -v/--verbose); elsewhere (a CI log, a pipe) a plain line with a timestamp.
    """
    if quiet():
        yield _ignore
        return
    if not sys.stderr.isatty():
        click.echo(_stamped(f"{title} ..."), err=True)

        def on_plain(message: str) -> None:
            if isinstance(message, Notice):
                warn(message)
            else:
                click.echo(_stamped(message), err=True)

        yield on_plain
        return
    every_step = verbose()
    console = stderr_console()
    with console.status(title) as status:

        def on_progress(message: str) -> None:
            if isinstance(message, Notice):
                console.print(f"[yellow]warning:[/] {_escape(message)}", highlight=False)
                return
            if every_step:
                console.print(_stamped(message), markup=False, highlight=False)
            status.update(f"{title}: {_escape(message)}")

        yield on_progress


def _stamped(message: str) -> str:
    from datetime import datetime

    return f"{datetime.now().strftime('%H:%M:%S')} {message}"


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _ignore(_line: str) -> None:
    pass


def to_json(data: Any) -> str:
    """Indented JSON as the Azure CLI prints it; orjson when present (the stdlib's indenting
    encoder is pure Python: ~0.1 s for a 1,000-version `ml model list`)."""
    try:
        import orjson
    except ImportError:
        return json.dumps(data, indent=2, ensure_ascii=False)
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def _jsonc(data: Any) -> str:
    text = to_json(data)
    if not sys.stdout.isatty():
        return text
    from rich.console import Console
    from rich.json import JSON

    console = Console()
    with console.capture() as captured:
        console.print(JSON(text))
    return captured.get().rstrip("\n")


def _rows(data: Any) -> list[Any]:
    if data is None:
        return []
    return list(data) if isinstance(data, list) else [data]


def _tsv_row(row: Any) -> list[Any]:
    # As the Azure CLI: a dict gives its scalar values in order; nested values are left out.
    if isinstance(row, dict):
        return [v for v in row.values() if not isinstance(v, dict | list)]
    if isinstance(row, list):
        return [v for v in row if not isinstance(v, dict | list)]
    return [row]


_FRACTION_OF_SECOND = re.compile(r"(T?\d{2}:\d{2}:\d{2})\.\d+")


def _cell(value: Any) -> str:
    """A table cell: lists comma-joined, timestamps to the second, one line."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    text = str(value).replace("\t", " ").replace("\n", " ")
    return _FRACTION_OF_SECOND.sub(r"\1", text) if ":" in text else text


def _table(data: Any, columns: Sequence[str]) -> str:
    rows = _rows(data)
    if not rows:
        return ""
    if not all(isinstance(r, dict) for r in rows):
        header = ["Result"]
        body = [[_cell(v) for v in _tsv_row(r)] for r in rows]
        width = max(len(b) for b in body)
        header = [f"Column{i + 1}" for i in range(width)] if width > 1 else header
    else:
        keys = list(columns) or [
            k for k in dict.fromkeys(k for r in rows for k in r) if _is_scalar_column(rows, k)
        ]
        header = [k[:1].upper() + k[1:] for k in keys]
        body = [[_cell(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body if i < len(b))) for i, h in enumerate(header)]
    widths = _fit(widths, _terminal_width())
    header = [_clip(h, w) for h, w in zip(header, widths, strict=True)]
    body = [[_clip(c, w) for c, w in zip(b, widths, strict=False)] for b in body]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=False)).rstrip() for b in body]
    return "\n".join(lines)


def _terminal_width() -> int | None:
    """The terminal's width when stdout is one (a pipe or file gets whole cells)."""
    if not sys.stdout.isatty():
        return None
    import shutil

    return shutil.get_terminal_size().columns


def _fit(widths: list[int], total: int | None, floor: int = 8) -> list[int]:
    """Narrow the widest columns, one character at a time, until the table fits `total`."""
    if total is None:
        return widths
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > total:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= floor:
            break
        widths[widest] -= 1
    return widths


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def _is_scalar_column(rows: list[dict], key: str) -> bool:
    return all(not isinstance(r.get(key), dict | list) for r in rows)
