"""computeType AKS: `ml model deploy` to a Kubernetes cluster, and what it says without one.

This machine has no cluster, so the tests that deploy for real are marked `kubernetes` and
skip unless MLCLI_TEST_KUBERNETES_CONTEXT names a context of a disposable cluster whose nodes
can run images built here (Docker Desktop, minikube's docker-env, k3s --docker), or that
MLCLI_KUBERNETES_REGISTRY pushes to. The rest check the errors a user meets first.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from deploy_support import aks_app, invoke, ok, without_progress


@pytest.fixture
def app(tmp_path: Path) -> dict[str, str]:
    return aks_app(tmp_path, {"numReplicas": 1})


def kubeconfig(tmp_path: Path, server: str, *, context: str = "test") -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u"}}],
                "current-context": context,
            }
        )
    )
    return path


def assert_one_paragraph(result: Result, code: int) -> str:
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    text = without_progress(result.stderr).strip()
    assert text.startswith("error:")
    assert "Traceback" not in text
    assert "\n\n" not in text  # one paragraph (Rich may wrap it at the terminal's width)
    return " ".join(text.split())


def assert_no_service_recorded() -> None:
    listed = invoke("service", "list")
    assert listed.exit_code == 0, listed.stderr
    assert json.loads(listed.stdout) == []


def test_deploying_without_a_kubeconfig_says_so_and_how_to_export_manifests(
    app: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "no-such-dir" / "config"
    monkeypatch.setenv("KUBECONFIG", str(missing))

    result = invoke(
        "model", "deploy", "-n", "scale-svc", "-m", "scale:1", "--es", app["script"],
        "--dc", app["dc"],
    )  # fmt: skip

    message = assert_one_paragraph(result, 1)
    assert str(missing) in message
    assert "KUBECONFIG" in message
    assert "ml model package" in message
    assert "--output-path" in message
    assert "kubectl apply -f" in message
    assert_no_service_recorded()


def test_deploying_to_a_cluster_that_does_not_answer_names_the_server_and_the_file(
    app: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    server = f"https://127.0.0.1:{free_port}"
    config = kubeconfig(tmp_path, server)
    monkeypatch.setenv("KUBECONFIG", str(config))

    result = invoke(
        "model", "deploy", "-n", "scale-svc", "-m", "scale:1", "--es", app["script"],
        "--dc", app["dc"],
    )  # fmt: skip

    message = assert_one_paragraph(result, 1)
    assert server in message
    assert str(config) in message
    assert "not reachable" in message
    assert "context 'test'" in message
    assert "--output-path" in message
    assert_no_service_recorded()


def test_an_unknown_compute_target_name_lists_the_kubeconfigs_contexts(
    app: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, free_port: int
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path, f"https://127.0.0.1:{free_port}")))
    dc = tmp_path / "prodDeploymentConfig.json"
    dc.write_text(json.dumps({"computeType": "AKS", "computeTargetName": "prod-cluster"}))

    result = invoke(
        "model", "deploy", "-n", "scale-svc", "-m", "scale:1", "--es", app["script"],
        "--dc", str(dc),
    )  # fmt: skip

    message = assert_one_paragraph(result, 2)
    assert "computeTargetName 'prod-cluster'" in message
    assert str(dc) in message
    assert "its contexts: test" in message
    assert_no_service_recorded()


def test_an_unreadable_kubeconfig_is_named(
    app: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text("clusters: [this is: not a kubeconfig\n")
    monkeypatch.setenv("KUBECONFIG", str(config))

    result = invoke(
        "model", "deploy", "-n", "scale-svc", "-m", "scale:1", "--es", app["script"],
        "--dc", app["dc"],
    )  # fmt: skip

    message = assert_one_paragraph(result, 1)
    assert str(config) in message
    assert_no_service_recorded()


# --- on a real cluster (skipped here: no cluster on this machine) --------------------------------


@pytest.fixture
def cluster_namespace(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh namespace on the opted-in test cluster, deleted with everything in it."""
    from mlcli.errors import MlcliError
    from mlcli.targets.cluster import TIMEOUT, connect

    context = os.environ.get("MLCLI_TEST_KUBERNETES_CONTEXT")
    if not context:
        pytest.skip(
            "no Kubernetes cluster to test on: set MLCLI_TEST_KUBERNETES_CONTEXT to a "
            "kubeconfig context of a disposable cluster"
        )
    try:
        cluster = connect(context)
    except MlcliError as exc:
        pytest.skip(f"the test cluster is not reachable: {exc}")
    namespace = f"mlcli-test-{uuid.uuid4().hex[:8]}"
    yield namespace
    cluster.core().delete_namespace(namespace, _request_timeout=TIMEOUT)


