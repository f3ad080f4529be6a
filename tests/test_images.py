"""mlcli/images: the debootstrap base image, env images holding the host environment, clean-up."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from mlcli.cli.image import image as image_group
from mlcli.errors import DockerUnavailableError, EnvironmentBuildError


def _canonical(requirement: str) -> str:
    name, _, version = requirement.partition("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version}"


def _run(image: str, *command: str) -> str:
    from mlcli.images import docker_client
    from mlcli.images.base import run_once

    status, output = run_once(docker_client(), image, list(command))
    assert status == 0, output
    return output


@pytest.fixture
def minimal_environment():  # -> mlcli.environments.Environment
    from mlcli.environments import ensure_environment, minimal_spec

    return ensure_environment(minimal_spec())


@pytest.mark.docker
def test_base_image_is_a_slim_debian_bookworm_with_python_3_11(docker_base_image: str) -> None:
    from mlcli.images import docker_client

    image = docker_client().images.get(docker_base_image)

    assert image.labels["org.mlcli.kind"] == "base"
    assert image.attrs["Size"] < 150e6
    assert _run(docker_base_image, "python3", "-c", "import sys; print(sys.version)").startswith(
        "3.11."
    )
    assert "Debian GNU/Linux 12 (bookworm)" in _run(docker_base_image, "cat", "/etc/os-release")
    leftovers = _run(docker_base_image, "sh", "-c", "ls /var/lib/apt/lists /usr/share/man")
    assert leftovers.split() == ["/usr/share/man:", "/var/lib/apt/lists:"]


@pytest.mark.docker
def test_build_base_reuses_the_image_the_engine_has(docker_base_image: str) -> None:
    result = CliRunner().invoke(image_group, ["build-base"])

    assert result.exit_code == 0, result.stderr
    assert '"source": "present"' in result.stdout
    assert docker_base_image in result.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_env_image_holds_the_host_environments_exact_packages_compiled(
    docker_labels: str, docker_base_image: str, minimal_environment, tmp_path: Path
) -> None:
    from mlcli.environments import frozen_requirements
    from mlcli.images import docker_client
    from mlcli.images.env import ensure_env_image

    client = docker_client()
    steps = tmp_path / "steps.dockerfile"  # this session's own variant: built here, not reused
    steps.write_text(f"# {docker_labels}\n")

    built = ensure_env_image(client, minimal_environment, base=docker_base_image, extra_steps=steps)

    assert built.built
    installed = {_canonical(line) for line in _run(built.tag, "pip", "freeze").split()}
    assert {_canonical(pin) for pin in frozen_requirements(minimal_environment)} <= installed
    where = _run(built.tag, "python", "-c", "import sys, werkzeug; print(sys.version, werkzeug)")
    assert where.startswith("3.11.")  # Debian's interpreter...
    assert "/opt/mlcli/env/lib/python3.11/site-packages/werkzeug" in where  # ...the env's files
    compiled = "/opt/mlcli/env/lib/python3.11/site-packages/werkzeug/__pycache__"
    assert "__init__.cpython-311.pyc" in _run(built.tag, "ls", compiled)
    again = ensure_env_image(client, minimal_environment, base=docker_base_image, extra_steps=steps)
    assert (again.id, again.built) == (built.id, False)


@pytest.mark.docker
@pytest.mark.slow
def test_an_environment_on_another_python_is_built_again_for_the_images_3_11(
    docker_labels: str, docker_base_image: str
) -> None:
    import dataclasses

    from mlcli.environments import ensure_environment, minimal_spec
    from mlcli.images import docker_client
    from mlcli.images.env import ensure_env_image, image_environment

    environment = ensure_environment(dataclasses.replace(minimal_spec(), python="3.10"))
    progress: list[str] = []

    # Said whether or not an earlier test already built the image (then it is reused).
    source = image_environment(environment, on_progress=progress.append)
    built = ensure_env_image(docker_client(), environment, base=docker_base_image)

    assert environment.python_version.startswith("3.10.")
    assert source.python_version.startswith("3.11.")
    assert built.tag == f"mlcli/env:{environment.key}"  # keyed by the spec as asked
    assert any("built again for 3.11" in line for line in progress)
    assert _run(built.tag, "python", "-c", "import uvloop; print('ok')").strip() == "ok"


@pytest.mark.docker
@pytest.mark.slow
def test_extra_dockerfile_steps_are_applied_under_their_own_tag(
    docker_labels: str, docker_base_image: str, minimal_environment, tmp_path: Path
) -> None:
    from mlcli.images import docker_client
    from mlcli.images.env import ensure_env_image

    steps = tmp_path / "steps.dockerfile"
    steps.write_text("ENV MLCLI_STEP=applied\nRUN echo done > /etc/mlcli-step\n")

    built = ensure_env_image(
        docker_client(), minimal_environment, base=docker_base_image, extra_steps=steps
    )

    assert built.tag.startswith(f"mlcli/env:{minimal_environment.key}-")
    assert _run(built.tag, "sh", "-c", "echo $MLCLI_STEP; cat /etc/mlcli-step").split() == [
        "applied",
        "done",
    ]


def test_extra_dockerfile_steps_may_not_start_a_new_stage(tmp_path: Path) -> None:
    from mlcli.images.env import read_extra_steps

    steps = tmp_path / "steps.dockerfile"
    steps.write_text("RUN true\nFROM ubuntu:22.04\n")

    with pytest.raises(EnvironmentBuildError, match="FROM"):
        read_extra_steps(steps)


@pytest.mark.docker
def test_a_base_image_the_engine_lacks_is_an_error_naming_it(
    docker_base_image: str, tmp_path: Path
) -> None:
    from mlcli.config import load_inference_config
    from mlcli.images.base import resolve_base_image

    (tmp_path / "score.py").write_text("def init():\n    pass\n")
    config = tmp_path / "inferenceConfig.json"
    config.write_text('{"entryScript": "score.py", "baseImage": "mlcli-test/absent:1"}')
    ic = load_inference_config(config)

    with pytest.raises(DockerUnavailableError, match=r"mlcli-test/absent:1.*never pulls"):
        resolve_base_image(ic)


@pytest.mark.docker
@pytest.mark.slow
def test_purging_a_service_keeps_the_env_image_another_service_uses(
    docker_labels: str, docker_base_image: str, minimal_environment, tmp_path: Path
) -> None:
    from mlcli.app_root import AppLayout
    from mlcli.images import docker_client, find_image, labels, remove_unused_images
    from mlcli.images.app import build_app_image
    from mlcli.images.env import ensure_env_image

    client = docker_client()
    steps = tmp_path / "steps.dockerfile"  # a variant of its own: no other test shares it
    steps.write_text("ENV MLCLI_PURGE_TEST=1\n")
    env_image = ensure_env_image(
        client, minimal_environment, base=docker_base_image, extra_steps=steps
    )
    app_root = tmp_path / "app"
    app_root.mkdir()
    (app_root / "score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    layout = AppLayout("score.py", None, "azureml-models/m/1")
    apps = {
        service: build_app_image(
            client,
            env_image,
            app_root=app_root,
            layout=layout,
            name=f"purge-test.{service}",
            image_labels=labels(kind="app", workspace="purge-test", service=service),
        )
        for service in ("first", "second")
    }

    removed = remove_unused_images(workspace="purge-test", service="first")

    assert [row["tag"] for row in removed] == [apps["first"].tag]
    assert find_image(client, apps["second"].tag) is not None
    assert find_image(client, env_image.tag) is not None
    removed = remove_unused_images(workspace="purge-test", service="second")
    assert {row["tag"] for row in removed} == {apps["second"].tag, env_image.tag}
    assert find_image(client, docker_base_image) is not None
