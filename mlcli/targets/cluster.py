"""The cluster behind computeType AKS: kubeconfig, connection, server-side apply, pods.

`connect` reads the kubeconfig as kubectl does ($KUBECONFIG's files, else ~/.kube/config),
picks the named context or the current one, and checks that the API server answers; every
way that can fail is one DeployError naming the file, the context or the server, and how to
export manifests instead. The rest reads and writes objects for kubernetes.py.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import ConfigError, DeployError
from mlcli.progress import Progress
from mlcli.targets.manifests import FIELD_MANAGER

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

TIMEOUT = (5, 30)  # connect, read (seconds) for every API call but log streams
EXPORT_HINT = (
    "To run it on a cluster you reach some other way, write the manifests and apply them "
    "yourself: `ml model package -m NAME:N --ic inferenceConfig.json --dc "
    "deploymentConfig.json --output-path DIR`, then `kubectl apply -f DIR/kubernetes`."
)
# A container that waits for one of these will not start by itself (DOWN, not STARTING).
STUCK = {
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


# --- the cluster ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cluster:
    """A kubeconfig context, connected and answering."""

    api: ApiClient
    context: str
    namespace: str  # the context's namespace, else "default"
    kubeconfig: str  # the file(s) it came from, for messages
    server: str

    def apps(self) -> Any:
        from kubernetes import client

        return client.AppsV1Api(self.api)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.api)

    def autoscaling(self) -> Any:
        from kubernetes import client

        return client.AutoscalingV2Api(self.api)


def kubeconfig_paths() -> list[Path]:
    """$KUBECONFIG's files (a list, as kubectl reads it), else ~/.kube/config."""
    value = os.environ.get("KUBECONFIG", "")
    if value.strip():
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def connect(context: str | None = None, *, deployment_config: str | None = None) -> Cluster:
    """Load the kubeconfig (the named context, else the current one) and check that the
    cluster answers; one paragraph (DeployError, or ConfigError for an unknown context) when
    there is no kubeconfig, no such context, or no answer.

    `deployment_config` names the config file a deploy came from, for the messages; None
    means an existing service's cluster (`context` is then where it was deployed).
    """
    config_where = deployment_config or "deploymentConfig"
    where = f"{config_where}, field computeType" if deployment_config is not None else ""
    import yaml

    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError as exc:
        raise DeployError(
            "computeType AKS deploys through the `kubernetes` Python package, which is not "
            "installed.",
            where=where,
            fix="Install it with `pip install 'mlcli[kubernetes]'`. " + EXPORT_HINT,
        ) from exc

    paths = kubeconfig_paths()
    existing = [p for p in paths if p.is_file()]
    if not existing:
        shown = os.pathsep.join(str(p) for p in paths)
        raise DeployError(
            f"computeType AKS deploys to a Kubernetes cluster, but there is no kubeconfig: "
            f"{shown} does not exist.",
            where=where,
            fix="Point KUBECONFIG at your cluster's kubeconfig file (`kubectl config view` "
            "shows the one kubectl uses). " + EXPORT_HINT,
        )
    files = os.pathsep.join(str(p) for p in existing)
    try:
        contexts, active = config.list_kube_config_contexts(config_file=files)
    except (ConfigException, OSError, ValueError, yaml.YAMLError) as exc:
        raise DeployError(
            f"the kubeconfig {files} cannot be read: {exc}.",
            where=where,
            fix="Repair it (`kubectl config view` shows what kubectl makes of it). " + EXPORT_HINT,
        ) from exc
    names = [c["name"] for c in contexts or []]
    if context is not None and context not in names:
        if deployment_config is None:
            raise DeployError(
                f"the service was deployed to context {context!r}, which the kubeconfig "
                f"{files} no longer has (its contexts: {', '.join(names) or 'none'}).",
                fix="Point KUBECONFIG at the kubeconfig that has it.",
            )
        raise ConfigError(
            f"computeTargetName {context!r} is not a context of the kubeconfig {files} "
            f"(its contexts: {', '.join(names) or 'none'}).",
            where=f"{config_where}, field computeTargetName (or --ct)",
            fix="Name one of its contexts, or leave computeTargetName out to use the current "
            "context.",
        )
    chosen = next((c for c in contexts or [] if c["name"] == context), None) or active
    if not chosen:
        raise DeployError(
            f"the kubeconfig {files} has no current context.",
            where=where,
            fix="Choose one with `kubectl config use-context NAME`, or name it in the "
            "deployment config's computeTargetName. " + EXPORT_HINT,
        )
    name = chosen["name"]
    try:
        api = config.new_client_from_config(config_file=files, context=name, persist_config=False)
    except (ConfigException, OSError, ValueError) as exc:
        raise DeployError(
            f"context {name!r} of the kubeconfig {files} cannot be used: {exc}.",
            where=where,
            fix=f"Check its cluster, user and credentials with `kubectl --context {name} get "
            "pods`. " + EXPORT_HINT,
        ) from exc
    server = api.configuration.host
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    try:
        # Not read into a model: any answer from the API server will do.
        client.VersionApi(api).get_code(_request_timeout=TIMEOUT, _preload_content=False)
    except unreachable() as exc:
        raise DeployError(
            f"the Kubernetes cluster at {server} (context {name!r} of the kubeconfig {files}) "
            f"is not reachable: {reason(exc)}.",
            where=where,
            fix=f"Check that the cluster runs and that `kubectl --context {name} version` "
            "answers. " + EXPORT_HINT,
        ) from exc
    return Cluster(api, name, namespace, files, server)


# --- applying ----------------------------------------------------------------------------------


