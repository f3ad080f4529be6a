"""`ml image ...`: the Docker images LOCAL and ACI services run on (no registry involved)."""

import click

from mlcli.cli.options import global_options, output_options
from mlcli.cli.output import emit, progress

TABLE_COLUMNS = ("tag", "kind", "environment", "service", "sizeMB", "createdTime")


@click.group()
def image() -> None:
    """Build the base image, list and prune mlcli's Docker images."""


@image.command("build-base")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Run debootstrap again, even if the image or its cached root file system exists.",
)
@click.option(
    "--mirror",
    metavar="URL",
    help="Debian mirror for debootstrap; default: the one apt on this host uses.",
)
@output_options
@global_options
def build_base(rebuild: bool, mirror: str | None, output: str, query: str | None) -> None:
    """Build mlcli's base image (Debian bookworm + Python 3.11) with debootstrap.

    A LOCAL deploy does this by itself the first time; run it ahead to take the minute or so
    out of the first deploy. Needs root and the debootstrap package.

    \b
    Example:
        ml image build-base
        ml image build-base --rebuild --mirror http://deb.debian.org/debian
    """
    from mlcli.images.base import ensure_base_image

    with progress("building the base image") as on_progress:
        built = ensure_base_image(rebuild=rebuild, mirror=mirror, on_progress=on_progress)
    emit(built.to_dict(), output, query)


@image.command("list")
@click.option(
    "--kind",
    type=click.Choice(["base", "env", "app", "package"]),
    help="Only images of this kind.",
)
@output_options
@global_options
def list_(kind: str | None, output: str, query: str | None) -> None:
    """List mlcli's images: base, environment, service (app) and package images.

    \b
    Example:
        ml image list -o table
        ml image list --kind env --query "[].tags[0]" -o tsv
    """
    from mlcli.images import list_images

    emit(list_images(kind=kind), output, query, columns=TABLE_COLUMNS)


@image.command("prune")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@output_options
@global_options
def prune(dry_run: bool, output: str, query: str | None) -> None:
    """Remove service and environment images that no container uses (never the base image).

    \b
    Example:
        ml image prune --dry-run -o table
    """
    from mlcli.images import remove_unused_images

    emit(remove_unused_images(dry_run=dry_run), output, query, columns=TABLE_COLUMNS)
