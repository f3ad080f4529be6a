"""Kubernetes manifests from AKS deployment configs: what Kubernetes requires of them, checked
by its rules and by the `kubernetes` client's own models (no cluster needed)."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient
from kubernetes.utils import parse_quantity

from mlcli.config import load_deployment_config
from mlcli.deploy import server_settings
from mlcli.errors import ConfigError, ConflictError
from mlcli.targets.manifests import (
    ManifestRequest,
    build_manifests,
    cpu_quantity,
    export_request,
    label_safe,
    memory_quantity,
    write_manifests,
)

KEYS = {"primaryKey": "a" * 32, "secondaryKey": "b" * 32}
MODEL_CLASSES = {
    ("v1", "Namespace"): "V1Namespace",
    ("v1", "Secret"): "V1Secret",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
}
# k8s.io/apimachinery/pkg/util/validation
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")  # IANA_SVC_NAME, <= 15
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def dc_file(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "aksDeploymentConfig.json"
    path.write_text(json.dumps({"computeType": "AKS", **data}))
    return path


def manifests_for(
    tmp_path: Path, data: dict[str, Any], *, revision: int | None = None, **request: Any
) -> list[dict[str, Any]]:
    """The objects for service `sentiment` serving sentiment:2, from a real config file."""
    dc = load_deployment_config(dc_file(tmp_path, data))
    fields: dict[str, Any] = {
        "service": "sentiment",
        "workspace": "default",
        "models": (("sentiment", 2),),
        "image": "registry.example.com/sentiment:2",
        "deployment": dc,
        "server_env": server_settings(dc),
        "keys": KEYS if dc.auth_enabled else None,
        "namespace": dc.namespace,
        "revision": revision,
    }
    fields.update(request)
    return build_manifests(ManifestRequest(**fields))


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def check_label_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    assert len(name) <= 63, key
    assert QUALIFIED_NAME.match(name), key
    if prefix:
        assert len(prefix) <= 253, key
        assert DNS_1123_SUBDOMAIN.match(prefix), key


def check_labels(labels: dict[str, str]) -> None:
    for key, value in labels.items():
        check_label_key(key)
        assert isinstance(value, str), value
        assert len(value) <= 63, value
        assert LABEL_VALUE.match(value), value


def check_object(obj: dict[str, Any]) -> None:
    """What the API server's validation would refuse, for the kinds mlcli writes."""
    assert (obj["apiVersion"], obj["kind"]) in MODEL_CLASSES
    metadata = obj["metadata"]
    name = metadata["name"]
    if obj["kind"] == "Service":
        assert len(name) <= 63, name
        assert DNS_1035_LABEL.match(name), name
    elif obj["kind"] == "Namespace":
        assert len(name) <= 63, name
        assert DNS_1123_LABEL.match(name), name
    else:
        assert len(name) <= 253, name
        assert DNS_1123_SUBDOMAIN.match(name), name
    if "namespace" in metadata:
        assert DNS_1123_LABEL.match(metadata["namespace"])
    check_labels(metadata.get("labels") or {})
    for key in metadata.get("annotations") or {}:
        check_label_key(key)


def check_pod_template(deployment: dict[str, Any]) -> dict[str, Any]:
    spec = deployment["spec"]
    template_labels = spec["template"]["metadata"]["labels"]
    check_labels(template_labels)
    selector = spec["selector"]["matchLabels"]
    assert selector
    assert selector.items() <= template_labels.items()
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert DNS_1123_LABEL.match(container["name"])
    port_names = {p["name"] for p in container["ports"]}
    assert all(len(n) <= 15 and PORT_NAME.match(n) for n in port_names)
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in port_names
    assert container["livenessProbe"]["successThreshold"] == 1  # Kubernetes' rule
    for variable in container["env"]:
        assert ENV_NAME.match(variable["name"])
        assert isinstance(variable["value"], str)
    requests = container.get("resources", {}).get("requests", {})
    limits = container.get("resources", {}).get("limits", {})
    for resource, quantity in {**requests, **limits}.items():
        assert isinstance(quantity, str), resource
        assert parse_quantity(quantity) > 0, (resource, quantity)
    for resource in requests.keys() & limits.keys():
        assert parse_quantity(limits[resource]) >= parse_quantity(requests[resource])
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        assert mount["name"] in volumes
    return container


def round_trip(obj: dict[str, Any]) -> dict[str, Any]:
    """The object read into the client's model of its kind and written back: required fields
    and types are checked, and a misspelt field would be dropped (so the copy would differ)."""
    client = ApiClient()
    model = client._ApiClient__deserialize(obj, MODEL_CLASSES[obj["apiVersion"], obj["kind"]])
    return client.sanitize_for_serialization(model)


