"""AKS: the scoring server on a Kubernetes cluster, through the `kubernetes` client.

The cluster is the current context of your kubeconfig ($KUBECONFIG, else ~/.kube/config), or
the context named by the deployment config's computeTargetName (Azure's AKS compute target).
start() builds the service's package image (models inside: a pod has no host folder to mount
them from), pushes it when MLCLI_KUBERNETES_REGISTRY names a registry, and applies the objects
of manifests.py with server-side apply: one Deployment (and autoscaler) per revision, behind
one Service and one keys Secret. Deploy then polls `state` until every replica of the
revision is ready, and stops the previous revision (its Deployment) only after that, so the
Service keeps answering through an update. The scoring URI is the Service's address inside
the cluster (http://<service>.<namespace>.svc.cluster.local:80/score); from outside, use
`kubectl port-forward svc/<service> 8080:80` or an Ingress.

Without a kubeconfig, or with a cluster that does not answer, deploy stops with one paragraph
saying so and how to write the manifests for `kubectl apply` instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import ConflictError, DeployError, MlcliError
from mlcli.progress import Progress, reporter
from mlcli.targets import TOKEN_VARIABLE, Endpoint, LaunchSpec, ServiceState, Target
from mlcli.targets.cluster import (
    TIMEOUT,
    Cluster,
    api_error,
    apply,
    connect,
    ensure_namespace,
    most_telling,
    pod_log,
    revision_pods,
    selector_text,
    stuck,
    unreachable,
)
from mlcli.targets.logfiles import follow_file
from mlcli.targets.manifests import (
    MANAGED_BY,
    SERVICE,
    SERVICE_PORT,
    TOKEN,
    WORKSPACE,
    ManifestRequest,
    build_manifests,
    deployment_name,
    keys_secret_for,
    label_safe,
    replicas,
    revision_selector,
    secret_name,
    service_selector,
)

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig
    from mlcli.images.build import BuiltImage

REGISTRY_VARIABLE = "MLCLI_KUBERNETES_REGISTRY"
_STATE_CACHE_S = 1.0  # deploy polls state() every 0.2 s; the API is asked at most once a second
_state_cache: dict[tuple[str, str, str], tuple[float, str]] = {}
_clusters: dict[str, Cluster] = {}  # by context: connected once per process


# --- the target -------------------------------------------------------------------------------


class KubernetesTarget(Target):
    """Runs each revision of a service as a Deployment of its package image."""

    def __init__(self) -> None:
        self._cluster: Cluster | None = None

    def preflight(self, deployment: DeploymentConfig) -> None:
        """Fail before anything is built when there is no cluster to deploy to."""
        self._cluster = _connect_for(deployment)

    def start(self, spec: LaunchSpec, on_progress: Progress | None = None) -> Endpoint:
        progress = reporter(on_progress)
        dc = spec.deployment
        cluster = self._cluster or _connect_for(dc)
        namespace = dc.namespace or cluster.namespace
        progress(
            f"Kubernetes: context {cluster.context!r} ({cluster.server}), namespace {namespace}"
        )
        _check_ownership(cluster, namespace, spec)
        image = _image_for_cluster(spec, progress)
        keys = json.loads(spec.keys_file.read_text()) if spec.keys_file else None
        request = ManifestRequest(
            service=spec.service,
            workspace=spec.workspace,
            models=spec.models,
            image=image,
            deployment=dc,
            server_env={k: v for k, v in spec.server_env.items() if k != TOKEN_VARIABLE},
            keys=keys,
            namespace=namespace,
            revision=spec.revision,
            token=spec.server_env.get(TOKEN_VARIABLE),
            environment_key=spec.environment.key,
        )
        objects = build_manifests(request)
        name = deployment_name(spec.service, spec.revision)
        handle = {
            "context": cluster.context,
            "namespace": namespace,
            "service": spec.service,
            "workspace": spec.workspace,
            "deployment": name,
            "autoscaler": dc.autoscaler.enabled,
            "replicas": replicas(dc),
            "selector": revision_selector(request),
            "image": image,
            "logFile": str(spec.log_file),
        }
        endpoint = Endpoint(f"{spec.service}.{namespace}.svc.cluster.local", SERVICE_PORT, handle)
        applied = False
        try:
            for obj in objects:
                if obj["kind"] == "Namespace":
                    ensure_namespace(cluster, obj["metadata"]["name"], progress)
                    continue
                apply(cluster, obj)
                applied = True
                progress(f"applied {obj['kind']} {obj['metadata']['name']} in {namespace}")
        except BaseException:
            if applied:
                with contextlib.suppress(MlcliError, *unreachable()):
                    self.stop(endpoint)
            raise
        progress(f"waiting for {replicas(dc)} replica(s) of {name} to be ready")
        return endpoint

    def state(self, endpoint: Endpoint) -> str:
        handle = endpoint.handle
        key = (handle.get("context", ""), handle.get("namespace", ""), handle.get("deployment", ""))
        cached = _state_cache.get(key)
        if cached and time.monotonic() - cached[0] < _STATE_CACHE_S:
            return cached[1]
        try:
            state = _probe(_cluster_of(endpoint), handle)
        except (MlcliError, *unreachable()):  # no kubeconfig, cluster down: not serving
            state = ServiceState.DOWN
        _state_cache[key] = (time.monotonic(), state)
        return state

    def logs(
        self, endpoint: Endpoint, *, tail: int | None = None, follow: bool = False
    ) -> Iterator[str]:
        """The server's output in one pod of the revision (the failing one, if any, else the
        newest), as `kubectl logs deploy/NAME` picks one; its saved log once it is gone."""
        handle = endpoint.handle
        cluster = _cluster_of(endpoint)
        found = revision_pods(cluster, handle)
        if not found:
            log_file = Path(handle.get("logFile", ""))
            if log_file.name and log_file.is_file():
                yield from follow_file(log_file, tail=tail)
            return
        pod = most_telling(found)
        yield from pod_log(cluster, pod, tail=tail, follow=follow)

    def stop(self, endpoint: Endpoint) -> None:
        """Delete the revision's Deployment and autoscaler (its log saved first); the Service
        and keys Secret go with the service's last revision."""
        from kubernetes.client.exceptions import ApiException

        handle = endpoint.handle
        cluster = _cluster_of(endpoint)
        namespace, name = handle["namespace"], handle["deployment"]
        _save_log(self, endpoint)
        for delete in (
            lambda: cluster.autoscaling().delete_namespaced_horizontal_pod_autoscaler(
                name, namespace, _request_timeout=TIMEOUT
            ),
            lambda: cluster.apps().delete_namespaced_deployment(
                name, namespace, propagation_policy="Background", _request_timeout=TIMEOUT
            ),
        ):
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:
                    raise api_error(exc, f"deleting {name} in namespace {namespace}") from exc
        _state_cache.pop((handle.get("context", ""), namespace, name), None)
        selector = service_selector(handle["workspace"], handle["service"])
        remaining = [
            d
            for d in cluster.apps()
            .list_namespaced_deployment(
                namespace, label_selector=selector_text(selector), _request_timeout=TIMEOUT
            )
            .items
            if d.metadata.name != name and not d.metadata.deletion_timestamp
        ]
        if remaining:
            return
        for delete in (
            lambda: cluster.core().delete_namespaced_service(
                handle["service"], namespace, _request_timeout=TIMEOUT
            ),
            lambda: cluster.core().delete_namespaced_secret(
                secret_name(handle["service"]), namespace, _request_timeout=TIMEOUT
            ),
        ):
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:
                    raise api_error(exc, f"deleting {handle['service']}") from exc

    def update_keys(self, endpoint: Endpoint, keys: Mapping[str, str]) -> None:
        """Put new keys in the service's Secret (after `ml service regen-key`); the kubelet
        refreshes the mounted file within about a minute, and the server re-reads it."""
        handle = endpoint.handle
        secret = keys_secret_for(handle["workspace"], handle["service"], handle["namespace"], keys)
        apply(_cluster_of(endpoint), secret)

    def stop_by_token(self, token: str) -> None:
        stop_by_token(token)


