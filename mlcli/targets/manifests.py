"""Kubernetes manifests for a service, as plain dicts: what an AKS deployment config means on
any cluster.

    Namespace                (only when the config names one)
    Secret <service>-keys    the keys file the server re-reads (authEnabled; MLCLI_KEYS_FILE)
    PersistentVolumeClaim <service>-collected   ModelDataCollector's files (collectModelData /
                             dataCollection.storageEnabled), mounted at /var/mlcli/collected
    Deployment               the package image (models inside: a cluster has no host to mount
                             them from), replicas, resources, probes, the server's settings
    Service <service>        ClusterIP, port 80 -> the container's 5001, as AKS scoring URIs
    HorizontalPodAutoscaler  autoscaling/v2 on CPU utilisation, when autoscaling is on

`ml model package --dc` writes them as YAML for `kubectl apply -f`; the Kubernetes target
(kubernetes.py) applies the same objects through the API, one Deployment per revision
(<service>-r<N>) behind the one Service, so an update runs beside the old revision until it is
ready, as on PROCESS. Nothing here talks to a cluster or imports the `kubernetes` package.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import ConfigError, ConflictError
from mlcli.images.app import CONTAINER_PORT
from mlcli.targets import COLLECT_DIR_VARIABLE, COLLECT_MOUNT, ComputeType

if TYPE_CHECKING:
    from mlcli.config import DeploymentConfig

SERVICE_PORT = 80  # AKS scoring URIs are plain http on port 80
COLLECTED_STORAGE = "10Gi"  # the collected data's claim; edit the exported YAML for more
COLLECT_VARIABLE = "AML_MODEL_DC_STORAGE_ENABLED"
CONTAINER_NAME = "scoring-server"
KEYS_MOUNT = "/var/mlcli/keys"
KEYS_FILE = "keys.json"
FIELD_MANAGER = "mlcli"

MANAGED_BY = "app.kubernetes.io/managed-by"
WORKSPACE = "mlcli.org/workspace"
SERVICE = "mlcli.org/service"
REVISION = "mlcli.org/revision"
TOKEN = "mlcli.org/token"  # the deploy that created a revision (stop_by_token finds it)
MODELS = "mlcli.org/models"  # annotation: "name:N,name:N"
ENVIRONMENT = "mlcli.org/environment"  # annotation: the environment spec key
MODEL_LABEL_PREFIX = "model.mlcli.org/"  # model.mlcli.org/<name>: "<version>"

# Kubernetes' own name rules (k8s.io/apimachinery/pkg/util/validation).
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # namespaces, most names
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # Service names
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# An image reference: [host[:port]/]path[:tag][@digest], path components lower-case.
IMAGE_REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)


@dataclass(frozen=True, slots=True)
class ManifestRequest:
    """What the manifests of one service (or one revision of it) are made from."""

    service: str
    workspace: str
    models: tuple[tuple[str, int], ...]  # (name, version), in deploy order
    image: str  # a package image (models inside) the cluster's nodes can pull or have
    deployment: DeploymentConfig  # computeType AKS
    server_env: Mapping[str, str]  # the scoring server's settings (deploy.server_settings)
    keys: Mapping[str, str] | None = None  # {"primaryKey", "secondaryKey"} when authEnabled
    namespace: str | None = None  # None: left out, so `kubectl apply -n NS` chooses
    revision: int | None = None  # None (export): one Deployment named after the service
    token: str | None = None
    environment_key: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


# --- names and quantities -------------------------------------------------------------------


def deployment_name(service: str, revision: int | None) -> str:
    return service if revision is None else f"{service}-r{revision}"


def secret_name(service: str) -> str:
    return f"{service}-keys"


def collected_claim_name(service: str) -> str:
    return f"{service}-collected"


def label_safe(text: str) -> str:
    """`text` as a label value (<= 63 characters of [A-Za-z0-9._-], alphanumeric at both
    ends); anything else is shortened or cleaned and gets a hash suffix, so it stays unique."""
    if len(text) <= 63 and LABEL_VALUE.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    head = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:54].strip("-_.")
    return f"{head}-{digest}" if head else digest


def cpu_quantity(cores: float) -> str:
    """Cores as Kubernetes writes them: 0.1 -> "100m", 2 -> "2" (at least 1m)."""
    millicores = max(1, round(cores * 1000))
    return str(millicores // 1000) if millicores % 1000 == 0 else f"{millicores}m"


def memory_quantity(gigabytes: float) -> str:
    """memoryInGB as binary units, as the LOCAL and ACI containers read it: 0.5 -> "512Mi",
    1 -> "1Gi" (rounded up to a whole MiB)."""
    mebibytes = max(1, math.ceil(gigabytes * 1024 - 1e-9))
    return f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes}Mi"


def service_selector(workspace: str, service: str) -> dict[str, str]:
    """The labels the Service routes by: every ready pod of every revision of the service."""
    return {WORKSPACE: label_safe(workspace), SERVICE: service}


def revision_selector(request: ManifestRequest) -> dict[str, str]:
    selector = service_selector(request.workspace, request.service)
    if request.revision is not None:
        selector[REVISION] = str(request.revision)
    if request.token:
        selector[TOKEN] = label_safe(request.token)
    return selector


# --- checks ----------------------------------------------------------------------------------


def check_request(request: ManifestRequest) -> None:
    """Refuse, before anything is written or applied, what a cluster would refuse later."""
    dc = request.deployment
    where = str(dc.path) if dc.path else "deployment config"
    if dc.compute_type != ComputeType.AKS:
        raise ConfigError(
            f"computeType is {dc.compute_type}; Kubernetes manifests are made from an AKS "
            "deployment config.",
            where=f"{where}, field computeType",
            fix='Use a deployment config with "computeType": "AKS" (replicas, autoscaler, '
            "resources and probes are AKS fields).",
        )
    if dc.token_auth_enabled:
        raise ConfigError(
            "tokenAuthEnabled needs Azure Active Directory, which mlcli has no stand-in for.",
            where=f"{where}, field tokenAuthEnabled",
            fix='Use key auth instead: "authEnabled": true (the default on AKS).',
        )
    if len(request.service) > 63 - len("-r9999") or not DNS_1035_LABEL.match(request.service):
        raise ConfigError(
            f"{request.service!r} cannot name Kubernetes objects.",
            where="-n/--name",
            fix="Use 3 to 32 lower-case letters, digits and '-', starting with a letter and "
            "ending with a letter or digit (Azure's rule, which Kubernetes accepts).",
        )
    if request.namespace is not None and (
        len(request.namespace) > 63 or not DNS_1123_LABEL.match(request.namespace)
    ):
        raise ConfigError(
            f"namespace {request.namespace!r} is not a Kubernetes namespace name.",
            where=f"{where}, field namespace",
            fix="Use lower-case letters, digits and '-', 1 to 63 characters, starting and "
            "ending with a letter or digit.",
        )
    if len(request.image) > 255 or not IMAGE_REFERENCE.match(request.image):
        raise ConfigError(
            f"{request.image!r} is not an image reference a cluster can pull.",
            where="--image-name",
            fix="Name the image as [registry/]path[:tag] in lower case, e.g. "
            "registry.example.com/sentiment:1.",
        )
    if request.deployment.auth_enabled and not request.keys:
        raise ConfigError(
            "authEnabled is true but no keys were given to put in the Secret.",
            where=f"{where}, field keys",
        )


def config_notes(dc: DeploymentConfig) -> list[str]:
    """AKS fields the manifests cannot carry, each said once (the CLI shows them)."""
    notes = []
    if dc.ssl_enabled:
        notes.append(
            "sslEnabled: the Service serves plain HTTP inside the cluster; terminate TLS at "
            "your Ingress or load balancer."
        )
    if dc.app_insights_enabled:
        notes.append(
            "appInsightsEnabled: telemetry goes to Application Insights only with a connection "
            "string: set APPLICATIONINSIGHTS_CONNECTION_STRING where `ml` runs (it is written "
            "into the Deployment's environment), or OTEL_EXPORTER_OTLP_ENDPOINT for OTLP."
        )
    if dc.autoscaler.enabled and dc.autoscaler.refresh_period_seconds != 1:
        notes.append(
            "autoScaler.refreshPeriodInSeconds: a HorizontalPodAutoscaler re-evaluates at the "
            "cluster's sync period (15 s by default), not per service."
        )
    return notes


# --- the objects ------------------------------------------------------------------------------


def build_manifests(request: ManifestRequest) -> list[dict[str, Any]]:
    """The service's objects, in the order to apply them (namespace first)."""
    check_request(request)
    dc = request.deployment
    objects: list[dict[str, Any]] = []
    if dc.namespace:
        objects.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": dc.namespace}}
        )
    if dc.auth_enabled:
        objects.append(keys_secret(request))
    if collects_model_data(request):
        objects.append(collected_claim(request))
    objects.append(deployment(request))
    objects.append(service(request))
    if dc.autoscaler.enabled:
        objects.append(autoscaler(request))
    return objects