def test_an_autoscaled_aks_config_gives_namespace_secret_deployment_service_and_hpa(
    tmp_path: Path,
) -> None:
    objects = manifests_for(
        tmp_path,
        {
            "autoScaler": {"minReplicas": 2, "maxReplicas": 6, "targetUtilization": 55},
            "containerResourceRequirements": {
                "cpu": 0.5,
                "memoryInGB": 1.5,
                "cpuLimit": 2,
                "memoryInGBLimit": 3,
            },
            "namespace": "ml-prod",
            "keys": KEYS,
        },
    )

    assert [o["kind"] for o in objects] == [
        "Namespace",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
    ]
    for obj in objects:
        check_object(obj)
        assert round_trip(obj) == obj
    kinds = by_kind(objects)
    assert kinds["Namespace"]["metadata"]["name"] == "ml-prod"
    assert {o["metadata"].get("namespace") for o in objects[1:]} == {"ml-prod"}
    container = check_pod_template(kinds["Deployment"])
    assert container["image"] == "registry.example.com/sentiment:2"
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "1536Mi"},
        "limits": {"cpu": "2", "memory": "3Gi"},
    }
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": kinds["Deployment"]["metadata"]["name"],
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 55,
    }
    # The autoscaler owns the replica count of an exported Deployment.
    assert "replicas" not in kinds["Deployment"]["spec"]