def stop_by_token(token: str) -> None:
    """Delete the Deployment and autoscaler a deploy created before it died unrecorded (they
    carry its token as a label), in the current context; quietly nothing without a cluster."""
    from kubernetes.client.exceptions import ApiException

    try:
        cluster = connect(None)
    except MlcliError:
        return
    selector = f"{TOKEN}={label_safe(token)}"
    try:
        found = cluster.apps().list_deployment_for_all_namespaces(
            label_selector=selector, _request_timeout=TIMEOUT
        )
    except ApiException:  # no cluster-wide list rights: look in the context's namespace
        found = cluster.apps().list_namespaced_deployment(
            cluster.namespace, label_selector=selector, _request_timeout=TIMEOUT
        )
    for item in found.items:
        labels = item.metadata.labels or {}
        handle = {
            "context": cluster.context,
            "namespace": item.metadata.namespace,
            "deployment": item.metadata.name,
            "service": labels.get(SERVICE, ""),
            "workspace": labels.get(WORKSPACE, ""),
        }
        target = KubernetesTarget()
        target._cluster = cluster
        with contextlib.suppress(ApiException):
            target.stop(Endpoint("", SERVICE_PORT, handle))


def _check_ownership(cluster: Cluster, namespace: str, spec: LaunchSpec) -> None:
    """Never take over a Service or Secret of the same name that is not this service's."""
    from kubernetes.client.exceptions import ApiException

    wanted = {MANAGED_BY: "mlcli", **service_selector(spec.workspace, spec.service)}
    for kind, read, name in (
        ("Service", cluster.core().read_namespaced_service, spec.service),
        ("Secret", cluster.core().read_namespaced_secret, secret_name(spec.service)),
    ):
        try:
            found = read(name, namespace, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise api_error(exc, f"reading {kind} {name} in namespace {namespace}") from exc
        labels = found.metadata.labels or {}
        if any(labels.get(k) != v for k, v in wanted.items()):
            raise ConflictError(
                f"a {kind} named {name!r} exists in namespace {namespace!r} and is not this "
                f"service's (workspace {spec.workspace!r}).",
                where="-n/--name",
                fix="Deploy under another service name, or into another namespace (the "
                "deployment config's namespace field).",
            )


# --- state ---------------------------------------------------------------------------------------


def _connect_for(dc: DeploymentConfig) -> Cluster:
    cluster = connect(
        dc.compute_target_name, deployment_config=str(dc.path) if dc.path else "deploymentConfig"
    )
    _clusters[cluster.context] = cluster
    return cluster


def _cluster_of(endpoint: Endpoint) -> Cluster:
    context = endpoint.handle.get("context") or ""
    if context not in _clusters:
        _clusters[context] = connect(context or None)
    return _clusters[context]


def _probe(cluster: Cluster, handle: Mapping[str, Any]) -> str:
    from kubernetes.client.exceptions import ApiException

    try:
        deployment = cluster.apps().read_namespaced_deployment_status(
            handle["deployment"], handle["namespace"], _request_timeout=TIMEOUT
        )
    except ApiException as exc:
        if exc.status == 404:
            return ServiceState.DOWN
        raise
    status = deployment.status
    wanted = int(handle.get("replicas") or 1)
    if (status.available_replicas or 0) >= wanted and (
        status.observed_generation or 0
    ) >= deployment.metadata.generation:
        return ServiceState.HEALTHY
    for condition in status.conditions or []:
        if condition.type == "Progressing" and condition.reason == "ProgressDeadlineExceeded":
            return ServiceState.DOWN
    if any(stuck(pod) for pod in revision_pods(cluster, handle)):
        return ServiceState.DOWN
    return ServiceState.TRANSITIONING


def _save_log(target: KubernetesTarget, endpoint: Endpoint) -> None:
    """Keep a revision's server log where `logs` looks once its pods are gone."""
    log_file = Path(endpoint.handle.get("logFile", ""))
    if not log_file.name:
        return
    with contextlib.suppress(MlcliError, *unreachable()):  # a courtesy; the delete goes on
        lines = list(target.logs(endpoint))
        if lines:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            partial = log_file.with_name(f".{log_file.name}.{os.getpid()}")
            partial.write_text("\n".join(lines) + "\n")
            partial.replace(log_file)


# --- the image --------------------------------------------------------------------------------


def _image_for_cluster(spec: LaunchSpec, progress: Progress) -> str:
    """The revision's package image, built here; pushed when MLCLI_KUBERNETES_REGISTRY is set."""
    from mlcli.images import docker_client, labels
    from mlcli.images.app import build_app_image
    from mlcli.images.package import PACKAGE_REPOSITORY

    client = docker_client()
    env_image = _env_image(client, spec, progress)
    image = build_app_image(
        client,
        env_image,
        app_root=spec.app_root,
        layout=spec.layout,
        repository=PACKAGE_REPOSITORY,
        name=f"{spec.workspace}.{spec.service}",
        image_labels=labels(
            kind="package",
            workspace=spec.workspace,
            service=spec.service,
            env=spec.environment.key,
            models=",".join(f"{n}:{v}" for n, v in spec.models),
        ),
        include_models=True,
        on_progress=progress,
    )
    registry = os.environ.get(REGISTRY_VARIABLE, "").strip().rstrip("/")
    if not registry:
        progress(
            f"image {image.tag} is in this machine's Docker engine only: the cluster's nodes "
            f"must have it (a cluster on this engine does; kind: `kind load docker-image "
            f"{image.tag}`), or set {REGISTRY_VARIABLE} to a registry to push it to"
        )
        return image.tag
    return _push(client, image.tag, registry, progress)


def _push(client: Any, tag: str, registry: str, progress: Progress) -> str:
    import docker

    repository, _, version = tag.rpartition(":")
    remote = f"{registry}/{repository.replace('/', '-')}"
    client.api.tag(tag, remote, version)
    progress(f"pushing {remote}:{version}")
    try:
        for event in client.api.push(remote, version, stream=True, decode=True):
            if "error" in event:
                raise DeployError(
                    f"pushing {remote}:{version} failed: {event['error']}",
                    where=f"environment variable {REGISTRY_VARIABLE}",
                    fix="Log in to the registry (`docker login`), or unset the variable and "
                    "load the image into the cluster's nodes yourself.",
                )
            if event.get("status") == "Pushed":
                progress(f"pushed layer {event.get('id', '')}")
    except docker.errors.APIError as exc:
        raise DeployError(
            f"pushing {remote}:{version} failed: {exc.explanation or exc}",
            where=f"environment variable {REGISTRY_VARIABLE}",
        ) from exc
    return f"{remote}:{version}"


def _env_image(client: Any, spec: LaunchSpec, progress: Progress) -> BuiltImage:
    """The env image the package image builds on; an update that keeps the inference config
    reuses the one the service's previous package image was built on (its baseImage and
    extraDockerfileSteps are in it)."""
    import docker

    from mlcli.images import ENV_IMAGE, ENV_KEY, KIND, SERVICE
    from mlcli.images import WORKSPACE as IMAGE_WORKSPACE
    from mlcli.images.base import resolve_base_image
    from mlcli.images.build import BuiltImage
    from mlcli.images.env import ensure_env_image

    if spec.inference is None:
        wanted = [
            f"{KIND}=package",
            f"{IMAGE_WORKSPACE}={spec.workspace}",
            f"{SERVICE}={spec.service}",
        ]
        for image in client.images.list(filters={"label": wanted}):
            with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.NullResource):
                env_image = client.images.get(image.labels.get(ENV_IMAGE, ""))
                if env_image.labels.get(ENV_KEY) == spec.environment.key:
                    return BuiltImage.of(
                        next(iter(env_image.tags), env_image.id), env_image, built=False
                    )
    base = resolve_base_image(spec.inference, on_progress=progress)
    steps = spec.inference.extra_dockerfile_steps if spec.inference else None
    return ensure_env_image(
        client, spec.environment, base=base, extra_steps=steps, on_progress=progress
    )
