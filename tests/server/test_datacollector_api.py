"""ModelDataCollector's public attributes, as azureml-monitoring 0.1.0a21's constructor sets
them, in this process (debug mode: no writer thread, rows go to stdout)."""

from __future__ import annotations

import pytest

from mlcli.server.v1compat.datacollector import ModelDataCollector


@pytest.fixture
def debug_mode(monkeypatch):
    monkeypatch.setenv("AML_MODEL_DC_DEBUG", "true")
    monkeypatch.delenv("AML_MODEL_DC_STORAGE_ENABLED", raising=False)
    return monkeypatch


def test_a_deployed_collector_names_its_service_workspace_and_compute(debug_mode) -> None:
    debug_mode.setenv("MLCLI_COLLECT_WORKSPACE", "Team-WS")
    debug_mode.setenv("SERVICE_NAME", "svc")
    debug_mode.setenv("COMPUTE_TYPE", "ACI")
    debug_mode.setenv("COMPUTE_NAME", "local")

    collector = ModelDataCollector("best_model", designation="inputs", model_version="3")

    assert (collector.workspace, collector.workspace_name) == ("team-ws", "team-ws")
    assert (collector.service_name, collector.model_name, collector.model_version) == (
        "svc",
        "best_model",
        "3",
    )
    assert (collector.compute_type, collector.compute_name, collector.compute_location) == (
        "ACI",
        "local",
        "",
    )
    assert collector.model_config_map is None
    assert collector.aml_dc_hour_boundary is False
    assert collector.data_collector_storage_path == ""  # debug mode stores nothing


def test_names_given_to_the_constructor_win_over_the_deployment(debug_mode) -> None:
    debug_mode.setenv("MLCLI_COLLECT_WORKSPACE", "team-ws")
    debug_mode.setenv("SERVICE_NAME", "svc")
    debug_mode.setenv("AML_MODEL_DC_BOUNDARY", "hour")

    collector = ModelDataCollector(
        "m", workspace="Sub/RG/Other", webservice_name="mine", model_version="7"
    )

    assert (collector.workspace, collector.workspace_name) == ("sub/rg/other", "default")
    assert collector.service_name == "mine"
    assert collector.aml_dc_hour_boundary is True
    correlations = ModelDataCollector("m", designation="inputs").collect([1])
    assert correlations["$aml_dc_boundary"] == 60
