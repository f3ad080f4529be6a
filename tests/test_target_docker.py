"""LOCAL and ACI services in real Docker containers: deploy, score, update, delete, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import (
    FAILING_INIT,
    echo_app,
    invoke,
    ml_process,
    ok,
    port_taken,
    post,
    register_factor,
    wait_for,
    write,
)

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.usefixtures("shared_environments", "services_cleanup", "containers_cleanup"),
]


@pytest.fixture
def containers_cleanup(docker_labels: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A label of this test's own on its containers; whatever still runs at the end goes."""
    import docker

    case = f"org.mlcli.test-case={uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MLCLI_DOCKER_LABELS", f"{docker_labels},{case}")
    yield case
    for container in docker.from_env().containers.list(all=True, filters={"label": case}):
        container.remove(force=True)


def _deployment(folder: Path, config: dict) -> str:
    return str(write(folder / "deploymentConfig.json", json.dumps(config)))


def _container(container_id: str):  # -> docker Container
    import docker

    return docker.from_env().containers.get(container_id)


def _gone(container_id: str) -> bool:
    import docker

    try:
        _container(container_id)
    except docker.errors.NotFound:
        return True
    return False


def _image_exists(tag: str) -> bool:
    from mlcli.images import docker_client, find_image

    return find_image(docker_client(), tag) is not None


def test_the_seed_local_config_deploys_scores_updates_and_deletes_a_container(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "factor", 2.0)
    register_factor(tmp_path, "factor", 3.0)
    ic = echo_app(tmp_path)
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})

    deployed = ok("model", "deploy", "-n", "local-svc", "-m", "factor:1", "--ic", ic, "--dc", dc)

    assert (deployed["state"], deployed["computeType"]) == ("Healthy", "LOCAL")
    uri = deployed["scoringUri"]
    assert uri == f"http://127.0.0.1:{deployed['port']}/score"
    assert post(uri, {"data": [1, 2]}).json() == {"result": [2.0, 4.0]}
    first = deployed["serverDetails"]["container"]
    container = _container(first)
    host_config = container.attrs["HostConfig"]
    assert host_config["NetworkMode"] == "host"
    assert host_config["Init"] is True
    assert host_config["RestartPolicy"]["Name"] == "on-failure"
    assert container.labels["org.mlcli.workspace"] == "default"
    assert container.labels["org.mlcli.service"] == "local-svc"
    mounts = {m["Destination"]: m for m in container.attrs["Mounts"]}
    assert mounts["/var/azureml-app/azureml-models/factor/1"]["RW"] is False
    on_process = ok("model", "deploy", "-n", "process-svc", "-m", "factor:1", "--ic", ic)
    assert deployed.keys() == on_process.keys()
    assert deployed["environment"].keys() == on_process["environment"].keys()
    in_container = {k: deployed["environment"][k] for k in ("python", "pythonVersion")}
    assert in_container == {"python": "/opt/mlcli/env/bin/python", "pythonVersion": "3.11"}
    assert Path(on_process["environment"]["python"]).is_file()  # PROCESS: the host's own
    assert deployed["serverDetails"]["python"] == "/opt/mlcli/env/bin/python"
    shown = subprocess.run(
        [sys.executable, "-m", "mlcli", "service", "show", "-n", "local-svc"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["state"] == "Healthy"  # found again by a new ml process
    logs = invoke("service", "get-logs", "-n", "local-svc")
    assert "Ready: listening on http://127.0.0.1" in logs.stdout

    failures: list[str] = []
    updating = threading.Event()

    def keep_scoring() -> None:
        while not updating.is_set():
            try:
                answer = post(uri, {"data": [1]}, timeout=10)
            except OSError as exc:
                failures.append(repr(exc))
                continue
            if answer.status_code != 200:
                failures.append(f"{answer.status_code} {answer.text}")

    scorer = threading.Thread(target=keep_scoring)
    scorer.start()
    try:
        updated = ok("service", "update", "-n", "local-svc", "-m", "factor:2")
    finally:
        updating.set()
        scorer.join()

    assert failures == []
    assert (updated["scoringUri"], updated["models"]) == (uri, ["factor:2"])
    assert post(uri, {"data": [1, 2]}).json() == {"result": [3.0, 6.0]}
    assert _gone(first)
    assert not _image_exists(deployed["serverDetails"]["image"])  # went with its container
    second = updated["serverDetails"]["container"]
    ok("service", "delete", "-n", "local-svc")
    assert _gone(second)
    assert not _image_exists(updated["serverDetails"]["image"])
    assert _image_exists(updated["serverDetails"]["envImage"])  # kept for the next deploy
    assert invoke("service", "show", "-n", "local-svc").exit_code == 3


def test_an_aci_config_runs_locally_with_its_memory_and_cpu_limits_and_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_factor(tmp_path, "factor", 2.0)
    dc = _deployment(
        tmp_path,
        {
            "computeType": "ACI",
            "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 0.5},
            "authEnabled": True,
            "keys": {"primaryKey": "aci-primary-key-1", "secondaryKey": "aci-secondary-key-2"},
        },
    )

    result = invoke(
        "model", "deploy", "-n", "aci-svc", "-m", "factor:1", "--ic", echo_app(tmp_path), "--dc", dc
    )

    assert result.exit_code == 0, result.stderr
    assert "warning: computeType ACI runs as a local Docker container here" in result.stderr
    deployed = json.loads(result.stdout)
    assert (deployed["computeType"], deployed["authEnabled"]) == ("ACI", True)
    host_config = _container(deployed["serverDetails"]["container"]).attrs["HostConfig"]
    assert host_config["Memory"] == 512 * 1024**2
    assert host_config["NanoCpus"] == 500_000_000
    uri = deployed["scoringUri"]
    assert post(uri, {"data": [1]}).status_code == 401
    for key in ("aci-primary-key-1", "aci-secondary-key-2"):
        answer = post(uri, {"data": [1]}, headers={"Authorization": f"Bearer {key}"})
        assert answer.json() == {"result": [2.0]}
    ok("service", "regen-key", "-n", "aci-svc", "-k", "Primary", "-s", "aci-new-key-3")
    wait_for(  # the server re-reads the keys file (through the mounted folder) within ~1 s
        lambda: post(uri, {"data": [1]}, headers={"Authorization": "Bearer aci-new-key-3"}).ok,
        timeout=15,
        what="the regenerated key to be accepted",
    )
    deploy_log = invoke("service", "get-logs", "-n", "aci-svc", "-i").stdout
    assert "computeType ACI: there is no Azure here" in deploy_log
    with monkeypatch.context() as engine_gone:
        engine_gone.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
        assert ok("service", "list", "--query", "[].state") == ["Unhealthy"]  # not an error


def test_delete_purge_removes_the_env_image_once_no_other_service_runs_on_it(
    tmp_path: Path, docker_base_image: str
) -> None:
    register_factor(tmp_path, "factor", 2.0)
    write(tmp_path / "steps.dockerfile", f"ENV MLCLI_PURGE_TEST={uuid.uuid4().hex}\n")
    ic = echo_app(tmp_path, extraDockerfileSteps="steps.dockerfile")  # an env image of its own
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})
    first = ok("model", "deploy", "-n", "first-svc", "-m", "factor:1", "--ic", ic, "--dc", dc)
    second = ok("model", "deploy", "-n", "second-svc", "-m", "factor:1", "--ic", ic, "--dc", dc)
    env_image = first["serverDetails"]["envImage"]
    assert second["serverDetails"]["envImage"] == env_image

    kept = ok("service", "delete", "-n", "first-svc", "--purge")

    assert _image_exists(env_image)  # second-svc's app image is built on it
    assert {"kind": "env image", "name": env_image, "removed": False} in [
        {k: row[k] for k in ("kind", "name", "removed")} for row in kept["purged"]
    ]
    assert post(second["scoringUri"], {"data": [1]}).json() == {"result": [2.0]}

    purged = ok("service", "delete", "-n", "second-svc", "--purge")

    assert not _image_exists(env_image)
    assert {"kind": "env image", "name": env_image, "removed": True, "reason": None} in purged[
        "purged"
    ]
    assert _image_exists(docker_base_image)  # the base image always stays


