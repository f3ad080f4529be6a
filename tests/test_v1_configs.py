"""v1 config files as v1 repositories hold them: published examples with nulls, YAML with keys
left empty, and `ml config validate`'s own output fed back to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deploy_support import ECHO_SCORE, invoke, ok, post, register_factor, write

# Azure's own inferenceconfig.json example: unset fields are spelled null.
PUBLISHED_INFERENCE_CONFIG = {
    "entryScript": "score.py",
    "runtime": "python",
    "condaFile": None,
    "extraDockerfileSteps": None,
    "sourceDirectory": None,
    "enableGpu": False,
    "baseImage": None,
    "baseImageRegistry": None,
}

# MLOpsPython's inference_config.yml shape: keys left empty.
MLOPS_INFERENCE_YAML = """\
entryScript: score.py
runtime: python
condaFile:
extraDockerfileSteps:
schemaFile:
sourceDirectory:
enableGpu: False
baseImage:
baseImageRegistry:
"""

AKS_WITH_NULLS = {
    "computeType": "aks",
    "autoScaler": {"autoscaleEnabled": None, "minReplicas": 1, "maxReplicas": None},
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": None},
    "numReplicas": None,
    "namespace": None,
    "keys": None,
    "tags": {"team": "", "stage": "dev"},
}


def validated(path: Path, *extra: str) -> dict:
    """`ml config validate` of a file: its parsed config (every default filled in)."""
    return ok("config", "validate", str(path), *extra)["config"]


def test_azures_published_inference_config_with_nulls_is_valid(tmp_path: Path) -> None:
    write(tmp_path / "score.py", ECHO_SCORE)
    path = write(tmp_path / "inferenceconfig.json", json.dumps(PUBLISHED_INFERENCE_CONFIG))

    config = validated(path)

    assert config["entryScript"] == str(tmp_path / "score.py")
    assert "baseImage" not in config  # null: not set, as v1 read it
    assert "sourceDirectory" not in config


def test_a_yaml_inference_config_with_empty_keys_is_valid(tmp_path: Path) -> None:
    write(tmp_path / "score.py", ECHO_SCORE)
    path = write(tmp_path / "inference_config.yml", MLOPS_INFERENCE_YAML)

    config = validated(path)

    assert config["entryScript"] == str(tmp_path / "score.py")
    assert config["enableGpu"] is False
    assert "schemaFile" not in config


def test_nulls_in_a_deployment_config_take_the_defaults_even_nested(tmp_path: Path) -> None:
    path = write(tmp_path / "deploymentconfig.json", json.dumps(AKS_WITH_NULLS))

    config = validated(path)

    assert config["containerResourceRequirements"] == {"cpu": 0.5, "memoryInGB": 0.5}
    assert config["autoScaler"]["autoscaleEnabled"] is True  # AKS, no numReplicas
    assert config["autoScaler"]["maxReplicas"] == 10
    assert config["tags"] == {"team": "", "stage": "dev"}  # a tag's empty value is a value


def test_an_empty_string_for_an_optional_path_means_not_set(tmp_path: Path) -> None:
    write(tmp_path / "score.py", ECHO_SCORE)
    config = {"entryScript": "score.py", "sourceDirectory": "", "condaFile": ""}
    path = write(tmp_path / "inferenceConfig.json", json.dumps(config))

    assert "condaFile" not in validated(path)


def test_a_null_required_field_is_still_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path / "inferenceConfig.json", json.dumps({"entryScript": None}))

    result = invoke("config", "validate", str(path))

    assert result.exit_code == 2
    assert "entryScript" in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "document",
    [
        {"computeType": "process"},
        {"computeType": "local", "port": 32267},
        {"computeType": "aci", "containerResourceRequirements": {"cpu": 1, "memoryInGB": 2}},
        {"computeType": "aks", "numReplicas": 2, "batching": {"maxBatchSize": 8}},
        {
            "computeType": "AKS",
            "autoScaler": {"autoscaleEnabled": True, "maxReplicas": 4},
            "authEnabled": False,
            "tokenAuthEnabled": True,
            "keys": {"primaryKey": "a", "secondaryKey": "b"},
            "containerResourceRequirements": {"cpu": 0.5, "cpuLimit": 1},
            "livenessProbeRequirements": {"periodSeconds": 5},
            "namespace": "ml",
            "dataCollection": {"storageEnabled": True},
            "location": "westeurope",
            "description": "all of it",
        },
    ],
    ids=["process", "local", "aci", "aks", "aks-full"],
)
def test_validates_own_output_is_a_valid_deployment_config(tmp_path: Path, document) -> None:
    first = validated(write(tmp_path / "deploymentConfig.json", json.dumps(document)))

    again = validated(write(tmp_path / "again.json", json.dumps(first)), "--kind", "deployment")

    assert again == first


def test_validates_own_output_is_a_valid_inference_config(tmp_path: Path) -> None:
    write(tmp_path / "src" / "score.py", ECHO_SCORE)
    write(tmp_path / "src" / "env.yml", "dependencies:\n  - python=3.11\n")
    document = {"entryScript": "score.py", "sourceDirectory": "src", "condaFile": "env.yml"}
    first = validated(write(tmp_path / "inferenceConfig.json", json.dumps(document)))

    again = validated(write(tmp_path / "again.json", json.dumps(first)), "--kind", "inference")

    assert again == first
    assert first["sourceDirectory"] == str(tmp_path / "src")


@pytest.mark.slow
def test_a_published_config_with_nulls_deploys_on_process(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 2)
    write(tmp_path / "score.py", ECHO_SCORE)
    ic = write(tmp_path / "inferenceconfig.json", json.dumps(PUBLISHED_INFERENCE_CONFIG))
    dc = write(
        tmp_path / "deploymentconfig.json",
        json.dumps({"computeType": "process", "port": None, "keys": None, "tags": None}),
    )

    deployed = ok(
        "model", "deploy", "-n", "nulls", "-m", "scale:1", "--ic", str(ic), "--dc", str(dc)
    )

    assert deployed["state"] == "Healthy"
    assert post(deployed["scoringUri"], {"data": [1, 2]}).json() == {"result": [2.0, 4.0]}
