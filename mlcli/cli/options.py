"""Options every command shares, defined once (cf. sqlite-utils' `output_options`).

Azure CLI scripts pass `-w/-g/--subscription-id`, `-o`, `--query`, `--debug` and
`--only-show-errors` to every command; `common_options` accepts them all. Only `-o/--output` and
`--query` reach the command as arguments; the rest go to `ctx.meta`, shared by nested contexts.
"""

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from mlcli.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_FORMATS = ("json", "jsonc", "table", "tsv", "yaml", "none")
DEBUG = "mlcli.debug"
ONLY_SHOW_ERRORS = "mlcli.only_show_errors"
VERBOSE = "mlcli.verbose"
WORKSPACE = "mlcli.workspace"


def output_options(f: F) -> F:
    """-o/--output and --query, passed to the command as `output` and `query`."""
    f = click.option(
        "--query",
        metavar="JMESPATH",
        help='JMESPath query applied to the result, e.g. "[].version".',
    )(f)
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUT_FORMATS, case_sensitive=False),
        default="json",
        show_default=True,
        help="Output format.",
    )(f)


def _set_workspace(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    from mlcli.paths import Workspace

    Workspace.named(value)  # refuses a bad name now, as a usage error
    ctx.meta[WORKSPACE] = value
    # Code that opens the registry without being handed a workspace (and processes it
    # starts) must see the same one: Workspace.named() falls back to this variable. It is put
    # back when the command ends, for callers that run commands in-process (CliRunner).
    previous = os.environ.get("MLCLI_WORKSPACE")
    os.environ["MLCLI_WORKSPACE"] = value
    ctx.call_on_close(lambda: _restore_env("MLCLI_WORKSPACE", previous))


def _restore_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


def workspace_options(f: F) -> F:
    """-w/--workspace-name picks the workspace; -g and --subscription-id are accepted, unused."""
    f = click.option(
        "--subscription-id",
        metavar="ID",
        expose_value=False,
        help="Accepted for Azure CLI scripts; ignored.",
    )(f)
    f = click.option(
        "-g",
        "--resource-group",
        metavar="NAME",
        expose_value=False,
        help="Accepted for Azure CLI scripts; ignored.",
    )(f)
    return click.option(
        "-w",
        "--workspace-name",
        metavar="NAME",
        expose_value=False,
        is_eager=True,
        callback=_set_workspace,
        help="Workspace (a folder under $MLCLI_HOME); default: $MLCLI_WORKSPACE or 'default'.",
    )(f)


def _set_meta(key: str) -> Callable[[click.Context, click.Parameter, bool], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.meta[key] = True

    return callback


def global_options(f: F) -> F:
    """--debug (tracebacks), --only-show-errors (no progress or warnings), --verbose."""
    f = click.option(
        "-v",
        "--verbose",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_meta(VERBOSE),
        help="Keep every step on screen as a line (a CI log always gets them).",
    )(f)
    f = click.option(
        "--only-show-errors",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_meta(ONLY_SHOW_ERRORS),
        help="Show errors only: no progress, no warnings.",
    )(f)
    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_set_meta(DEBUG),
        help="Show the full traceback of an error.",
    )(f)


def common_options(f: F) -> F:
    """Everything Azure CLI accepts on every command: output, workspace and global options."""
    return output_options(workspace_options(global_options(f)))


def workspace_name() -> str | None:
    """The -w value of the running command, None for the default."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get(WORKSPACE) if ctx is not None else None


def parse_pairs(values: tuple[str, ...], option: str, *, value_required: bool = True) -> dict:
    """`--tag k=v` values as a dict; with value_required=False a bare `k` maps to None."""
    pairs: dict[str, str | None] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key or (value_required and not sep):
            raise ConfigError(
                f"{item!r} is not key=value.",
                where=option,
                fix=f"Write {option} key=value" + ("" if value_required else " or just key") + ".",
            )
        pairs[key] = value if sep else None
    return pairs
