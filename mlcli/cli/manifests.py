"""`ml model package --dc aks.json --output-path DIR`: Kubernetes manifests in DIR/kubernetes,
beside the build context of the image they run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from mlcli.cli.output import warn
from mlcli.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


def manifest_options(f: F) -> F:
    """--dc (an AKS deployment config) and -n (the service's name in the manifests)."""
    f = click.option(
        "-n",
        "--name",
        "service_name",
        help="Service name in the Kubernetes manifests (with --dc); default: the first model's.",
    )(f)
    return click.option(
        "--dc",
        "--deploy-config-file",
        "deploy_config",
        type=click.Path(path_type=Path, dir_okay=False),
        help="An AKS deploymentConfig: also write Kubernetes manifests to "
        "OUTPUT_PATH/kubernetes, for `kubectl apply -f`.",
    )(f)


def prepare_manifests(
    deploy_config: Path | None,
    service_name: str | None,
    models: Sequence[Any],  # registry ModelVersions, in -m order
    inference: Any,  # InferenceConfig
    *,
    output_path: Path | None,
    image_name: str | None,
    workspace: str,
) -> list[dict[str, Any]] | None:
    """The objects to write, checked before anything is packaged; None without --dc."""
    if deploy_config is None:
        if service_name is not None:
            raise ConfigError(
                "-n/--name names the service in Kubernetes manifests, which only --dc writes.",
                where="-n/--name",
                fix="Add --dc with an AKS deployment config, or leave -n out.",
            )
        return None
    if output_path is None:
        raise ConfigError(
            "--dc writes Kubernetes manifests beside the image's build context, so it needs "
            "--output-path.",
            where="--dc/--deploy-config-file",
            fix="Add --output-path DIR; to deploy to your current kubeconfig context instead, "
            "use `ml model deploy -n NAME -m NAME:N --ic ... --dc ...`.",
        )
    from mlcli import config
    from mlcli.environments import spec_for
    from mlcli.environments.spec import with_server_extras
    from mlcli.targets.manifests import build_manifests, config_notes, export_request

    dc = config.load_deployment_config(deploy_config)
    first = models[0]
    server_env = export_server_env(dc, inference)
    request = export_request(
        dc,
        service=service_name or first.name,
        workspace=workspace,
        models=[(m.name, m.version) for m in models],
        image=image_name or f"{first.name}:{first.version}",
        server_env=server_env,
        environment_key=with_server_extras(
            spec_for(inference), manifest_server_extras(deploy_config, inference)
        ).key,
    )
    objects = build_manifests(request)
    for note in config_notes(dc):
        warn(note)
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
    if any(o["kind"] == "Secret" for o in objects):
        secret = next(o for o in objects if o["kind"] == "Secret")["metadata"]["name"]
        result["getKeysCommand"] = (
            f"kubectl get secret {secret} -o jsonpath='{{.data.keys\\.json}}' | base64 -d"
        )
    return result


def manifest_server_extras(deploy_config: Path | None, inference: Any) -> tuple[str, ...]:
    """The server's optional requirements an AKS config needs in the image (pyarrow for
    model data collection...); none without --dc."""
    if deploy_config is None:
        return ()
    from mlcli import config
    from mlcli.deploy.settings import server_extras

    dc = config.load_deployment_config(deploy_config)
    return server_extras(dc, export_server_env(dc, inference))


def export_server_env(dc: Any, inference: Any) -> dict[str, str]:
    """The server's settings in exported manifests: the deploying shell's telemetry
    variables, the inference config's environment variables, the deployment config's."""
    import os

    from mlcli.deploy.settings import server_settings, telemetry_settings

    variables = (inference.environment or {}).get("environmentVariables") or {}
    return {
        **telemetry_settings(dc, os.environ),
        **{str(k): str(v) for k, v in variables.items()},
        **server_settings(dc),
    }
