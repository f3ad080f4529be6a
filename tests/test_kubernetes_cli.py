"""`ml model package --dc aks.json --output-path DIR`: Kubernetes manifests beside the build
context, and that the image built from it serves as the manifests run it."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from deploy_support import aks_app, invoke


@pytest.fixture
def app(tmp_path: Path) -> dict[str, str]:
    return aks_app(
        tmp_path,
        {
            "numReplicas": 2,
            "namespace": "ml-prod",
            "scoringTimeoutMs": 20000,
            "containerResourceRequirements": {"cpu": 0.25, "memoryInGB": 0.75},
        },
    )


def package(*args: str) -> Result:
    return invoke("model", "package", "-m", "scale:1", *args)


def test_dc_without_output_path_is_refused_before_packaging(app: dict[str, str]) -> None:
    result = package("--es", app["script"], "--dc", app["dc"])

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--output-path" in result.stderr
    assert "ml model deploy" in " ".join(result.stderr.split())


def test_a_name_without_dc_is_refused(app: dict[str, str], tmp_path: Path) -> None:
    result = package("--es", app["script"], "-n", "svc", "--output-path", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert "--dc" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_local_deployment_config_is_refused_and_nothing_is_written(
    app: dict[str, str], tmp_path: Path
) -> None:
    local = tmp_path / "deploymentConfig.json"
    local.write_text('{"computeType": "LOCAL"}')

    result = package(
        "--es", app["script"], "--dc", str(local), "--output-path", str(tmp_path / "out")
    )

    assert result.exit_code == 2
    assert "computeType" in result.stderr
    assert "AKS" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_service_name_kubernetes_refuses_is_refused_and_nothing_is_written(
    app: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = package(
        "--es", app["script"], "--dc", app["dc"], "-n", "My_Service", "--output-path", str(out)
    )

    assert result.exit_code == 2
    assert "-n/--name" in result.stderr
    assert not out.exists()


def wait_for_health(port: int, container: Any, timeout: float = 90) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        container.reload()
        logs = container.logs().decode(errors="replace")
        assert container.status == "running", logs
        assert time.monotonic() < deadline, f"the container never answered GET /:\n{logs}"
        time.sleep(0.3)


@pytest.mark.docker
@pytest.mark.slow
def test_output_path_holds_manifests_whose_command_and_keys_serve_from_the_built_image(
    app: dict[str, str], tmp_path: Path, docker_labels: str, free_port: int
) -> None:
    import docker
    import requests

    out = tmp_path / "pkg"

    result = package(
        "--es", app["script"], "--dc", app["dc"], "-n", "scale-svc",
        "--image-name", "registry.example.com/scale:1", "--output-path", str(out),
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    written = json.loads(result.stdout)["kubernetes"]
    assert written["folder"] == str(out / "kubernetes")
    assert written["applyCommand"] == f"kubectl apply -f {out / 'kubernetes'}"
    assert written["scoringUri"] == "http://scale-svc.ml-prod.svc.cluster.local:80/score"
    assert written["files"] == [
        "00-namespace.yaml",
        "01-secret.yaml",
        "02-deployment.yaml",
        "03-service.yaml",
    ]
    objects = {
        o["kind"]: o
        for o in (yaml.safe_load((out / "kubernetes" / f).read_text()) for f in written["files"])
    }
    deployment, secret = objects["Deployment"], objects["Secret"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/scale:1"
    assert deployment["spec"]["replicas"] == 2
    assert container["resources"]["requests"] == {"cpu": "250m", "memory": "768Mi"}
    assert (out / "Dockerfile").is_file()

    # The context builds into the image the manifests name; run it as the pod would.
    client = docker.from_env()
    image, _ = client.images.build(path=str(out), tag="registry.example.com/scale:1", rm=True)
    keys = json.loads(base64.b64decode(secret["data"]["keys.json"]))
    mount = container["volumeMounts"][0]["mountPath"]
    keys_dir = tmp_path / "secret-volume"
    keys_dir.mkdir()
    (keys_dir / "keys.json").write_text(json.dumps(keys))
    command = list(container["command"])
    command[command.index("--port") + 1] = str(free_port)
    command[command.index("--host") + 1] = "127.0.0.1"
    key, _, value = docker_labels.partition("=")
    running = client.containers.run(
        image.id,
        command,
        environment={v["name"]: v["value"] for v in container["env"]},
        volumes={str(keys_dir): {"bind": mount, "mode": "ro"}},
        network_mode="host",
        labels={key: value},
        detach=True,
    )
    try:
        wait_for_health(free_port, running)
        uri = f"http://127.0.0.1:{free_port}/score"

        refused = requests.post(uri, json={"data": [1, 2]}, timeout=30)
        answered = requests.post(
            uri,
            json={"data": [1, 2]},
            headers={"Authorization": f"Bearer {keys['secondaryKey']}"},
            timeout=30,
        )

        assert refused.status_code == 401
        assert answered.status_code == 200, answered.text
        assert answered.json() == {"result": [3.0, 6.0]}
    finally:
        running.remove(force=True)