def aks_config(tmp_path: Path, namespace: str, **fields: Any) -> str:
    path = tmp_path / "aksDeploymentConfig.json"
    context = os.environ["MLCLI_TEST_KUBERNETES_CONTEXT"]
    data = {"computeType": "AKS", "namespace": namespace, "computeTargetName": context}
    path.write_text(json.dumps({**data, **fields}))
    return str(path)


@pytest.mark.kubernetes
@pytest.mark.docker
@pytest.mark.slow
def test_a_service_deploys_to_the_cluster_is_healthy_updates_and_is_deleted(
    app: dict[str, str], tmp_path: Path, cluster_namespace: str
) -> None:
    from mlcli.targets.cluster import connect

    dc = aks_config(tmp_path, cluster_namespace, numReplicas=2)

    shown = ok(
        "model", "deploy", "-n", "scale-svc", "-m", "scale:1", "--es", app["script"], "--dc", dc
    )

    assert shown["state"] == "Healthy"
    assert shown["computeType"] == "AKS"
    assert shown["scoringUri"] == f"http://scale-svc.{cluster_namespace}.svc.cluster.local:80/score"
    assert shown["authEnabled"] is True
    cluster = connect(os.environ["MLCLI_TEST_KUBERNETES_CONTEXT"])
    deployment = cluster.apps().read_namespaced_deployment("scale-svc-r1", cluster_namespace)
    assert deployment.status.ready_replicas == 2
    logs = invoke("service", "get-logs", "-n", "scale-svc")
    assert "Ready" in logs.stdout

    updated = ok("service", "update", "-n", "scale-svc", "--tm", "5000")

    assert updated["state"] == "Healthy"
    names = {
        d.metadata.name
        for d in cluster.apps().list_namespaced_deployment(cluster_namespace).items
        if not d.metadata.deletion_timestamp
    }
    assert names == {"scale-svc-r2"}

    ok("service", "delete", "-n", "scale-svc")

    assert cluster.core().list_namespaced_service(cluster_namespace).items == []
    assert_no_service_recorded()


@pytest.mark.kubernetes
@pytest.mark.docker
@pytest.mark.slow
def test_an_init_that_fails_on_the_cluster_gives_failed_with_the_pods_log(
    tmp_path: Path, app: dict[str, str], cluster_namespace: str
) -> None:
    script = tmp_path / "broken.py"
    script.write_text("def init():\n    raise RuntimeError('weights are corrupt')\n")
    dc = aks_config(tmp_path, cluster_namespace, numReplicas=1)

    result = invoke(
        "model", "deploy", "-n", "broken-svc", "-m", "scale:1", "--es", str(script), "--dc", dc
    )

    assert result.exit_code == 1
    assert "weights are corrupt" in result.stderr
    shown = ok("service", "show", "-n", "broken-svc")
    assert shown["state"] == "Failed"
    ok("service", "delete", "-n", "broken-svc")


# --- what mlcli sends an API server (a recording server on 127.0.0.1, not a cluster) -----------