def test_the_service_routes_port_80_to_the_pods_named_container_port(tmp_path: Path) -> None:
    kinds = by_kind(manifests_for(tmp_path, {"numReplicas": 3}))

    service, deployment = kinds["Service"], kinds["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    assert container["ports"][0]["containerPort"] == 5001
    assert deployment["spec"]["replicas"] == 3
    assert "HorizontalPodAutoscaler" not in kinds


def test_the_server_gets_the_configs_settings_and_keys_file(tmp_path: Path) -> None:
    kinds = by_kind(
        manifests_for(
            tmp_path,
            {
                "numReplicas": 1,
                "scoringTimeoutMs": 30000,
                "maxConcurrentRequestsPerContainer": 4,
                "maxQueueWaitMs": 250,
                "workers": 2,
            },
        )
    )

    container = check_pod_template(kinds["Deployment"])
    env = {v["name"]: v["value"] for v in container["env"]}
    assert env["SCORING_TIMEOUT_MS"] == "30000"
    assert env["MLCLI_MAX_CONCURRENT_REQUESTS"] == "4"
    assert env["MLCLI_MAX_QUEUE_WAIT_MS"] == "250"
    assert env["WORKER_COUNT"] == "2"
    assert env["SERVICE_NAME"] == "sentiment"
    # The keys file is the Secret, mounted as a folder so updates reach the server.
    mount_dir, _, file_name = env["MLCLI_KEYS_FILE"].rpartition("/")
    (mount,) = container["volumeMounts"]
    assert mount["mountPath"] == mount_dir
    assert mount["readOnly"] is True
    assert "subPath" not in mount
    (volume,) = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert volume["secret"]["secretName"] == kinds["Secret"]["metadata"]["name"]
    stored = json.loads(base64.b64decode(kinds["Secret"]["data"][file_name], validate=True))
    assert set(stored) == {"primaryKey", "secondaryKey"}
    assert all(len(key) >= 16 for key in stored.values())


def test_the_configs_keys_are_the_ones_in_the_secret(tmp_path: Path) -> None:
    kinds = by_kind(manifests_for(tmp_path, {"numReplicas": 1, "keys": KEYS}))

    data = kinds["Secret"]["data"]["keys.json"]
    assert json.loads(base64.b64decode(data, validate=True)) == KEYS


def test_the_server_command_leaves_the_entry_script_to_the_images_environment(
    tmp_path: Path,
) -> None:
    kinds = by_kind(manifests_for(tmp_path, {"numReplicas": 1}))

    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["python", "-m", "mlcli.server"]
    assert "--workers" not in container["command"]  # WORKER_COUNT decides
    assert container["command"][container["command"].index("--port") + 1] == "5001"
    assert container["command"][container["command"].index("--host") + 1] == "0.0.0.0"


def test_probes_follow_azures_liveness_defaults_and_the_configs_values(tmp_path: Path) -> None:
    defaults = by_kind(manifests_for(tmp_path, {"numReplicas": 1}))["Deployment"]
    configured = by_kind(
        manifests_for(
            tmp_path,
            {
                "numReplicas": 1,
                "livenessProbeRequirements": {
                    "periodSeconds": 20,
                    "initialDelaySeconds": 45,
                    "timeoutSeconds": 4,
                    "successThreshold": 2,
                    "failureThreshold": 6,
                },
            },
        )
    )["Deployment"]

    liveness = defaults["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    assert liveness["httpGet"]["path"] == "/"
    assert {k: liveness[k] for k in liveness if k != "httpGet"} == {
        "initialDelaySeconds": 310,
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    container = configured["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["initialDelaySeconds"] == 45
    assert container["livenessProbe"]["periodSeconds"] == 20
    assert container["livenessProbe"]["failureThreshold"] == 6
    assert container["livenessProbe"]["successThreshold"] == 1
    readiness = container["readinessProbe"]
    assert readiness["httpGet"]["path"] == "/"
    assert readiness["initialDelaySeconds"] == 0
    assert readiness["successThreshold"] == 2
    assert readiness["timeoutSeconds"] == 4


def test_aks_defaults_autoscale_with_azures_cpu_and_memory_and_key_auth(tmp_path: Path) -> None:
    request = export_request(
        load_deployment_config(dc_file(tmp_path, {})),
        service="sentiment",
        workspace="default",
        models=[("sentiment", 2)],
        image="sentiment:2",
        server_env={},
    )

    objects = build_manifests(request)

    kinds = by_kind(objects)
    assert "Namespace" not in kinds  # none configured: `kubectl apply -n` chooses
    assert all("namespace" not in o["metadata"] for o in objects)
    assert kinds["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 1
    assert kinds["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 10
    container = check_pod_template(kinds["Deployment"])
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "512Mi"}}
    keys = json.loads(base64.b64decode(kinds["Secret"]["data"]["keys.json"]))
    assert keys["primaryKey"] != keys["secondaryKey"]
    for obj in objects:
        check_object(obj)
        assert round_trip(obj) == obj


def test_auth_disabled_gives_no_secret_and_no_keys_file(tmp_path: Path) -> None:
    kinds = by_kind(manifests_for(tmp_path, {"numReplicas": 1, "authEnabled": False}))

    assert "Secret" not in kinds
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    env = {v["name"] for v in pod["containers"][0]["env"]}
    assert "MLCLI_KEYS_FILE" not in env
    assert "volumes" not in pod
    assert "volumeMounts" not in pod["containers"][0]


def test_data_collection_gets_a_shared_claim_mounted_where_the_server_writes(
    tmp_path: Path,
) -> None:
    objects = manifests_for(
        tmp_path, {"numReplicas": 2, "dataCollection": {"storageEnabled": True}}
    )

    kinds = by_kind(objects)
    claim = kinds["PersistentVolumeClaim"]
    check_object(claim)
    assert round_trip(claim) == claim
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]  # every replica writes
    assert [o["kind"] for o in objects].index("PersistentVolumeClaim") < [
        o["kind"] for o in objects
    ].index("Deployment")
    container = check_pod_template(kinds["Deployment"])
    env = {v["name"]: v["value"] for v in container["env"]}
    assert env["AML_MODEL_DC_STORAGE_ENABLED"] == "true"
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "collected"]
    assert env["MLCLI_COLLECT_DIR"] == mount["mountPath"]
    volumes = kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]
    [volume] = [v for v in volumes if v["name"] == "collected"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_without_data_collection_there_is_no_claim_and_no_collection_setting(
    tmp_path: Path,
) -> None:
    kinds = by_kind(manifests_for(tmp_path, {"numReplicas": 1, "authEnabled": False}))

    assert "PersistentVolumeClaim" not in kinds
    env = {
        v["name"] for v in kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert not env & {"AML_MODEL_DC_STORAGE_ENABLED", "MLCLI_COLLECT_DIR"}


def test_gpu_cores_become_an_nvidia_gpu_limit(tmp_path: Path) -> None:
    kinds = by_kind(manifests_for(tmp_path, {"numReplicas": 1, "gpuCores": 1}))

    container = check_pod_template(kinds["Deployment"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert round_trip(kinds["Deployment"]) == kinds["Deployment"]


def test_a_live_revision_is_its_own_deployment_behind_the_services_selector(
    tmp_path: Path,
) -> None:
    objects = manifests_for(
        tmp_path, {"autoScaler": {"minReplicas": 3}}, revision=4, token="f" * 32
    )

    kinds = by_kind(objects)
    deployment = kinds["Deployment"]
    assert deployment["metadata"]["name"] == "sentiment-r4"
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == "sentiment-r4"
    assert deployment["spec"]["replicas"] == 3  # starts at the autoscaler's minimum
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector["mlcli.org/revision"] == "4"
    # The Service selects every revision, so an old one serves until the new one is ready.
    assert kinds["Service"]["spec"]["selector"].items() < selector.items()
    assert kinds["Service"]["metadata"]["name"] == "sentiment"
    for obj in objects:
        check_object(obj)
        assert round_trip(obj) == obj


def test_labels_name_the_workspace_service_and_every_model(tmp_path: Path) -> None:
    long_name = "a_very_long_model_name_" * 4
    kinds = by_kind(
        manifests_for(
            tmp_path,
            {"numReplicas": 1},
            models=(("sentiment", 2), (long_name, 7), ("_vocab.", 1)),
            workspace="Team.Workspace_1",
        )
    )

    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    check_labels(labels)
    assert labels["mlcli.org/workspace"] == "Team.Workspace_1"
    assert labels["mlcli.org/service"] == "sentiment"
    assert labels["model.mlcli.org/sentiment"] == "2"
    assert labels[f"model.mlcli.org/{label_safe(long_name)}"] == "7"
    assert labels[f"model.mlcli.org/{label_safe('_vocab.')}"] == "1"
    annotations = kinds["Deployment"]["metadata"]["annotations"]
    assert annotations["mlcli.org/models"] == f"sentiment:2,{long_name}:7,_vocab.:1"


def test_label_safe_keeps_valid_values_and_makes_distinct_safe_ones() -> None:
    assert label_safe("sentiment") == "sentiment"
    made = {label_safe(v) for v in ("x" * 70, "x" * 71, "_x_", "-x-", "..")}
    assert len(made) == 5
    assert all(len(v) <= 63 and LABEL_VALUE.match(v) and v for v in made)


@pytest.mark.parametrize(
    ("cores", "quantity"), [(0.1, "100m"), (0.25, "250m"), (1, "1"), (1.5, "1500m"), (4, "4")]
)
def test_cpu_quantities_are_written_as_kubernetes_writes_them(cores: float, quantity: str) -> None:
    assert cpu_quantity(cores) == quantity
    assert float(parse_quantity(quantity)) == pytest.approx(cores)


@pytest.mark.parametrize(
    ("gigabytes", "quantity"), [(0.5, "512Mi"), (1, "1Gi"), (1.5, "1536Mi"), (0.1, "103Mi")]
)
def test_memory_in_gb_is_written_in_binary_units(gigabytes: float, quantity: str) -> None:
    assert memory_quantity(gigabytes) == quantity
    assert parse_quantity(quantity) >= gigabytes * 1024**3


def test_written_files_apply_in_order_and_keep_the_secret_private(tmp_path: Path) -> None:
    objects = manifests_for(tmp_path, {"namespace": "ml-prod", "keys": KEYS})
    folder = tmp_path / "out" / "kubernetes"
    folder.parent.mkdir()

    files = write_manifests(objects, folder)

    assert [f.name for f in files] == sorted(f.name for f in folder.iterdir())
    assert [f.name for f in files] == [
        "00-namespace.yaml",
        "01-secret.yaml",
        "02-deployment.yaml",
        "03-service.yaml",
        "04-hpa.yaml",
    ]
    assert [yaml.safe_load(f.read_text()) for f in files] == objects
    assert stat.S_IMODE(files[1].stat().st_mode) == 0o600


def test_writing_into_an_existing_folder_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    objects = manifests_for(tmp_path, {"numReplicas": 1})
    folder = tmp_path / "kubernetes"
    folder.mkdir()
    (folder / "mine.yaml").write_text("kind: Mine\n")

    with pytest.raises(ConflictError, match="already exists"):
        write_manifests(objects, folder)

    assert [p.name for p in folder.iterdir()] == ["mine.yaml"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_local_config_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "deploymentConfig.json"
    path.write_text('{"computeType": "LOCAL"}')
    dc = load_deployment_config(path)

    with pytest.raises(ConfigError) as caught:
        build_manifests(
            export_request(
                dc, service="s1", workspace="w", models=[("m", 1)], image="m:1", server_env={}
            )
        )

    assert "computeType" in caught.value.where
    assert str(path) in caught.value.where
    assert "AKS" in caught.value.fix


def test_token_auth_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tokenAuthEnabled"):
        manifests_for(tmp_path, {"authEnabled": False, "tokenAuthEnabled": True})


@pytest.mark.parametrize("image", ["Sentiment:1", "sentiment:", "a b", "-x:1", ""])
def test_an_image_a_cluster_cannot_pull_is_refused(tmp_path: Path, image: str) -> None:
    with pytest.raises(ConfigError) as caught:
        manifests_for(tmp_path, {"numReplicas": 1}, image=image)

    assert caught.value.where == "--image-name"


@pytest.mark.parametrize("name", ["Sentiment", "my_model", "9lives", "x" * 60])
def test_a_service_name_kubernetes_refuses_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        manifests_for(tmp_path, {"numReplicas": 1}, service=name)

    assert caught.value.where == "-n/--name"


def test_the_round_trip_check_catches_a_misspelt_field(tmp_path: Path) -> None:
    deployment = by_kind(manifests_for(tmp_path, {"numReplicas": 1}))["Deployment"]
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    probe["initialDelaySecond"] = probe.pop("initialDelaySeconds")

    assert round_trip(deployment) != deployment
