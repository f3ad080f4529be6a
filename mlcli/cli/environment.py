"""`ml environment ...`: v1's registered environments (`az ml environment scaffold|register|
list|show|download`). The cached uv environments they build into are `ml env`."""

from __future__ import annotations

from pathlib import Path

import click

from mlcli.cli.options import common_options, workspace_name
from mlcli.cli.output import emit

TABLE_COLUMNS = ("name", "version", "python", "packages")
_DIRECTORY = click.Path(file_okay=False, path_type=Path)


@click.group()
def environment() -> None:
    """Scaffold, register, list, show and download named, versioned environments."""


def _workspace():  # -> mlcli.paths.Workspace
    from mlcli.paths import Workspace

    return Workspace.named(workspace_name())


def _row(document: dict) -> dict:
    """A registered environment for a table: its Python and pip packages in one line each."""
    conda = ((document.get("python") or {}).get("condaDependencies")) or {}
    dependencies = conda.get("dependencies") or []
    python = next(
        (
            d.split("=", 1)[1]
            for d in dependencies
            if isinstance(d, str) and d.startswith("python=")
        ),
        "",
    )
    pip = next((d["pip"] for d in dependencies if isinstance(d, dict) and "pip" in d), [])
    return {**document, "python": python, "packages": list(pip)}


@environment.command("scaffold")
@click.option("-n", "--name", required=True, help="The environment's name.")
@click.option("-d", "--directory", type=_DIRECTORY, help="Folder to write (default: NAME).")
@common_options
def scaffold(name: str, directory: Path | None, output: str, query: str | None) -> None:
    """Write a new environment's folder: azureml_environment.json and conda_dependencies.yml.

    \b
    Example:
        ml environment scaffold -n myenv -d ./myenv
    """
    from mlcli.environments.registered import scaffold_document, write_directory

    folder = write_directory(scaffold_document(name), directory or Path(name))
    emit({"name": name, "directory": str(folder.resolve())}, output, query)


@environment.command("register")
@click.option("-d", "--directory", type=_DIRECTORY, required=True, help="The environment folder.")
@common_options
def register(directory: Path, output: str, query: str | None) -> None:
    """Register an environment folder as the next version of its name (the same content as
    the latest version gives that version back).

    \b
    Example:
        ml environment register -d ./myenv
    """
    from mlcli.environments.registered import read_directory, register_environment

    emit(register_environment(_workspace(), read_directory(directory)), output, query)


@environment.command("list")
@click.option("--curated", is_flag=True, help="Also list curated Azure names mlcli maps.")
@common_options
def list_(curated: bool, output: str, query: str | None) -> None:
    """The latest version of each registered environment.

    \b
    Example:
        ml environment list -o table
    """
    from mlcli.environments.curated import curated_document, curated_names
    from mlcli.environments.registered import list_environments

    documents = list_environments(_workspace())
    if curated:
        documents += [curated_document(name) for name in curated_names()]
    emit([_row(d) for d in documents], output, query, columns=TABLE_COLUMNS)


@environment.command("show")
@click.option("-n", "--name", required=True, help="A registered or curated name.")
@click.option("--version", "version", help="The version (default: the latest).")
@common_options
def show(name: str, version: str | None, output: str, query: str | None) -> None:
    """One environment's document: registered in the workspace, or a curated Azure name.

    \b
    Example:
        ml environment show -n myenv --version 2
        ml environment show -n AzureML-sklearn-1.0-ubuntu20.04-py38-cpu
    """
    from mlcli.environments.spec import named_environment

    emit(named_environment(name, version, _workspace()), output, query)


@environment.command("download")
@click.option("-n", "--name", required=True, help="A registered or curated name.")
@click.option("--version", "version", help="The version (default: the latest).")
@click.option("-d", "--directory", type=_DIRECTORY, required=True, help="Folder to write.")
@click.option("--overwrite", is_flag=True, help="Replace the files of a folder in use.")
@common_options
def download(
    name: str, version: str | None, directory: Path, overwrite: bool, output: str, query: str | None
) -> None:
    """Write an environment as a folder (edit it, then `ml environment register -d`).

    \b
    Example:
        ml environment download -n myenv -d ./myenv
    """
    from mlcli.environments.registered import write_directory
    from mlcli.environments.spec import named_environment

    document = named_environment(name, version, _workspace())
    folder = write_directory(document, directory, overwrite=overwrite)
    emit(
        {"name": name, "version": document.get("version"), "directory": str(folder)}, output, query
    )
