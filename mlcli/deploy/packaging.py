"""`ml model package` (and the SDK's Model.package): models + inference config -> an image or
its build context (mlcli/images/package.py), and, with an AKS deployment config, the
Kubernetes manifests that run it, written beside the build context.

Everything is checked before anything is built: the models resolve, there is an entry
script, the flags fit together and the manifests can be made.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.deploy.inputs import environment_variables, resolve_models
from mlcli.deploy.settings import server_extras, server_settings, telemetry_settings
from mlcli.errors import ConfigError
from mlcli.paths import Workspace
from mlcli.progress import Progress

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig, InferenceConfig
    from mlcli.models import ModelRef, ModelVersion


@dataclass(frozen=True, slots=True)
class PackageRequest:
    """What `ml model package` asks for, parsed. `deployment` (an AKS deploymentConfig) also
    asks for Kubernetes manifests in OUTPUT_PATH/kubernetes, naming the service
    `service_name` (default: the first model's name)."""

    models: tuple[ModelRef, ...]
    inference: InferenceConfig | None
    output_path: Path | None = None
    image_name: str | None = None
    deployment: DeploymentConfig | None = None
    service_name: str | None = None


def package(
    request: PackageRequest,
    *,
    workspace: str | Workspace | None = None,
    on_progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Package the models; what `ml model package` prints (the image, or the folder, and
    the manifests written)."""
    from mlcli.images.package import package as package_models
    from mlcli.registry import Registry

    if not request.models:
        raise ConfigError(
            "no model to package.",
            where="-m/--model",
            fix="Name at least one registered model: -m NAME:N (repeat -m for several).",
        )
    ic = request.inference
    if ic is None:
        raise ConfigError(
            "no entry script: a package serves models through a score.py, as Azure ML v1 does.",
            where="--ic/--inference-config-file",
            fix="Pass --ic inferenceConfig.json (with entryScript), or --es score.py.",
        )
    if request.image_name and request.output_path and not request.deployment:
        raise ConfigError(
            "--image-name names a built image; --output-path builds none.",
            where="--image-name",
            fix="Leave one out (name the image later with `docker build -t NAME`).",
        )
    registry = Registry.open(workspace, create=False)
    try:
        resolved = resolve_models(registry, request.models)
        manifests = _manifests(request, resolved, ic, registry.workspace.name, on_warning)
        result = package_models(
            registry,
            resolved,
            ic,
            output_path=request.output_path,
            image_name=request.image_name,
            server_extras=_server_extras(request.deployment, ic),
            on_progress=on_progress,
        )
    finally:
        registry.close()
    if manifests is not None and request.output_path is not None:
        result["kubernetes"] = write_kubernetes(manifests, request.output_path)
    return result


def _manifests(
    request: PackageRequest,
    models: Sequence[ModelVersion],
    inference: InferenceConfig,
    workspace: str,
    on_warning: Callable[[str], None] | None,
) -> list[dict[str, Any]] | None:
    """The objects to write, checked before anything is packaged; None without a config."""
    dc = request.deployment
    if dc is None:
        if request.service_name is not None:
            raise ConfigError(
                "-n/--name names the service in Kubernetes manifests, which only --dc writes.",
                where="-n/--name",
                fix="Add --dc with an AKS deployment config, or leave -n out.",
            )
        return None
    if request.output_path is None:
        raise ConfigError(
            "--dc writes Kubernetes manifests beside the image's build context, so it needs "
            "--output-path.",
            where="--dc/--deploy-config-file",
            fix="Add --output-path DIR; to deploy to your current kubeconfig context instead, "
            "use `ml model deploy -n NAME -m NAME:N --ic ... --dc ...`.",
        )
    from mlcli.environments import spec_for
    from mlcli.environments.spec import with_server_extras
    from mlcli.targets.manifests import build_manifests, config_notes, export_request

    first = models[0]
    manifest_request = export_request(
        dc,
        service=request.service_name or first.name,
        workspace=workspace,
        models=[(m.name, m.version) for m in models],
        image=request.image_name or f"{first.name}:{first.version}",
        server_env=_server_env(dc, inference),
        environment_key=with_server_extras(spec_for(inference), _server_extras(dc, inference)).key,
    )
    objects = build_manifests(manifest_request)
    for note in config_notes(dc) if on_warning is not None else ():
        on_warning(note)
    return objects


def write_kubernetes(objects: list[dict[str, Any]], output_path: Path) -> dict[str, Any]:
    """Write the manifests to OUTPUT_PATH/kubernetes; what the command's JSON says of them."""
    from mlcli.targets.manifests import SERVICE_PORT, write_manifests

    folder = output_path.absolute() / "kubernetes"
    files = write_manifests(objects, folder)
    service = next(o for o in objects if o["kind"] == "Service")
    namespace = service["metadata"].get("namespace")
    host = f"{service['metadata']['name']}.{namespace or '<namespace>'}.svc.cluster.local"
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    result = {
        "folder": str(folder),
        "files": [f.name for f in files],
        "image": image,
        "namespace": namespace,
        "scoringUri": f"http://{host}:{SERVICE_PORT}/score",
        "applyCommand": f"kubectl apply -f {folder}",
    }
    secret = next((o for o in objects if o["kind"] == "Secret"), None)
    if secret is not None:
        result["getKeysCommand"] = (
            f"kubectl get secret {secret['metadata']['name']} "
            "-o jsonpath='{.data.keys\\.json}' | base64 -d"
        )
    return result


def _server_extras(dc: DeploymentConfig | None, inference: InferenceConfig) -> tuple[str, ...]:
    """The server's optional requirements an AKS config needs in the image (pyarrow for
    model data collection...); none without a config."""
    return server_extras(dc, _server_env(dc, inference)) if dc is not None else ()


def _server_env(dc: DeploymentConfig, inference: InferenceConfig) -> Mapping[str, str]:
    """The server's settings in exported manifests: the packaging shell's telemetry
    variables, the inference config's environment variables, the deployment config's."""
    return {
        **telemetry_settings(dc, os.environ),
        **environment_variables(inference),
        **server_settings(dc),
    }