def test_init_failing_leaves_the_service_failed_with_the_containers_last_log_lines(
    tmp_path: Path,
) -> None:
    register_factor(tmp_path, "factor", 2.0)
    ic = echo_app(tmp_path, FAILING_INIT)
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})

    result = invoke("model", "deploy", "-n", "broken-svc", "-m", "factor:1", "--ic", ic, "--dc", dc)

    assert result.exit_code == 1
    assert "weights are corrupt" in result.stderr
    shown = ok("service", "show", "-n", "broken-svc")
    assert shown["state"] == "Failed"
    assert "weights are corrupt" in invoke("service", "get-logs", "-n", "broken-svc").stdout
    assert _gone(shown["serverDetails"]["container"])  # stopped, not restarting forever


def test_a_missing_base_image_is_a_clear_error_and_nothing_is_pulled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docker

    asked: list[str] = []
    monkeypatch.setattr(docker.APIClient, "pull", lambda *a, **k: asked.append("pull"))
    monkeypatch.setattr(docker.APIClient, "build", lambda *a, **k: asked.append("build"))
    register_factor(tmp_path, "factor", 2.0)
    ic = echo_app(tmp_path, baseImage="mlcli-test/absent:1")
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})

    result = invoke("model", "deploy", "-n", "based-svc", "-m", "factor:1", "--ic", ic, "--dc", dc)

    assert result.exit_code == 1
    assert "mlcli-test/absent:1" in result.stderr
    assert "never pulls" in result.stderr
    assert "Traceback" not in result.stderr
    assert asked == []
    assert ok("service", "list") == []


