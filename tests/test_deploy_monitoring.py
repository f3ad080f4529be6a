"""Deploying with monitoring on: what the server is told (collection, App Insights, OTLP), the
packages its environment gets only then, and a PROCESS service sending real telemetry."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import deploy_echo, post, register_factor, wait_for, write
from otlp_receiver import Receiver, attributes

from mlcli.config import deployment_config_from_dict
from mlcli.deploy.settings import (
    collection_settings,
    server_extras,
    server_settings,
    telemetry_settings,
)
from mlcli.environments import minimal_spec
from mlcli.environments.spec import with_server_extras
from mlcli.paths import Workspace


def dc(**fields):
    return deployment_config_from_dict({"computeType": "PROCESS", **fields}, None)


def test_nothing_of_monitoring_is_asked_for_by_default() -> None:
    config = dc()
    env = server_settings(config)

    assert not {"AML_MODEL_DC_STORAGE_ENABLED", "AML_APP_INSIGHTS_ENABLED"} & set(env)
    assert server_extras(config, env) == ()
    assert collection_settings(config, Workspace.named(), "svc") == {}
    assert with_server_extras(minimal_spec(), ()) == minimal_spec()


@pytest.mark.parametrize(
    "fields", [{"collectModelData": True}, {"dataCollection": {"storageEnabled": True}}]
)
def test_either_spelling_of_data_collection_turns_it_on_with_pyarrow(fields: dict) -> None:
    config = dc(**fields)
    env = server_settings(config)

    assert env["AML_MODEL_DC_STORAGE_ENABLED"] == "true"
    assert server_extras(config, env) == ("collect",)
    spec = with_server_extras(minimal_spec(), ("collect",))
    assert any(r.startswith("pyarrow") for r in spec.requirements)
    assert spec.key != minimal_spec().key
    where = collection_settings(config, Workspace.named("ws2"), "svc")
    assert where["MLCLI_COLLECT_DIR"] == str(Workspace.named("ws2").collected_dir / "svc")
    assert where["MLCLI_COLLECT_WORKSPACE"] == "ws2"


@pytest.mark.parametrize(
    ("numpy", "older_pyarrow"),
    [("numpy==1.26.4", True), ("numpy<2", True), ("numpy==1.26.*", True),
     ("numpy>=1.20", False), ("numpy==2.1.0", False)],
)  # fmt: skip
def test_an_environment_pinning_numpy_1_gets_a_pyarrow_that_imports_with_it(
    numpy: str, older_pyarrow: bool
) -> None:
    spec = dataclasses.replace(minimal_spec(), requirements=(*minimal_spec().requirements, numpy))

    requirements = with_server_extras(spec, ("collect",)).requirements

    assert ("pyarrow<26" in requirements) is older_pyarrow


def test_app_insights_needs_a_connection_string_for_its_exporter() -> None:
    config = dc(appInsightsEnabled=True)
    shell = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k", "HOME": "/root"}

    env = {**telemetry_settings(config, shell), **server_settings(config)}

    assert env["AML_APP_INSIGHTS_ENABLED"] == "true"
    assert env["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "InstrumentationKey=k"
    assert "HOME" not in env
    assert server_extras(config, env) == ("telemetry", "azure-monitor")
    assert server_extras(config, server_settings(config)) == ()  # no string: nothing to send


def test_an_otlp_endpoint_in_the_shell_goes_to_the_server_without_app_insights() -> None:
    config = dc()
    shell = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "x"}

    env = {**telemetry_settings(config, shell), **server_settings(config)}

    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4318"
    assert env["OTEL_TRACES_SAMPLER"] == "x"
    assert server_extras(config, env) == ("telemetry",)


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_a_process_service_sends_spans_over_otlp_and_to_app_insights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    key = "00000000-0000-0000-0000-000000000002"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        f"InstrumentationKey={key};IngestionEndpoint={receiver.url}/",
    )
    register_factor(tmp_path, "scale", 3)
    config = write(tmp_path / "dc.json", json.dumps({"computeType": "PROCESS",
                                                     "appInsightsEnabled": True}))  # fmt: skip
    uri = deploy_echo(tmp_path, "traced", "--dc", str(config))["scoringUri"]

    reply = post(uri, {"data": [1, 2]}, headers={"x-ms-client-request-id": "c-1"})

    request_id = reply.headers["x-request-id"]
    [(_, span)] = receiver.wait_for(
        lambda: [s for s in receiver.spans() if attributes(s[1]).get("Request Id") == request_id],
        timeout=30,
    )
    values = attributes(span)
    assert values["Service Name"] == "traced"
    assert values["Client Request Id"] == "c-1"
    assert values["Models"] == "scale:1"
    [envelope] = wait_for(
        lambda: [
            e
            for e in receiver.envelopes()
            if e["data"]["baseData"].get("properties", {}).get("Request Id") == request_id
        ],
        what="the request in App Insights",
    )
    assert envelope["iKey"] == key
    assert envelope["data"]["baseType"] == "RequestData"
    receiver.server.shutdown()


def test_an_update_keeps_collection_and_app_insights_as_deployed() -> None:
    from mlcli.deploy.settings import deployment_from_settings, settings_doc

    config = dc(collectModelData=True, appInsightsEnabled=True)

    kept = deployment_from_settings(settings_doc(config))

    assert kept.data_collection_storage_enabled is True
    assert kept.app_insights_enabled is True
    assert deployment_from_settings(settings_doc(dc())).data_collection_storage_enabled is False


@pytest.fixture
def containers_cleanup(docker_labels: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import docker

    case = f"org.mlcli.test-case={uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("MLCLI_DOCKER_LABELS", f"{docker_labels},{case}")
    yield case
    for container in docker.from_env().containers.list(all=True, filters={"label": case}):
        container.remove(force=True)


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup", "containers_cleanup")
def test_a_local_container_gets_the_shells_otlp_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    register_factor(tmp_path, "scale", 3)
    config = write(tmp_path / "dc.json", json.dumps({"computeType": "LOCAL"}))
    uri = deploy_echo(tmp_path, "boxed-traced", "--dc", str(config))["scoringUri"]

    reply = post(uri, {"data": [1]})

    request_id = reply.headers["x-request-id"]
    [(_, span)] = receiver.wait_for(
        lambda: [s for s in receiver.spans() if attributes(s[1]).get("Request Id") == request_id],
        timeout=60,
    )
    assert attributes(span)["Service Name"] == "boxed-traced"
    receiver.server.shutdown()
