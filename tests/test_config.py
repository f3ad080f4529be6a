"""mlcli.config and schemas/: loading inference and deployment configs, defaults and errors."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from mlcli.cli import ml
from mlcli.config import (
    SCHEMAS_DIR,
    load_deployment_config,
    load_inference_config,
    schema,
)
from mlcli.environments.build import find_uv
from mlcli.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(path: Path, data: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def config_error(load, path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load(path)
    assert err.value.exit_code == 2
    return str(err.value)


# -- deployment config --------------------------------------------------------------------


def test_no_deployment_config_means_process_with_defaults() -> None:
    config = load_deployment_config(None)

    assert config.compute_type == "PROCESS"
    assert config.workers == 1
    assert config.scoring_timeout_ms == 60_000
    assert config.max_concurrent_requests_per_container is None  # the server's own bound
    assert config.auth_enabled is False
    assert config.batching is None


@pytest.mark.parametrize("spelling", ["local", "Local", "LOCAL", "lOcAl"])
def test_compute_type_is_matched_case_insensitively(tmp_path: Path, spelling: str) -> None:
    path = write(tmp_path / "deploymentConfig.json", {"computeType": spelling, "port": 6789})

    config = load_deployment_config(path)

    assert config.compute_type == "LOCAL"
    assert config.port == 6789
    assert config.path == path.resolve()


def test_yaml_deployment_config_is_read_like_json(tmp_path: Path) -> None:
    path = write(
        tmp_path / "deploy.yml",
        "computeType: aci\ncontainerResourceRequirements:\n  cpu: 1\n  memoryInGB: 2\n",
    )

    config = load_deployment_config(path)

    assert (config.compute_type, config.cpu, config.memory_in_gb) == ("ACI", 1, 2)


def test_aci_gets_azures_resource_defaults(tmp_path: Path) -> None:
    config = load_deployment_config(write(tmp_path / "dc.json", {"computeType": "aci"}))

    assert (config.cpu, config.memory_in_gb) == (0.1, 0.5)
    assert config.auth_enabled is False
    assert config.max_queue_wait_ms == 60_000


def test_aks_gets_azures_defaults(tmp_path: Path) -> None:
    config = load_deployment_config(write(tmp_path / "dc.json", {"computeType": "aks"}))

    assert config.auth_enabled is True
    assert config.autoscaler.enabled is True  # numReplicas unset
    assert (config.autoscaler.min_replicas, config.autoscaler.max_replicas) == (1, 10)
    assert config.autoscaler.target_utilization == 70
    assert config.scoring_timeout_ms == 60_000
    assert config.max_concurrent_requests_per_container == 1
    assert config.max_queue_wait_ms == 500
    assert config.liveness_probe.initial_delay_seconds == 310
    assert config.liveness_probe.failure_threshold == 3


def test_aks_with_num_replicas_does_not_autoscale(tmp_path: Path) -> None:
    path = write(tmp_path / "dc.json", {"computeType": "AKS", "numReplicas": 3})

    config = load_deployment_config(path)

    assert config.num_replicas == 3
    assert config.autoscaler.enabled is False


def test_concurrency_is_left_to_the_server_unless_configured(tmp_path: Path) -> None:
    unset = write(tmp_path / "a.json", {"computeType": "process", "workers": 4})
    given = write(
        tmp_path / "b.json", {"computeType": "local", "maxConcurrentRequestsPerContainer": 2}
    )

    assert load_deployment_config(unset).max_concurrent_requests_per_container is None
    assert load_deployment_config(given).max_concurrent_requests_per_container == 2


def test_mlcli_fields_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dc.json",
        {
            "computeType": "PROCESS",
            "maxRequestBodyMB": 5,
            "batching": {"maxBatchSize": 8},
            "keys": {"primaryKey": "p", "secondaryKey": "s"},
            "authEnabled": True,
            "dataCollection": {"storageEnabled": True},
        },
    )

    config = load_deployment_config(path)

    assert config.max_request_bytes == 5 * 1024 * 1024
    assert (config.batching.max_batch_size, config.batching.max_latency_ms) == (8, 10)
    assert (config.primary_key, config.secondary_key) == ("p", "s")
    assert config.data_collection_storage_enabled is True


def test_an_unknown_compute_type_names_the_file_field_and_choices(tmp_path: Path) -> None:
    path = write(tmp_path / "deploymentConfig.json", {"computeType": "LOCL"})

    message = config_error(load_deployment_config, path)

    assert message.startswith(
        f"{path}: computeType: 'LOCL' is not one of PROCESS, LOCAL, ACI, AKS."
    )


def test_a_missing_compute_type_is_named_as_azure_names_it(tmp_path: Path) -> None:
    message = config_error(load_deployment_config, write(tmp_path / "dc.json", {"port": 1}))

    assert "Need to specify computeType" in message


def test_field_errors_name_the_field_path_and_what_is_allowed(tmp_path: Path) -> None:
    path = write(
        tmp_path / "dc.json",
        {
            "computeType": "aks",
            "port": "80",
            "containerResourceRequirements": {"cpu": -1},
            "autoscaler": {},
            "namespace": "Bad_NS",
        },
    )

    message = config_error(load_deployment_config, path)

    assert 'port: "80" is a string; expected an integer' in message
    assert "containerResourceRequirements.cpu: -1 is out of range; it must be more than 0" in (
        message
    )
    assert "unknown field 'autoscaler' (did you mean 'autoScaler'?)" in message
    assert "namespace: 'Bad_NS' is not valid; use lower-case letters" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"authEnabled": True, "tokenAuthEnabled": True}, "one or the other"),
        ({"numReplicas": 2, "autoScaler": {"autoscaleEnabled": True}}, "numReplicas is set"),
        ({"autoScaler": {"minReplicas": 5, "maxReplicas": 2}}, "minReplicas (5) is above"),
        ({"containerResourceRequirements": {"cpu": 2, "cpuLimit": 1}}, "cpuLimit (1) is below"),
    ],
)
def test_contradicting_fields_are_refused(tmp_path: Path, data: dict, expected: str) -> None:
    path = write(tmp_path / "dc.json", {"computeType": "aks", **data})

    assert expected in config_error(load_deployment_config, path)


def test_json_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "dc.json", '{\n  "computeType": "local"\n  "port": 1\n}')

    message = config_error(load_deployment_config, path)

    assert message.startswith(f"{path}: line 3, column 3: Expecting ',' delimiter.")


def test_yaml_syntax_errors_give_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "dc.yaml", "computeType: local\nport: [1\n")

    message = config_error(load_deployment_config, path)

    assert message.startswith(f"{path}: line ")
    assert "Fix the YAML syntax" in message


@pytest.mark.parametrize("content", ["[1, 2]", '"local"', ""])
def test_a_file_that_is_not_an_object_is_refused(tmp_path: Path, content: str) -> None:
    message = config_error(load_deployment_config, write(tmp_path / "dc.yml", content))

    assert "a config file holds an object of fields" in message


def test_a_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    message = config_error(load_deployment_config, tmp_path / "nope.json")

    assert "does not exist" in message


# -- inference config ---------------------------------------------------------------------


def test_inference_paths_resolve_against_source_directory(tmp_path: Path) -> None:
    write(tmp_path / "src" / "score.py", "def init(): pass\n")
    write(tmp_path / "src" / "env.yml", "dependencies: [python=3.11]\n")
    path = write(
        tmp_path / "cfg" / "inferenceConfig.json",
        {
            "entryScript": "score.py",
            "sourceDirectory": "../src",
            "condaFile": "env.yml",
            "runtime": "Python",
        },
    )

    config = load_inference_config(path)

    assert config.entry_script == (tmp_path / "src" / "score.py").resolve()
    assert config.source_directory == (tmp_path / "src").resolve()
    assert config.conda_file == (tmp_path / "src" / "env.yml").resolve()
    assert config.runtime == "python"


def test_inference_paths_without_source_directory_resolve_against_the_file(
    tmp_path: Path,
) -> None:
    write(tmp_path / "score.py", "")
    path = write(tmp_path / "ic.yml", "entryScript: score.py\n")

    assert load_inference_config(path).entry_script == (tmp_path / "score.py").resolve()


def test_an_entry_script_written_relative_to_the_config_file_is_found_too(
    tmp_path: Path,
) -> None:
    write(tmp_path / "src" / "score.py", "")
    path = write(tmp_path / "ic.json", {"entryScript": "src/score.py", "sourceDirectory": "src"})

    assert load_inference_config(path).entry_script == (tmp_path / "src" / "score.py").resolve()


def test_an_environment_makes_the_legacy_fields_ignored(tmp_path: Path) -> None:
    write(tmp_path / "score.py", "")
    path = write(
        tmp_path / "ic.json",
        {
            "entryScript": "score.py",
            "condaFile": "missing-but-ignored.yml",
            "environment": {"name": "myenv", "version": "1"},
        },
    )

    config = load_inference_config(path)

    assert config.conda_file is None
    assert config.environment == {"name": "myenv", "version": "1"}


def test_a_missing_entry_script_names_the_field_and_where_it_looked(tmp_path: Path) -> None:
    path = write(tmp_path / "inferenceConfig.json", {"entryScript": "score.py"})

    message = config_error(load_inference_config, path)

    assert message.startswith(f"{path}: entryScript: 'score.py' does not exist (looked for")
    assert "relative to the config file's folder" in message


def test_an_inference_config_without_entry_script_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "ic.json", {"runtime": "python"})

    assert "missing required field 'entryScript'" in config_error(load_inference_config, path)


def test_an_unknown_runtime_lists_the_allowed_ones(tmp_path: Path) -> None:
    write(tmp_path / "score.py", "")
    path = write(tmp_path / "ic.json", {"entryScript": "score.py", "runtime": "java"})

    message = config_error(load_inference_config, path)

    assert "runtime: 'java' is not one of python, spark-py, python-slim" in message


# -- the schemas themselves ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["inferenceConfig", "deploymentConfig"])
def test_schemas_are_valid_json_schema_2020_12(kind: str) -> None:
    jsonschema.Draft202012Validator.check_schema(schema(kind))
    assert schema(kind)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    ("batching", "expected"),
    [
        (None, {}),  # scripts with run_batch() get the defaults
        ({"maxBatchSize": 8}, {"MLCLI_BATCH_MAX_SIZE": "8", "MLCLI_BATCH_MAX_LATENCY_MS": "10.0"}),
        ({"enabled": False, "maxBatchSize": 8}, {"MLCLI_BATCH": "off"}),
    ],
)
def test_batching_reaches_the_server_as_its_switch_and_sizes(
    tmp_path: Path, batching: dict | None, expected: dict
) -> None:
    from mlcli.deploy.settings import server_settings

    document = {"computeType": "PROCESS"} | ({"batching": batching} if batching else {})
    env = server_settings(load_deployment_config(write(tmp_path / "dc.json", document)))

    assert {k: v for k, v in env.items() if k.startswith("MLCLI_BATCH")} == expected


def test_the_package_reads_the_repos_schemas_folder() -> None:
    assert SCHEMAS_DIR.resolve() == (REPO / "schemas").resolve()


def test_documented_defaults_are_the_loaded_defaults(tmp_path: Path) -> None:
    """Every `default` in the deployment schema is what the loader gives for PROCESS."""
    props = schema("deploymentConfig")["properties"]
    loaded = load_deployment_config(
        write(tmp_path / "dc.json", {"computeType": "process", "batching": {}})
    )
    nested = {
        "autoScaler": loaded.autoscaler,
        "livenessProbeRequirements": loaded.liveness_probe,
        "batching": loaded.batching,
    }
    attr_names = {
        "refreshPeriodInSeconds": "refresh_period_seconds",
        "maxRequestBodyMB": "max_request_body_mb",
        "storageEnabled": "data_collection_storage_enabled",
    }

    def attr(name: str) -> str:
        return attr_names.get(name) or "".join(f"_{c.lower()}" if c.isupper() else c for c in name)

    checked = 0
    for key, spec in props.items():
        for sub_key, sub_spec in (spec.get("properties") or {}).items():
            if "default" in sub_spec and key in nested:
                assert getattr(nested[key], attr(sub_key)) == sub_spec["default"], sub_key
                checked += 1
        if "default" in spec:
            assert getattr(loaded, attr(key)) == spec["default"], key
            checked += 1
    assert checked >= 15


@pytest.mark.slow
def test_an_installed_wheel_ships_the_schemas(tmp_path: Path) -> None:
    """Non-editable installs read the copies the wheel carries (mlcli/schemas -> schemas/)."""
    uv = str(find_uv())
    subprocess.run(
        [uv, "build", "--wheel", "-q", "-o", str(tmp_path / "dist"), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("mlcli-*.whl"))
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = (
        "import mlcli.config as c; print(c.SCHEMAS_DIR);"
        "print(c.load_deployment_config(None).compute_type)"
    )

    done = subprocess.run(
        [
            sys.executable,
            "-I",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path / 'site')!r}); {code}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )

    schemas_dir, compute = done.stdout.split()
    assert schemas_dir == str(tmp_path / "site" / "mlcli" / "schemas")
    assert compute == "PROCESS"
    assert (Path(schemas_dir) / "deploymentConfig.schema.json").read_text() == (
        REPO / "schemas" / "deploymentConfig.schema.json"
    ).read_text()


# -- `ml config validate` -----------------------------------------------------------------


def test_validate_prints_the_config_with_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "deploymentConfig.json", {"computeType": "aks"})

    result = CliRunner().invoke(ml, ["config", "validate", str(path)])

    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["kind"], data["valid"]) == ("deploymentConfig", True)
    assert data["config"]["computeType"] == "AKS"
    assert data["config"]["maxQueueWaitMs"] == 500
    assert data["config"]["containerResourceRequirements"]["memoryInGB"] == 0.5


def test_validate_tells_the_kind_from_the_fields(tmp_path: Path) -> None:
    write(tmp_path / "score.py", "")
    path = write(tmp_path / "my.yml", "entryScript: score.py\n")

    result = CliRunner().invoke(ml, ["config", "validate", str(path), "--query", "kind"])

    assert result.stdout == '"inferenceConfig"\n'


def test_validate_a_bad_file_exits_2_with_one_paragraph(tmp_path: Path) -> None:
    path = write(tmp_path / "deploymentConfig.json", {"computeType": "LOCL"})

    result = subprocess.run(
        [sys.executable, "-m", "mlcli", "config", "validate", str(path)],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {path}: computeType: 'LOCL' is not one of PROCESS, LOCAL, ACI, AKS."
        ' Use one of them; case does not matter ("local" works too).\n'
    )


def test_validate_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(ml, ["config", "validate", str(tmp_path / "nope.json")])

    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_schema_command_prints_the_schema() -> None:
    result = CliRunner().invoke(ml, ["config", "schema", "inference"])

    assert json.loads(result.stdout) == schema("inferenceConfig")