def keys_secret(request: ManifestRequest) -> dict[str, Any]:
    assert request.keys is not None
    return keys_secret_for(request.workspace, request.service, request.namespace, request.keys)


def keys_secret_for(
    workspace: str, service: str, namespace: str | None, keys: Mapping[str, str]
) -> dict[str, Any]:
    """The Secret holding the keys file, {"primaryKey", "secondaryKey"} as JSON (shared by
    every revision, so it carries the service's labels only)."""
    document = {"primaryKey": keys["primaryKey"], "secondaryKey": keys["secondaryKey"]}
    metadata: dict[str, Any] = {"name": secret_name(service)}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = service_labels(workspace, service)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {KEYS_FILE: base64.b64encode(json.dumps(document).encode()).decode()},
    }


def collects_model_data(request: ManifestRequest) -> bool:
    return request.server_env.get(COLLECT_VARIABLE) == "true"


def collected_claim(request: ManifestRequest) -> dict[str, Any]:
    """The volume ModelDataCollector writes to, shared by every replica and revision (hence
    ReadWriteMany: Azure Files, NFS...) and kept when the service is deleted."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": collected_claim_name(request.service),
            **({"namespace": request.namespace} if request.namespace else {}),
            "labels": _labels(request),
        },
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": COLLECTED_STORAGE}},
        },
    }


def deployment(request: ManifestRequest) -> dict[str, Any]:
    dc = request.deployment
    name = deployment_name(request.service, request.revision)
    pod_labels = {**_labels(request), **revision_selector(request), **_model_labels(request)}
    spec: dict[str, Any] = {}
    if not (dc.autoscaler.enabled and request.revision is None):
        # A live revision starts at full size; an exported Deployment under an autoscaler
        # leaves replicas to it (re-applying the file must not undo its scaling).
        spec["replicas"] = replicas(dc)
    spec.update(
        {
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": revision_selector(request)},
            # Zero-downtime roll-outs of an exported Deployment: a new pod is ready before an
            # old one goes.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": _annotations(request)},
                "spec": _pod_spec(request),
            },
        }
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(request, name, pod_labels),
        "spec": spec,
    }


def service(request: ManifestRequest) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        # Shared by every revision: the service's labels, no revision's annotations.
        "metadata": {
            "name": request.service,
            **({"namespace": request.namespace} if request.namespace else {}),
            "labels": _labels(request),
        },
        "spec": {
            "type": "ClusterIP",
            "selector": service_selector(request.workspace, request.service),
            "ports": [
                {"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }


def autoscaler(request: ManifestRequest) -> dict[str, Any]:
    scaler = request.deployment.autoscaler
    name = deployment_name(request.service, request.revision)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(request, name, {**_labels(request), **revision_selector(request)}),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaler.min_replicas,
            "maxReplicas": scaler.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaler.target_utilization,
                        },
                    },
                }
            ],
        },
    }


def replicas(dc: DeploymentConfig) -> int:
    """numReplicas, or the autoscaler's minimum when it scales (Azure's rule for which)."""
    return dc.autoscaler.min_replicas if dc.autoscaler.enabled else (dc.num_replicas or 1)


def _pod_spec(request: ManifestRequest) -> dict[str, Any]:
    dc = request.deployment
    env = dict(request.server_env)
    env["SERVICE_NAME"] = request.service
    if dc.auth_enabled:
        env["MLCLI_KEYS_FILE"] = f"{KEYS_MOUNT}/{KEYS_FILE}"
    if collects_model_data(request):
        env[COLLECT_DIR_VARIABLE] = COLLECT_MOUNT
    probe = dc.liveness_probe
    http_get = {"path": "/", "port": "http", "scheme": "HTTP"}
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": request.image,
        # Tags are content hashes (or the user's own): a node that has the image uses it,
        # which is also how a local cluster runs an image built on this machine.
        "imagePullPolicy": "IfNotPresent",
        # The entry script, model dir and app root come from the image's environment; the
        # command only overrides the image's `--workers 1` with WORKER_COUNT.
        "command": [
            "python",
            "-m",
            "mlcli.server",
            "--host",
            "0.0.0.0",
            "--port",
            str(CONTAINER_PORT),
        ],
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": [{"name": k, "value": str(v)} for k, v in sorted(env.items())],
        "resources": _resources(dc),
        # Azure's livenessProbeRequirements. Kubernetes requires successThreshold 1 for
        # liveness, so the configured one applies to readiness.
        "livenessProbe": {
            "httpGet": http_get,
            "initialDelaySeconds": probe.initial_delay_seconds,
            "periodSeconds": probe.period_seconds,
            "timeoutSeconds": probe.timeout_seconds,
            "successThreshold": 1,
            "failureThreshold": probe.failure_threshold,
        },
        # Ready once GET / answers (the server listens only after every worker ran init()),
        # with no initial delay: the 310 s above protects a slow init() from being killed,
        # it should not hold back traffic from a server that is up.
        "readinessProbe": {
            "httpGet": dict(http_get),
            "initialDelaySeconds": 0,
            "periodSeconds": min(probe.period_seconds, 5),
            "timeoutSeconds": probe.timeout_seconds,
            "successThreshold": probe.success_threshold,
            "failureThreshold": probe.failure_threshold,
        },
        # Endpoints drop a terminating pod a moment after SIGTERM; keep serving meanwhile.
        "lifecycle": {
            "preStop": {"exec": {"command": ["python", "-c", "import time; time.sleep(5)"]}}
        },
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the scoring server never calls the API
        # SIGTERM drains: requests already running may take up to the scoring timeout.
        "terminationGracePeriodSeconds": max(30, math.ceil(dc.scoring_timeout_ms / 1000) + 10),
        "containers": [container],
    }
    if dc.auth_enabled:
        # The folder, not a subPath: the kubelet swaps the files in place when the Secret
        # changes (a subPath mount would keep the old ones), and the server re-reads them.
        container["volumeMounts"] = [{"name": "keys", "mountPath": KEYS_MOUNT, "readOnly": True}]
        pod["volumes"] = [
            {
                "name": "keys",
                "secret": {"secretName": secret_name(request.service), "defaultMode": 0o440},
            }
        ]
    if collects_model_data(request):
        container.setdefault("volumeMounts", []).append(
            {"name": "collected", "mountPath": COLLECT_MOUNT}
        )
        pod.setdefault("volumes", []).append(
            {
                "name": "collected",
                "persistentVolumeClaim": {"claimName": collected_claim_name(request.service)},
            }
        )
    return pod


def _resources(dc: DeploymentConfig) -> dict[str, dict[str, str]]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if dc.cpu:
        requests["cpu"] = cpu_quantity(dc.cpu)
    if dc.memory_in_gb:
        requests["memory"] = memory_quantity(dc.memory_in_gb)
    if dc.cpu_limit:
        limits["cpu"] = cpu_quantity(dc.cpu_limit)
    if dc.memory_in_gb_limit:
        limits["memory"] = memory_quantity(dc.memory_in_gb_limit)
    if dc.gpu_cores:
        limits["nvidia.com/gpu"] = str(dc.gpu_cores)  # extended resources: limits only
    resources = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def service_labels(workspace: str, service: str) -> dict[str, str]:
    """Every object's labels: Kubernetes' recommended ones and mlcli's service selector."""
    return {
        "app.kubernetes.io/name": service,
        "app.kubernetes.io/component": "scoring",
        MANAGED_BY: "mlcli",
        **service_selector(workspace, service),
    }


