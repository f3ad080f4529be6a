"""`ml model package`: models + inference config -> a Docker image, or its build context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlcli.cli.deploy import inference_config, inference_options, model_refs
from mlcli.cli.manifests import manifest_options, prepare_manifests, write_kubernetes
from mlcli.cli.options import common_options, workspace_name
from mlcli.cli.output import emit, progress
from mlcli.errors import ConfigError


@click.command("package")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME:N", help="Repeatable.")
@click.option(
    "-f",
    "--model-metadata-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON with modelId, written by `ml model register -t`.",
)
@inference_options
@click.option(
    "--output-path",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write a Dockerfile and build context to this new folder instead of building.",
)
@click.option(
    "--image-name",
    metavar="NAME[:TAG]",
    help="Also tag the built image with this name; with --dc, the image the manifests run.",
)
@manifest_options
@click.option("--no-wait", is_flag=True, hidden=True, help="Accepted; the command always waits.")
@common_options
def package(
    models: tuple[str, ...],
    model_metadata_file: Path | None,
    output_path: Path | None,
    image_name: str | None,
    deploy_config: Path | None,
    service_name: str | None,
    no_wait: bool,
    output: str,
    query: str | None,
    **flags: Any,
) -> None:
    """Package models, their entry script and environment as a Docker image.

    Without --output-path the image is built in the local engine and its tag printed. With it,
    a folder is written that `docker build` turns into the same image on any x86_64 machine,
    with no registry and no network (the base file system and the packages are inside).

    \b
    Example:
        ml model package -m sentiment:1 --ic inferenceConfig.json
        ml model package -m sentiment:1 --ic inferenceConfig.json --output-path ./pkg
        docker build -t sentiment:1 ./pkg && docker run --rm -p 5001:5001 sentiment:1
        ml model package -m sentiment:1 --ic inferenceConfig.json --dc aks.json \\
            --image-name registry.example.com/sentiment:1 --output-path ./pkg
        kubectl apply -f ./pkg/kubernetes
    """
    from mlcli.deploy.inputs import resolve_models
    from mlcli.images.package import package as package_models
    from mlcli.registry import Registry

    refs = model_refs(models, model_metadata_file)
    if not refs:
        raise ConfigError(
            "no model to package.",
            where="-m/--model",
            fix="Name at least one registered model: -m NAME:N (repeat -m for several).",
        )
    ic = inference_config(flags)
    if ic is None:
        raise ConfigError(
            "no entry script: a package serves models through a score.py, as Azure ML v1 does.",
            where="--ic/--inference-config-file",
            fix="Pass --ic inferenceConfig.json (with entryScript), or --es score.py.",
        )
    if image_name and output_path and not deploy_config:
        raise ConfigError(
            "--image-name names a built image; --output-path builds none.",
            where="--image-name",
            fix="Leave one out (name the image later with `docker build -t NAME`).",
        )
    registry = Registry.open(workspace_name(), create=False)
    resolved = resolve_models(registry, refs)
    manifests = prepare_manifests(
        deploy_config,
        service_name,
        resolved,
        ic,
        output_path=output_path,
        image_name=image_name,
        workspace=registry.workspace.name,
    )
    with progress("Packaging " + ", ".join(m.id for m in resolved)) as on_progress:
        result = package_models(
            registry,
            resolved,
            ic,
            output_path=output_path,
            image_name=image_name,
            on_progress=on_progress,
        )
    if manifests is not None and output_path is not None:
        result["kubernetes"] = write_kubernetes(manifests, output_path)
    emit(result, output, query)
