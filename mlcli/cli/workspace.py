"""`ml workspace ...` and `ml folder ...`: the workspaces there are, and a project's default."""

from __future__ import annotations

from pathlib import Path

import click

from mlcli.cli.options import common_options, output_options, workspace_name
from mlcli.cli.output import emit

TABLE_COLUMNS = ("name", "models", "modelVersions", "services", "default", "path")


@click.group()
def workspace() -> None:
    """List, show, create and delete workspaces (folders under $MLCLI_HOME)."""


@workspace.command("list")
@common_options
def list_(output: str, query: str | None) -> None:
    """The workspaces that exist, with what each holds.

    \b
    Example:
        ml workspace list -o table
    """
    from mlcli.workspaces import list_all

    emit(list_all(), output, query, columns=TABLE_COLUMNS)


@workspace.command("show")
@common_options
def show(output: str, query: str | None) -> None:
    """The workspace -w names (else the project's, else 'default'): folder and contents.

    \b
    Example:
        ml workspace show -w prod
    """
    from mlcli.paths import Workspace
    from mlcli.workspaces import describe

    emit(describe(Workspace.named(workspace_name()).name), output, query)


@workspace.command("create")
@click.option("--exist-ok", is_flag=True, help="Succeed when the workspace exists already.")
@common_options
def create(exist_ok: bool, output: str, query: str | None) -> None:
    """Create the workspace -w names (registering a model creates one too).

    \b
    Example:
        ml workspace create -w prod
    """
    from mlcli.paths import Workspace
    from mlcli.workspaces import create as create_workspace

    emit(create_workspace(Workspace.named(workspace_name()).name, exist_ok=exist_ok), output, query)


@workspace.command("delete")
@click.option(
    "--all-resources", is_flag=True, help="Also delete its services (their servers stop)."
)
@common_options
def delete(all_resources: bool, output: str, query: str | None) -> None:
    """Delete the workspace -w names: its models and records. Refused while it has services,
    unless --all-resources.

    \b
    Example:
        ml workspace delete -w scratch --all-resources
    """
    from mlcli.paths import Workspace
    from mlcli.workspaces import delete as delete_workspace

    name = Workspace.named(workspace_name()).name
    emit(delete_workspace(name, all_resources=all_resources), output, query)


@click.group()
def folder() -> None:
    """Attach a project folder to a workspace, as `az ml folder attach` did."""


@folder.command("attach")
@click.option("-w", "--workspace-name", "name", required=True, help="The workspace to use here.")
@click.option("-g", "--resource-group", help="Kept in the file for v1 tools; not used.")
@click.option("--subscription-id", help="Kept in the file for v1 tools; not used.")
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="The project folder.",
)
@output_options
def attach(
    name: str,
    resource_group: str | None,
    subscription_id: str | None,
    path: Path,
    output: str,
    query: str | None,
) -> None:
    """Write .azureml/config.json in the project folder: commands run there (or below) use
    this workspace without -w, and so does the v1 SDK's `Workspace.from_config()`.

    \b
    Example:
        ml folder attach -w prod -g myresourcegroup
    """
    from mlcli.workspaces import attach as attach_folder

    emit(
        attach_folder(path, name, resource_group=resource_group, subscription_id=subscription_id),
        output,
        query,
    )


@folder.command("show")
@output_options
def show_folder(output: str, query: str | None) -> None:
    """The project config that applies in the current folder and the workspace it names."""
    from mlcli.workspaces import attached

    emit(attached(), output, query)