def _labels(request: ManifestRequest) -> dict[str, str]:
    return service_labels(request.workspace, request.service)


def _model_labels(request: ManifestRequest) -> dict[str, str]:
    """model.mlcli.org/<name>: "<version>", so `kubectl get pods -l model.mlcli.org/x=2`
    finds what serves a model (names that are no label key are shortened and hashed)."""
    return {
        f"{MODEL_LABEL_PREFIX}{label_safe(name)}": str(version) for name, version in request.models
    }


def _annotations(request: ManifestRequest) -> dict[str, str]:
    annotations = {MODELS: ",".join(f"{n}:{v}" for n, v in request.models)}
    if request.environment_key:
        annotations[ENVIRONMENT] = request.environment_key
    annotations.update(request.annotations)
    return annotations


def _metadata(
    request: ManifestRequest, name: str, labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A revision's object: the service's labels (or `labels`) and what it serves."""
    metadata: dict[str, Any] = {"name": name}
    if request.namespace:
        metadata["namespace"] = request.namespace
    metadata["labels"] = dict(labels) if labels is not None else _labels(request)
    metadata["annotations"] = _annotations(request)
    return metadata


def export_request(
    dc: DeploymentConfig,
    *,
    service: str,
    workspace: str,
    models: Sequence[tuple[str, int]],
    image: str,
    server_env: Mapping[str, str],
    environment_key: str | None = None,
) -> ManifestRequest:
    """The request for manifests to apply by hand: the config's namespace (or none, so
    `kubectl apply -n` chooses), its keys or two new ones, one Deployment named after the
    service."""
    keys = None
    if dc.auth_enabled:
        from mlcli.keys import new_key

        keys = {
            "primaryKey": dc.primary_key or new_key(),
            "secondaryKey": dc.secondary_key or new_key(),
        }
    return ManifestRequest(
        service=service,
        workspace=workspace,
        models=tuple(models),
        image=image,
        deployment=dc,
        server_env=server_env,
        keys=keys,
        namespace=dc.namespace,
        environment_key=environment_key,
    )


# --- files ------------------------------------------------------------------------------------

_FILE_NAMES = {
    "Namespace": "namespace",
    "Secret": "secret",
    "Deployment": "deployment",
    "Service": "service",
    "HorizontalPodAutoscaler": "hpa",
}


def write_manifests(objects: Sequence[Mapping[str, Any]], folder: Path) -> list[Path]:
    """`folder`/NN-kind.yaml, numbered in apply order (`kubectl apply -f FOLDER` reads files in
    name order, so the namespace exists before what goes in it). The folder appears complete
    or not at all; the Secret's file is readable by its owner only."""
    import yaml

    folder = folder.absolute()
    if folder.exists():
        raise ConflictError(
            f"{folder} already exists.", fix="Name a new folder; mlcli never overwrites files."
        )
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        names = []
        for index, obj in enumerate(objects):
            name = f"{index:02d}-{_FILE_NAMES.get(obj['kind'], obj['kind'].lower())}.yaml"
            mode = 0o600 if obj["kind"] == "Secret" else 0o644
            fd = os.open(partial / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                yaml.safe_dump(dict(obj), fh, sort_keys=False)
            names.append(name)
        partial.chmod(0o755)
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return [folder / name for name in names]
