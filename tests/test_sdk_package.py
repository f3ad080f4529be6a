"""Model.package through mlcli.azureml: a build context saved to a folder, or an image in the
local engine, made by the same core as `ml model package` (Docker)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from deploy_support import ECHO_SCORE, write

from mlcli.azureml.core import Environment, Model, Workspace
from mlcli.azureml.core.conda_dependencies import CondaDependencies
from mlcli.azureml.core.model import InferenceConfig

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.usefixtures("shared_environments", "docker_labels"),
]


@pytest.fixture
def packaged_inputs(tmp_path: Path) -> tuple[Workspace, Model, InferenceConfig]:
    ws = Workspace.get("default")
    model = Model.register(ws, str(write(tmp_path / "m" / "factor.txt", "4.0")), "factor")
    write(tmp_path / "src" / "score.py", ECHO_SCORE)
    env = Environment("package-env")
    env.python.conda_dependencies = CondaDependencies.create(python_version="3.11")
    config = InferenceConfig("score.py", source_directory=str(tmp_path / "src"), environment=env)
    return ws, model, config


def test_generate_dockerfile_gives_a_context_that_save_copies_out(
    packaged_inputs: tuple[Workspace, Model, InferenceConfig], tmp_path: Path
) -> None:
    ws, model, config = packaged_inputs

    package = Model.package(ws, [model], config, generate_dockerfile=True)
    package.wait_for_creation(show_output=True)
    package.save(str(tmp_path / "saved"))

    saved = tmp_path / "saved"
    assert (saved / "Dockerfile").is_file()
    assert (saved / "app" / "azureml-models" / "factor" / "1" / "factor.txt").read_text() == "4.0"
    assert (saved / "base" / "rootfs.tar.gz").is_file()


def test_without_generate_dockerfile_the_image_is_in_the_local_engine(
    packaged_inputs: tuple[Workspace, Model, InferenceConfig],
) -> None:
    import docker

    ws, model, config = packaged_inputs
    name = f"mlcli-test/sdk-package-{uuid.uuid4().hex[:8]}"

    package = Model.package(ws, [model], config, image_name=name, image_label="v1")

    assert package.location == f"{name}:v1"
    assert docker.from_env().images.get(f"{name}:v1").labels