def test_a_port_in_use_is_refused_with_exit_4_and_nothing_recorded(tmp_path: Path) -> None:
    register_factor(tmp_path, "factor", 2.0)
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})
    with port_taken() as port:
        result = invoke(
            "model", "deploy", "-n", "clash-svc", "-m", "factor:1", "--ic", echo_app(tmp_path),
            "--dc", dc, "--po", str(port),
        )  # fmt: skip

    assert result.exit_code == 4
    assert f"port {port}" in result.stderr
    assert ok("service", "list") == []


def test_two_deploys_started_at_once_on_one_port_give_it_to_one_service_only(
    tmp_path: Path,
) -> None:
    """The port check and the container's bind are seconds apart (image, container start);
    the deploy holds a claim on the port across them and hands it to the container's server,
    so a second deploy in that window is refused instead of sharing the port."""
    from mlcli.targets.ports import free_port

    register_factor(tmp_path, "factor", 2.0)
    ic = echo_app(tmp_path)
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})
    ok("model", "deploy", "-n", "warm-svc", "-m", "factor:1", "--ic", ic, "--dc", dc)
    ok("service", "delete", "-n", "warm-svc")  # the app image exists: both start at once
    port = str(free_port())

    racing = [
        ml_process("model", "deploy", "-n", name, "-m", "factor:1", "--ic", ic, "--dc", dc,
                   "--po", port)
        for name in ("race-a", "race-b")
    ]  # fmt: skip
    results = [(deploy.wait(timeout=300), deploy.communicate()) for deploy in racing]

    codes = sorted(code for code, _ in results)
    assert codes == [0, 4], results
    refused = next(stderr for code, (_, stderr) in results if code == 4)
    assert f"port {port}" in refused
    assert "Traceback" not in refused
    healthy = [svc["name"] for svc in ok("service", "list") if svc["state"] == "Healthy"]
    assert len(healthy) == 1
    scoring = f"http://127.0.0.1:{port}/score"
    assert post(scoring, {"data": [1]}).json() == {"result": [2.0]}


def test_a_crashed_server_is_restarted_by_docker_and_serves_again(tmp_path: Path) -> None:
    from mlcli.services import Services
    from mlcli.targets.docker import _server_pid

    register_factor(tmp_path, "factor", 2.0)
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})
    deployed = ok(
        "model",
        "deploy",
        "-n",
        "crash-svc",
        "-m",
        "factor:1",
        "--ic",
        echo_app(tmp_path),
        "--dc",
        dc,
    )
    endpoint = Services.open().get("crash-svc").endpoint
    assert endpoint is not None

    os.kill(_server_pid(endpoint), signal.SIGKILL)  # the server process, from the host

    container = _container(deployed["serverDetails"]["container"])
    wait_for(lambda: _container(container.id).attrs["RestartCount"] >= 1, what="a restart")
    wait_for(lambda: ok("service", "show", "-n", "crash-svc")["state"] == "Healthy", what="health")
    assert post(deployed["scoringUri"], {"data": [1]}).json() == {"result": [2.0]}


def test_kill_9_of_the_cli_during_a_local_deploy_leaves_no_container(tmp_path: Path) -> None:
    import docker

    register_factor(tmp_path, "factor", 2.0)
    slow_init = "import time\ndef init():\n    time.sleep(120)\ndef run(data):\n    return data\n"
    ic = echo_app(tmp_path, slow_init)
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})
    client = docker.from_env()
    ours = {"label": ["org.mlcli.service=orphan-svc", "org.mlcli.kind=service"]}
    deploying = ml_process(
        "model", "deploy", "-n", "orphan-svc", "-m", "factor:1", "--ic", ic, "--dc", dc
    )
    started = wait_for(lambda: client.containers.list(filters=ours), what="the container")

    deploying.kill()
    deploying.wait()

    shown = ok("service", "show", "-n", "orphan-svc")
    assert shown["state"] == "Failed"
    assert "interrupted" in shown["error"]["message"]
    assert _gone(started[0].id)


def test_image_prune_keeps_an_image_that_another_mlcli_home_still_names(
    tmp_path: Path, mlcli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two MLCLI_HOMEs on one engine (two users, two CI jobs): a prune in one must not take
    the app image of a service the other still has, though no container runs it right now."""
    register_factor(tmp_path, "factor", 2.0)
    ic = echo_app(tmp_path)
    dc = _deployment(tmp_path, {"computeType": "LOCAL"})
    deployed = ok("model", "deploy", "-n", "owned-svc", "-m", "factor:1", "--ic", ic, "--dc", dc)
    app_image = deployed["serverDetails"]["image"]
    _container(deployed["serverDetails"]["container"]).remove(force=True)  # a reboot, a docker rm
    monkeypatch.setenv("MLCLI_HOME", str(tmp_path / "another-home"))

    pruned = ok("image", "prune")

    assert _image_exists(app_image)
    assert app_image not in [row["tag"] for row in pruned if row["removed"]]
    monkeypatch.setenv("MLCLI_HOME", str(mlcli_home))
    restarted = ok("service", "restart", "-n", "owned-svc")
    assert post(restarted["scoringUri"], {"data": [1]}).json() == {"result": [2.0]}
