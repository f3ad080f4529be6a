"""The Python SDK face side by side with the real azureml-core 1.61.0: for every mirrored
callable v1's parameters (names, positional order, defaults) come first, in order, in
mlcli's (anything mlcli adds comes after them, with a default); every public name of v1's
classes exists; CondaDependencies operations leave what v1's leave; Environments made the v1
ways hold the same documents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "sdk" / "signatures.py"

MIRRORED = [
    "core:Workspace.__init__",
    "core:Workspace.from_config",
    "core:Workspace.get",
    "core:Workspace.list",
    "core:Workspace.write_config",
    "core:Workspace.get_details",
    "core.model:Model.__init__",
    "core.model:Model.register",
    "core.model:Model.list",
    "core.model:Model.download",
    "core.model:Model.deploy",
    "core.model:Model.package",
    "core.model:Model.get_model_path",
    "core.model:Model.add_tags",
    "core.model:Model.remove_tags",
    "core.model:Model.add_properties",
    "core.model:Model.update",
    "core.model:Model.update_tags_properties",
    "core.model:Model.delete",
    "core.model:Model.serialize",
    "core.model:Model.deserialize",
    "core.model:Model.print_configuration",
    "core.model:InferenceConfig.__init__",
    "core.model:InferenceConfig.validate_configuration",
    "core.environment:Environment.__init__",
    "core.environment:Environment.from_conda_specification",
    "core.environment:Environment.from_pip_requirements",
    "core.environment:Environment.from_docker_image",
    "core.environment:Environment.from_dockerfile",
    "core.environment:Environment.get",
    "core.environment:Environment.list",
    "core.environment:Environment.register",
    "core.environment:Environment.save_to_directory",
    "core.environment:Environment.load_from_directory",
    "core.environment:Environment.clone",
    "core.environment:Environment.add_private_pip_wheel",
    "core.conda_dependencies:CondaDependencies.__init__",
    "core.conda_dependencies:CondaDependencies.create",
    "core.conda_dependencies:CondaDependencies.add_conda_package",
    "core.conda_dependencies:CondaDependencies.remove_conda_package",
    "core.conda_dependencies:CondaDependencies.add_pip_package",
    "core.conda_dependencies:CondaDependencies.remove_pip_package",
    "core.conda_dependencies:CondaDependencies.add_channel",
    "core.conda_dependencies:CondaDependencies.remove_channel",
    "core.conda_dependencies:CondaDependencies.set_pip_option",
    "core.conda_dependencies:CondaDependencies.remove_pip_option",
    "core.conda_dependencies:CondaDependencies.set_pip_index_url",
    "core.conda_dependencies:CondaDependencies.set_pip_requirements",
    "core.conda_dependencies:CondaDependencies.set_python_version",
    "core.conda_dependencies:CondaDependencies.get_python_version",
    "core.conda_dependencies:CondaDependencies.add_tensorflow_pip_package",
    "core.conda_dependencies:CondaDependencies.add_tensorflow_conda_package",
    "core.conda_dependencies:CondaDependencies.serialize_to_string",
    "core.conda_dependencies:CondaDependencies.save",
    "core.conda_dependencies:CondaDependencies.save_to_file",
    "core.conda_dependencies:CondaDependencies.merge_requirements",
    "core.webservice:Webservice.__init__",
    "core.webservice:Webservice.list",
    "core.webservice:Webservice.wait_for_deployment",
    "core.webservice:Webservice.get_logs",
    "core.webservice:Webservice.get_keys",
    "core.webservice:Webservice.regen_key",
    "core.webservice:Webservice.delete",
    "core.webservice:Webservice.serialize",
    "core.webservice:Webservice.deserialize",
    "core.webservice:Webservice.update_deployment_state",
    "core.webservice:Webservice.check_for_existing_webservice",
    "core.webservice:LocalWebservice.deploy_configuration",
    "core.webservice:LocalWebservice.wait_for_deployment",
    "core.webservice:LocalWebservice.update",
    "core.webservice:LocalWebservice.run",
    "core.webservice:LocalWebservice.get_logs",
    "core.webservice:LocalWebservice.regen_key",
    "core.webservice:LocalWebservice.delete",
    "core.webservice:LocalWebservice.list",
    "core.webservice:LocalWebservice.reload",
    "core.webservice:AciWebservice.deploy_configuration",
    "core.webservice:AciWebservice.update",
    "core.webservice:AciWebservice.run",
    "core.webservice:AciWebservice.add_tags",
    "core.webservice:AciWebservice.remove_tags",
    "core.webservice:AciWebservice.add_properties",
    "core.webservice:AciWebservice.wait_for_deployment",
    "core.webservice:AksWebservice.deploy_configuration",
    "core.webservice:AksWebservice.update",
    "core.webservice:AksWebservice.run",
    "core.webservice:AksWebservice.get_logs",
]


def signatures(python: Path | str, package: str) -> dict:
    done = subprocess.run(
        [str(python), str(SCRIPT), package, *MIRRORED],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.fixture(scope="session")
def both(v1_sdk_python: Path) -> tuple[dict, dict]:
    return signatures(v1_sdk_python, "azureml"), signatures(sys.executable, "mlcli.azureml")


@pytest.mark.slow
@pytest.mark.parametrize("entry", MIRRORED)
def test_v1_parameters_come_first_in_order_with_the_same_defaults(
    both: tuple[dict, dict], entry: str
) -> None:
    v1, ours = both[0][entry], both[1][entry]
    assert isinstance(v1, list), f"the real SDK lacks {entry}: {v1}"
    assert isinstance(ours, list), f"mlcli.azureml lacks {entry}: {ours}"

    assert ours[: len(v1)] == v1
    extra = ours[len(v1) :]
    assert all(kind == "VAR_KEYWORD" or default is not None for _, kind, default in extra), extra


@pytest.mark.slow
def test_every_public_name_of_v1s_classes_exists_in_mlcli(v1_sdk_python: Path) -> None:
    script = str(Path(__file__).parent / "sdk" / "names.py")

    def names(python: Path | str, package: str) -> dict[str, list[str]]:
        done = subprocess.run(
            [str(python), script, package], capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout)

    v1, ours = names(v1_sdk_python, "azureml"), names(sys.executable, "mlcli.azureml")

    missing = {c: sorted(set(v1[c]) - set(ours[c])) for c in v1}
    assert {c: absent for c, absent in missing.items() if absent} == {}


@pytest.mark.slow
def test_conda_dependencies_operations_leave_what_v1_leaves(v1_sdk_python: Path) -> None:
    script = str(Path(__file__).parent / "sdk" / "conda_ops.py")

    def after(python: Path | str, package: str) -> dict:
        done = subprocess.run(
            [str(python), script, package], capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout)

    v1, ours = after(v1_sdk_python, "azureml"), after(sys.executable, "mlcli.azureml")

    # v1 1.61's create() adds pip options naming PyPI itself (the index anyway); mlcli does not.
    v1["create"]["options"] = []
    assert ours == v1


@pytest.mark.slow
def test_environments_made_the_v1_ways_hold_what_v1s_hold(
    v1_sdk_python: Path, tmp_path: Path
) -> None:
    script = str(Path(__file__).parent / "sdk" / "environment_docs.py")

    def made(python: Path | str, package: str) -> dict:
        folder = tmp_path / package
        folder.mkdir()
        done = subprocess.run(
            [str(python), script, package, str(folder)], capture_output=True, text=True, check=True
        )
        return json.loads(done.stdout)

    assert made(sys.executable, "mlcli.azureml") == made(v1_sdk_python, "azureml")
