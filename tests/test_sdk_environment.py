"""mlcli.azureml: CondaDependencies, Environment (files, registered versions), InferenceConfig
and the deploy configurations, checked by the same config core as `ml` and warning about what
this machine does not honour."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcli.azureml._support import MlcliSdkWarning
from mlcli.azureml.core import Environment, Model, Workspace
from mlcli.azureml.core.conda_dependencies import CondaDependencies
from mlcli.azureml.core.model import InferenceConfig
from mlcli.azureml.core.webservice import AciWebservice, AksWebservice, LocalWebservice
from mlcli.azureml.exceptions import UserErrorException, WebserviceException
from mlcli.environments import spec_for

# -- CondaDependencies --------------------------------------------------------------------


def test_a_new_conda_dependencies_is_v1s_default_document() -> None:
    conda = CondaDependencies()

    assert conda.get_python_version() == "3.8.13"
    assert list(conda.pip_packages) == ["azureml-defaults"]
    assert list(conda.conda_channels) == ["anaconda", "conda-forge"]


def test_a_pip_package_added_again_replaces_its_version_as_in_v1() -> None:
    conda = CondaDependencies()
    conda.add_pip_package("keras==2.14.0")
    conda.add_pip_package("keras==2.15.0")
    conda.add_conda_package("python=3.11")

    assert list(conda.pip_packages) == ["azureml-defaults", "keras==2.15.0"]
    assert list(conda.conda_packages) == ["python=3.11"]
    assert conda.get_python_version() == "3.11"


def test_python_cannot_be_removed_nor_an_option_added_as_a_package() -> None:
    conda = CondaDependencies()

    with pytest.raises(UserErrorException, match="python must not be removed"):
        conda.remove_conda_package("python=3.8.13")
    with pytest.raises(UserErrorException, match="Invalid package name"):
        conda.add_pip_package("--pre")


def test_create_and_save_write_a_conda_file_mlcli_reads(tmp_path: Path) -> None:
    conda = CondaDependencies.create(
        pip_packages=["scikit-learn==1.5.0"], conda_packages=["numpy"], python_version="3.11"
    )
    conda.set_pip_option("--extra-index-url https://example.invalid/simple")

    path = conda.save(str(tmp_path / "env.yml"))

    again = CondaDependencies(conda_dependencies_file_path=path)
    assert again == conda
    assert list(again.pip_options) == ["--extra-index-url https://example.invalid/simple"]


def test_a_bad_conda_file_is_one_user_error_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "env.yml"
    bad.write_text("dependencies: [")

    with pytest.raises(UserErrorException, match=r"env\.yml"):
        CondaDependencies(str(bad))


# -- Environment --------------------------------------------------------------------------


def test_environment_has_v1_sections_and_defaults() -> None:
    env = Environment(name="myenv")

    assert env.python.user_managed_dependencies is False
    assert env.python.conda_dependencies.get_python_version() == "3.8.13"
    assert env.docker.base_image.startswith("mcr.microsoft.com/azureml/")
    assert env.environment_variables == {"EXAMPLE_ENV_VAR": "EXAMPLE_VALUE"}


def test_from_conda_specification_and_from_pip_requirements(tmp_path: Path) -> None:
    (tmp_path / "env.yml").write_text(
        "dependencies:\n  - python=3.11\n  - pip:\n      - requests==2.32.3\n"
    )
    (tmp_path / "requirements.txt").write_text("# pinned\nrequests==2.32.3\n")

    conda_env = Environment.from_conda_specification("a", str(tmp_path / "env.yml"))
    pip_env = Environment.from_pip_requirements("b", str(tmp_path / "requirements.txt"))

    assert list(conda_env.python.conda_dependencies.pip_packages) == ["requests==2.32.3"]
    # v1 keeps the file's lines as they are; mlcli's environment builder skips the comment
    assert list(pip_env.python.conda_dependencies.pip_packages) == ["# pinned", "requests==2.32.3"]


def test_register_numbers_versions_and_reuses_an_unchanged_one() -> None:
    ws = Workspace.get("default")
    env = Environment("myenv")

    first = env.register(ws)
    same = env.register(ws)
    env.environment_variables["MODE"] = "fast"
    second = env.register(ws)

    assert (first.version, same.version, second.version) == ("1", "1", "2")
    assert Environment.get(ws, "myenv").environment_variables["MODE"] == "fast"
    assert Environment.get(ws, "myenv", version="1").version == "1"
    assert list(Environment.list(ws)) == ["myenv"]


def test_curated_azure_environments_are_their_pypi_equivalents() -> None:
    curated = Environment.get(Workspace.get("default"), "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu")

    assert "scikit-learn==1.0.*" in curated.python.conda_dependencies.serialize_to_string()
    with pytest.raises(UserErrorException, match="not a curated environment mlcli knows"):
        Environment.get(Workspace.get("default"), "AzureML-Triton-22")


def test_save_to_directory_and_load_from_directory_round_trip(tmp_path: Path) -> None:
    env = Environment("myenv")
    env.python.conda_dependencies.add_pip_package("requests")

    env.save_to_directory(str(tmp_path / "saved"))

    again = Environment.load_from_directory(str(tmp_path / "saved"))
    assert again.python.conda_dependencies == env.python.conda_dependencies
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [
        "azureml_environment.json",
        "conda_dependencies.yml",
    ]


# -- InferenceConfig ----------------------------------------------------------------------


@pytest.fixture
def src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "score.py").write_text("def init():\n    pass\ndef run(d):\n    return d\n")
    return tmp_path / "src"


def test_inference_config_environment_becomes_the_models_environment(src: Path) -> None:
    env = Environment(name="myenv")
    conda = CondaDependencies()
    conda.set_python_version("3.11")
    conda.add_pip_package("requests==2.32.3")
    env.python.conda_dependencies = conda

    config = InferenceConfig(entry_script="score.py", source_directory="src", environment=env)

    core = config._core_config()
    assert core.entry_script == src / "score.py"
    spec = spec_for(core)
    assert spec.python == "3.11"
    assert "requests==2.32.3" in spec.requirements
    assert "azureml-defaults" in spec.skipped_azureml


def test_inference_config_with_a_conda_file_as_the_cli_reads_it(src: Path) -> None:
    (src / "env.yml").write_text("dependencies:\n  - python=3.11\n")

    config = InferenceConfig("score.py", source_directory="src", conda_file="env.yml")

    assert config._core_config().conda_file == src / "env.yml"


def test_a_missing_entry_script_raises_when_the_config_is_made(src: Path) -> None:
    with pytest.raises(WebserviceException, match=r"entryScript: 'nope\.py' does not exist"):
        InferenceConfig(entry_script="nope.py", source_directory="src")


def test_gpu_arguments_are_accepted_with_a_warning(src: Path) -> None:
    with pytest.warns(MlcliSdkWarning, match="enable_gpu"):
        InferenceConfig("score.py", source_directory="src", enable_gpu=True)


def test_azures_default_base_image_means_mlclis_base(src: Path) -> None:
    config = InferenceConfig("score.py", source_directory="src", environment=Environment("e"))

    assert config._document()["environment"]["docker"]["baseImage"] is None


# -- deploy configurations ----------------------------------------------------------------


def test_local_deploy_configuration_is_computetype_local_with_the_port() -> None:
    dc = LocalWebservice.deploy_configuration(port=8890)._core()

    assert (dc.compute_type, dc.port) == ("LOCAL", 8890)


def test_aci_deploy_configuration_maps_v1_names_onto_the_deployment_config() -> None:
    with pytest.warns(MlcliSdkWarning, match="ACI runs as a local Docker container"):
        config = AciWebservice.deploy_configuration(
            cpu_cores=1, memory_gb=2, auth_enabled=True, tags={"a": "b"}, description="d"
        )

    dc = config._core()
    assert (dc.compute_type, dc.cpu, dc.memory_in_gb, dc.auth_enabled) == ("ACI", 1, 2, True)
    assert (dc.tags, dc.description) == ({"a": "b"}, "d")


def test_aks_deploy_configuration_maps_autoscale_probe_and_limits() -> None:
    config = AksWebservice.deploy_configuration(
        autoscale_max_replicas=4,
        replica_max_concurrent_requests=2,
        max_request_wait_time=900,
        period_seconds=5,
        cpu_cores=0.5,
        cpu_cores_limit=1,
        namespace="models",
    )

    dc = config._core()
    assert (dc.compute_type, dc.autoscaler.max_replicas, dc.liveness_probe.period_seconds) == (
        "AKS",
        4,
        5,
    )
    assert (dc.max_concurrent_requests_per_container, dc.max_queue_wait_ms) == (2, 900)
    assert (dc.cpu, dc.cpu_limit, dc.namespace, dc.auth_enabled) == (0.5, 1, "models", True)


def test_mlcli_compute_type_runs_an_aci_config_as_process_and_says_what_it_ignores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLCLI_COMPUTE_TYPE", "PROCESS")

    with pytest.warns(MlcliSdkWarning) as warned:
        config = AciWebservice.deploy_configuration(cpu_cores=1, memory_gb=1, auth_enabled=True)

    assert config._core().compute_type == "PROCESS"
    assert [str(w.message) for w in warned] == [
        "cpu_cores limits containers (LOCAL/ACI); a PROCESS service ignores it.",
        "memory_gb limits containers (LOCAL/ACI); a PROCESS service ignores it.",
    ]


def test_azure_network_settings_are_accepted_with_a_warning() -> None:
    with pytest.warns(MlcliSdkWarning) as warned:
        AciWebservice.deploy_configuration(ssl_enabled=True, vnet_name="corp")

    messages = [str(w.message) for w in warned]
    assert any(m.startswith("AciWebservice.deploy_configuration: ssl_enabled") for m in messages)
    assert any("vnet_name is an Azure network setting" in m for m in messages)


def test_a_bad_value_is_one_error_naming_the_field() -> None:
    with pytest.raises(WebserviceException, match="memoryInGB") as raised:
        AciWebservice.deploy_configuration(memory_gb=-1)

    assert "AciServiceDeploymentConfiguration" in str(raised.value)


def test_the_deployment_document_is_what_the_json_file_would_hold() -> None:
    config = AksWebservice.deploy_configuration(num_replicas=2, auth_enabled=False)

    assert json.loads(json.dumps(config._document())) == {
        "computeType": "AKS",
        "authEnabled": False,
        "numReplicas": 2,
    }


def test_token_auth_is_accepted_with_a_warning_and_keys_stay_on() -> None:
    with pytest.warns(MlcliSdkWarning, match="token_auth_enabled is not honoured"):
        config = AksWebservice.deploy_configuration(token_auth_enabled=True)

    dc = config._core()
    assert (dc.token_auth_enabled, dc.auth_enabled) == (False, True)


def test_a_bad_mlcli_compute_type_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLCLI_COMPUTE_TYPE", "laptop")

    with pytest.raises(WebserviceException, match="MLCLI_COMPUTE_TYPE='laptop'"):
        LocalWebservice.deploy_configuration(port=8890)._core()


@pytest.mark.parametrize(
    "call",
    [
        lambda ws, model, ic: Model.deploy(ws, "svc", model, ic),
        lambda ws, model, ic: Model.deploy(ws, "svc", ["sentiment:1"], ic),
        lambda ws, model, ic: Model.deploy(ws, "svc", [model], {"entryScript": "score.py"}),
        lambda ws, model, ic: Model.deploy(ws, "svc", [model], ic, {"computeType": "LOCAL"}),
        lambda ws, model, ic: InferenceConfig("score.py", environment={"name": "env"}),
    ],
    ids=["model-not-in-a-list", "id-string", "dict-inference", "dict-deployment", "dict-env"],
)
def test_objects_of_the_wrong_kind_raise_webservice_exception(
    call, src: Path, model_dir: Path
) -> None:
    ws = Workspace.get("default")
    model = Model.register(ws, str(model_dir), "sentiment")
    ic = InferenceConfig("score.py", source_directory="src")

    with pytest.raises(WebserviceException, match=r"must (be|come from)"):
        call(ws, model, ic)