def apply(cluster: Cluster, obj: Mapping[str, Any]) -> None:
    """Server-side apply of one object (created, or updated to match), as `kubectl apply
    --server-side --force-conflicts` does."""
    from kubernetes.client.exceptions import ApiException

    kind, name = obj["kind"], obj["metadata"]["name"]
    namespace = obj["metadata"].get("namespace")
    calls = {
        "Secret": cluster.core().patch_namespaced_secret,
        "PersistentVolumeClaim": cluster.core().patch_namespaced_persistent_volume_claim,
        "Service": cluster.core().patch_namespaced_service,
        "Deployment": cluster.apps().patch_namespaced_deployment,
        "HorizontalPodAutoscaler": cluster.autoscaling().patch_namespaced_horizontal_pod_autoscaler,
    }
    try:
        # The client (>= 37) sends a dict under a YAML content type as JSON, which is YAML.
        calls[kind](
            name,
            namespace,
            dict(obj),
            field_manager=FIELD_MANAGER,
            force=True,
            _content_type="application/apply-patch+yaml",
            _request_timeout=TIMEOUT,
        )
    except ApiException as exc:
        raise api_error(exc, f"applying {kind} {name} in namespace {namespace}") from exc


def ensure_namespace(cluster: Cluster, name: str, progress: Progress) -> None:
    """Create the config's namespace when missing (a namespace is never deleted by mlcli)."""
    from kubernetes.client.exceptions import ApiException

    try:
        cluster.core().read_namespace(name, _request_timeout=TIMEOUT)
        return
    except ApiException as exc:
        if exc.status != 404:
            return  # no rights to read namespaces: let the objects' own apply tell
    try:
        cluster.core().create_namespace(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            _request_timeout=TIMEOUT,
        )
        progress(f"created namespace {name}")
    except ApiException as exc:
        if exc.status != 409:  # created meanwhile
            raise api_error(exc, f"creating namespace {name}") from exc


def api_error(exc: Any, doing: str) -> DeployError:
    status = getattr(exc, "status", None)
    message = reason(exc)
    if status in (401, 403):
        return DeployError(
            f"the cluster refused {doing}: {message}.",
            fix="Your kubeconfig user needs rights to manage deployments, services, secrets "
            "and horizontalpodautoscalers there (`kubectl auth can-i create deployments`).",
        )
    return DeployError(f"the cluster refused {doing}: {message}.")


def reason(exc: Any) -> str:
    """The API's own message (its Status body), else the exception's first line."""
    body = getattr(exc, "body", None)
    if body:
        with contextlib.suppress(ValueError, TypeError):
            return str(json.loads(body).get("message") or body).strip()
    reason = getattr(exc, "reason", None)
    if reason is not None and not isinstance(reason, str):
        reason = str(reason)
    text = reason or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


# --- pods ----------------------------------------------------------------------------------------


def unreachable() -> tuple[type[BaseException], ...]:
    """What the client raises when the cluster does not answer, or answers with an error."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    return (ApiException, HTTPError, OSError)


def revision_pods(cluster: Cluster, handle: Mapping[str, Any]) -> list[Any]:
    selector = handle.get("selector") or {}
    if not selector:
        return []
    found = cluster.core().list_namespaced_pod(
        handle["namespace"], label_selector=selector_text(selector), _request_timeout=TIMEOUT
    )
    return [p for p in found.items if not p.metadata.deletion_timestamp]


def stuck(pod: Any) -> str:
    """Why a pod will not serve without a change ("" when it may still): a container that
    crashed and is not serving (init() failed: the server exits 3), or cannot be created."""
    for container in (pod.status and pod.status.container_statuses) or []:
        waiting = container.state and container.state.waiting
        if waiting and waiting.reason in STUCK:
            return f"{waiting.reason}: {waiting.message or ''}".strip(": ")
        if container.restart_count and not container.ready:
            last = container.last_state and container.last_state.terminated
            if last:
                return f"the server exited with code {last.exit_code} ({last.reason})"
            return "the container restarted"
    return ""


def most_telling(pods: list[Any]) -> Any:
    """A failing pod if there is one (its log says why), else the newest."""
    failing = [p for p in pods if stuck(p)]
    if failing:
        return failing[0]
    return max(pods, key=lambda p: p.metadata.creation_timestamp or 0)


def pod_log(cluster: Cluster, pod: Any, *, tail: int | None, follow: bool) -> Iterator[str]:
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    name, namespace = pod.metadata.name, pod.metadata.namespace
    statuses = (pod.status and pod.status.container_statuses) or []
    running = any(s.state and s.state.running for s in statuses)
    restarted = any(s.restart_count for s in statuses)
    options: dict[str, Any] = {"tail_lines": tail} if tail else {}
    try:
        if follow and running:
            stream = watch.Watch().stream(
                cluster.core().read_namespaced_pod_log, name, namespace, follow=True, **options
            )
            yield from stream
            return
        text = cluster.core().read_namespacedpod_log(
            name,
            namespace,
            previous=bool(restarted and not running),
            _request_timeout=TIMEOUT,
            **options,
        )
    except ApiException as exc:
        if exc.status != 400:  # 400: the container has not started, so it has no log yet
            raise api_error(exc, f"reading the log of pod {name}") from exc
        text = ""
    yield from text.splitlines()
    reason = stuck(pod) or pending(pod)
    if reason and not running:
        yield f"pod {name}: {reason}"


def pending(pod: Any) -> str:
    """Why a pod is not running yet, from its conditions (e.g. no node with enough CPU)."""
    for condition in (pod.status and pod.status.conditions) or []:
        if condition.status == "False" and condition.message:
            return f"{condition.reason}: {condition.message}"
    phase = pod.status.phase if pod.status else None
    return f"phase {phase}" if phase and phase != "Running" else ""


def selector_text(selector: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
