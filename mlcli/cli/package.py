"""`ml model package`: models + inference config -> a Docker image, or its build context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlcli.cli.deploy import FILE_PATH, inference_config, inference_options, model_refs
from mlcli.cli.options import common_options, workspace_name
from mlcli.cli.output import emit, progress, warn

_DC_HELP = (
    "An AKS deploymentConfig: also write Kubernetes manifests to OUTPUT_PATH/kubernetes, "
    "for `kubectl apply -f`."
)
_NAME_HELP = "Service name in the Kubernetes manifests (with --dc); default: the first model's."


@click.command("package")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME:N", help="Repeatable.")
@click.option("-f", "--model-metadata-file", type=FILE_PATH, help="From `ml model register -t`.")
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
@click.option("--dc", "--deploy-config-file", "deploy_config", type=FILE_PATH, help=_DC_HELP)
@click.option("-n", "--name", "service_name", help=_NAME_HELP)
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
    from mlcli import config
    from mlcli.deploy.packaging import PackageRequest
    from mlcli.deploy.packaging import package as package_models

    refs = model_refs(models, model_metadata_file)
    request = PackageRequest(
        models=refs,
        inference=inference_config(flags) if refs else None,
        output_path=output_path,
        image_name=image_name,
        deployment=config.load_deployment_config(deploy_config) if deploy_config else None,
        service_name=service_name,
    )
    with progress("Packaging " + ", ".join(map(str, refs))) as on_progress:
        result = package_models(
            request, workspace=workspace_name(), on_progress=on_progress, on_warning=warn
        )
    emit(result, output, query)
