"""The `ml` command: a root group whose subgroups load on first use, so `ml --help` stays fast.

This package is the only place that imports Click or Rich. Each subgroup is listed below as
name -> "module:attribute" and imported only when it runs (Click's lazy-loading recipe).
"""

import importlib
import sys
from typing import Any

import click

from mlcli.errors import MlcliError

SUBGROUPS: dict[str, str] = {
    "model": "mlcli.cli.model:model",
    "config": "mlcli.cli.config:config",
    "env": "mlcli.cli.env:env",
    "environment": "mlcli.cli.environment:environment",  # v1's registered environments
    "service": "mlcli.cli.service:service",
    "image": "mlcli.cli.image:image",
    "workspace": "mlcli.cli.workspace:workspace",
    "folder": "mlcli.cli.workspace:folder",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported by name, only when needed."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, attr = self.lazy[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


class RootGroup(LazyGroup):
    """Prints an MlcliError as one paragraph on stderr and exits with its code; with --debug
    the traceback comes first, and the exit code is the same (scripts test it)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlcliError as err:
            if ctx.meta.get("mlcli.debug") or "--debug" in sys.argv:
                import traceback

                traceback.print_exc(file=sys.stderr)
            click.secho(f"error: {err}", fg="red", err=True)
            ctx.exit(err.exit_code)


@click.group(
    cls=RootGroup, lazy=SUBGROUPS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="mlcli", prog_name="ml")
def ml() -> None:
    """Register models and run them as web services, the Azure ML v1 way, on your own machine.

    \b
    Example:
        ml model register -p ./models -n sentiment
        ml model deploy -n myservice -m sentiment:1 --ic inferenceConfig.json
    """


def main() -> None:
    ml(prog_name="ml")
