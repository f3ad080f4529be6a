"""`ml env ...`: build, see and delete the cached model environments."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from mlcli.cli.options import common_options
from mlcli.cli.output import emit, progress, quiet, stderr_console
from mlcli.progress import Notice

TABLE_COLUMNS = ("key", "pythonVersion", "source", "lastUsedTime", "usedBy")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "days"}


@click.group()
def env() -> None:
    """Build, list, show and prune model environments (one per conda spec, shared)."""


@env.command("list")
@common_options
def list_(output: str, query: str | None) -> None:
    """List cached environments and the services using them.

    \b
    Example:
        ml env list
    """
    from mlcli.environments import list_environments, services_using

    used = services_using()
    summaries = [_summary(e, used.get(e.key, [])) for e in list_environments()]
    emit(summaries, output, query, columns=TABLE_COLUMNS)


@env.command("show")
@click.option("-k", "--key", required=True, help="Environment key (or a unique prefix of it).")
@common_options
def show(key: str, output: str, query: str | None) -> None:
    """Show one environment: its spec, interpreter, exact packages and users.

    \b
    Example:
        ml env show -k 3f2a
    """
    from mlcli.environments import find_environment, services_using
    from mlcli.environments.cache import disk_usage

    found = find_environment(key)
    shown = {
        **found.to_dict(),
        "usedBy": services_using().get(found.key, []),
        "sizeBytes": disk_usage(found.path),
    }
    emit(shown, output, query, columns=TABLE_COLUMNS)


@env.command("build")
@click.option(
    "--ic",
    "--inference-config-file",
    "inference_config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Inference config whose condaFile or environment to build.",
)
@click.option(
    "--cf",
    "--conda-file",
    "conda_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Conda environment file to build (overrides the inference config's).",
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Resolve the packages as on this date (YYYY-MM-DD): an unpinned v1 file gets the "
    "versions it got then.",
)
@common_options
def build(
    inference_config: Path | None,
    conda_file: Path | None,
    as_of: Any,
    output: str,
    query: str | None,
) -> None:
    """Build (or reuse) the environment a deploy would use, without deploying.

    \b
    Example:
        ml env build --cf myenv.yml
        ml env build --ic inferenceConfig.json
        ml env build --cf tutorial-env.yml --as-of 2021-06-01
    """
    import dataclasses

    from mlcli import environments

    if conda_file is not None:
        spec = environments.spec_for_conda_file(conda_file.absolute())
    elif inference_config is not None:
        from mlcli.config import load_inference_config

        spec = environments.spec_for(load_inference_config(inference_config))
    else:
        spec = environments.minimal_spec()
    if as_of is not None:
        spec = dataclasses.replace(spec, as_of=as_of.strftime("%Y-%m-%d"))
    with _progress("building environment") as on_progress:
        built = environments.ensure_environment(spec, on_progress=on_progress)
    emit(built.to_dict(), output, query, columns=TABLE_COLUMNS)


@env.command("prune")
@click.option(
    "--older-than",
    default="1h",
    show_default=True,
    help="Only environments nobody asked for within this long (30m, 12h, 7d).",
)
@click.option("--all", "all_", is_flag=True, help="Every unused environment, whatever its age.")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@common_options
def prune(older_than: str, all_: bool, dry_run: bool, output: str, query: str | None) -> None:
    """Delete environments no service uses, and leftovers of interrupted builds.

    \b
    Example:
        ml env prune --older-than 7d
        ml env prune --all --dry-run
    """
    from mlcli.environments import prune as prune_environments

    age = None if all_ else _duration(older_than)
    removed = prune_environments(older_than=age, dry_run=dry_run)
    emit([removal.to_dict() for removal in removed], output, query)


@env.command("delete")
@click.option("-k", "--key", required=True, help="Environment key (or a unique prefix of it).")
@click.option("--force", is_flag=True, help="Delete it even while services use it.")
@common_options
def delete(key: str, force: bool, output: str, query: str | None) -> None:
    """Delete one environment (refused while a service uses it, unless --force).

    \b
    Example:
        ml env delete -k 3f2a
    """
    from mlcli.environments import remove_environment

    emit(remove_environment(key, force=force).to_dict(), output, query)


def _summary(found: Any, used_by: list[str]) -> dict[str, Any]:
    return {
        "key": found.key,
        "pythonVersion": found.python_version,
        "source": found.spec.source,
        "packages": len(found.frozen),
        "createdTime": found.created_time,
        "lastUsedTime": found.last_used_time,
        "usedBy": used_by,
        "path": str(found.path),
    }


def _duration(text: str) -> timedelta:
    from mlcli.errors import ConfigError

    match = _DURATION.match(text.strip().lower())
    if not match:
        raise ConfigError(
            f"{text!r} is not a duration.",
            where="--older-than",
            fix="Write a number and a unit: 30m, 12h, 7d (days when no unit).",
        )
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


@contextmanager
def _progress(title: str) -> Iterator[Callable[[str], None]]:
    """Like every command's progress (notices stay, steps pass), with mlcli's own steps kept
    as lines too: `ml env build` is about them. uv's lines (resolved, + package) pass."""
    with progress(title) as status:

        def on_progress(line: str) -> None:
            if line.startswith("uv: "):
                status(line.removeprefix("uv: "))
            elif isinstance(line, Notice) or quiet() or not sys.stderr.isatty():
                status(line)  # a notice stays; elsewhere than a terminal every step does
            else:
                stderr_console().print(line, markup=False, highlight=False, soft_wrap=True)

        yield on_progress
