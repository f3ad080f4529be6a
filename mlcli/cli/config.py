"""`ml config ...`: check inference and deployment config files."""

import click


@click.group()
def config() -> None:
    """Validate inferenceConfig and deploymentConfig files."""
