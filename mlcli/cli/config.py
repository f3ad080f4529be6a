"""`ml config ...`: check inference and deployment config files before deploying."""

from pathlib import Path

import click

from mlcli.cli.options import common_options
from mlcli.cli.output import emit, warn

KINDS = {"inference": "inferenceConfig", "deployment": "deploymentConfig"}


@click.group()
def config() -> None:
    """Validate inferenceConfig and deploymentConfig files."""


@config.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--kind",
    type=click.Choice(["auto", *KINDS], case_sensitive=False),
    default="auto",
    show_default=True,
    help="Which config FILE is; auto: from its name ('deploy'/'inference'), else its fields.",
)
@common_options
def validate(file: Path, kind: str, output: str, query: str | None) -> None:
    """Check one config file (JSON or YAML); print it with every default filled in.

    Exits 2 with one paragraph naming the field, what was wrong and what is allowed.

    \b
    Example:
        ml config validate deploymentConfig.json
        ml config validate inferenceConfig.yml --kind inference -o yaml
    """
    from mlcli import config as configs

    resolved = KINDS.get(kind.lower()) or configs.config_kind(file)
    if resolved == "deploymentConfig":
        parsed = configs.load_deployment_config(file)
        from mlcli.deploy.overrides import config_file_notes

        for note in config_file_notes(parsed):
            warn(note)
    else:
        parsed = configs.load_inference_config(file)
        for note in parsed.notes:
            warn(note)
    emit(
        {"file": str(file), "kind": resolved, "valid": True, "config": configs.as_document(parsed)},
        output,
        query,
    )


@config.command("schema")
@click.argument("kind", type=click.Choice(list(KINDS), case_sensitive=False))
@common_options
def show_schema(kind: str, output: str, query: str | None) -> None:
    """Print the JSON Schema of a config kind (for editors and reviews).

    \b
    Example:
        ml config schema deployment > deploymentConfig.schema.json
    """
    from mlcli import config as configs

    emit(configs.schema(KINDS[kind.lower()]), output, query)