@pytest.fixture
def recording_api(free_port: int) -> Iterator[list[dict[str, Any]]]:
    """An HTTP server that answers /version, and records each PATCH and answers it with the
    object sent (as an API server answers an apply): it shows the requests the `kubernetes`
    client sends for mlcli, not what a cluster does with them."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.answer({"major": "1", "minor": "30"})

        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            seen.append(
                {"path": self.path, "contentType": self.headers.get("Content-Type"), "body": body}
            )
            self.answer(json.loads(body))

        def answer(self, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield seen
    server.shutdown()
    server.server_close()


def test_objects_are_sent_as_server_side_apply_patches_as_kubectl_sends_them(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    free_port: int,
    recording_api: list[dict[str, Any]],
) -> None:
    from mlcli.config import load_deployment_config
    from mlcli.targets.cluster import apply, connect
    from mlcli.targets.manifests import ManifestRequest, build_manifests

    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path, f"http://127.0.0.1:{free_port}")))
    dc_path = tmp_path / "aks.json"
    dc_path.write_text(json.dumps({"computeType": "AKS", "namespace": "ml-prod"}))
    dc = load_deployment_config(dc_path)
    keys = {"primaryKey": "p" * 32, "secondaryKey": "s" * 32}
    request = ManifestRequest(
        service="scale-svc",
        workspace="default",
        models=(("scale", 1),),
        image="registry.example.com/scale:1",
        deployment=dc,
        server_env={},
        keys=keys,
        namespace="ml-prod",
        revision=1,
    )
    objects = [o for o in build_manifests(request) if o["kind"] != "Namespace"]
    cluster = connect(None)

    for obj in objects:
        apply(cluster, obj)

    assert [r["path"].partition("?")[0] for r in recording_api] == [
        "/api/v1/namespaces/ml-prod/secrets/scale-svc-keys",
        "/apis/apps/v1/namespaces/ml-prod/deployments/scale-svc-r1",
        "/api/v1/namespaces/ml-prod/services/scale-svc",
        "/apis/autoscaling/v2/namespaces/ml-prod/horizontalpodautoscalers/scale-svc-r1",
    ]
    for sent, obj in zip(recording_api, objects, strict=True):
        query = sent["path"].partition("?")[2]
        assert sorted(query.split("&")) == ["fieldManager=mlcli", "force=true"]
        assert sent["contentType"] == "application/apply-patch+yaml"
        assert json.loads(sent["body"]) == obj  # the object itself, encoded once


def test_regenerated_keys_are_applied_to_the_services_secret(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    free_port: int,
    recording_api: list[dict[str, Any]],
) -> None:
    import base64

    from mlcli.targets import Endpoint
    from mlcli.targets.kubernetes import KubernetesTarget

    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path, f"http://127.0.0.1:{free_port}")))
    handle = {"context": "test", "namespace": "ml-prod", "service": "scale-svc"}
    handle["workspace"] = "default"
    keys = {"primaryKey": "n" * 32, "secondaryKey": "s" * 32}

    KubernetesTarget().update_keys(
        Endpoint("scale-svc.ml-prod.svc.cluster.local", 80, handle), keys
    )

    (sent,) = recording_api
    assert sent["path"].startswith("/api/v1/namespaces/ml-prod/secrets/scale-svc-keys?")
    secret = json.loads(sent["body"])
    assert json.loads(base64.b64decode(secret["data"]["keys.json"])) == keys
    assert secret["metadata"]["labels"]["mlcli.org/service"] == "scale-svc"


def test_aks_flags_are_not_called_ignored(
    app: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))

    result = invoke(
        "model", "deploy", "-n", "scale-svc", "-m", "scale:1", "--es", app["script"],
        "--dc", app["dc"], "--nr", "3", "--namespace", "ml-prod", "--ps", "20",
    )  # fmt: skip

    assert result.exit_code == 1  # no kubeconfig here
    assert "warning" not in result.stderr
