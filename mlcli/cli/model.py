"""`ml model ...`: register and manage model versions."""

import click


@click.group()
def model() -> None:
    """Register, list, show, download, update and delete model versions."""
