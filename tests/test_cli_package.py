"""`ml model package`: a build context plain `docker build` turns into a serving image, or
the image itself; and the input errors."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import (
    echo_app,
    invoke,
    ok,
    post,
    register_factor,
    write,
)

pytestmark = pytest.mark.usefixtures("shared_environments")

DOCKER_CLI = shutil.which("docker") or "docker"  # docker.io, installed by .ci/run


@pytest.fixture
def echo_config(tmp_path: Path) -> str:
    return echo_app(tmp_path)


@pytest.fixture
def run_container(docker_labels: str) -> Iterator:
    """docker run (host network) of an image, removed at the end of the test."""
    started: list[str] = []

    def run(image: str, *command: str) -> None:
        name = f"mlcli-package-test-{uuid.uuid4().hex[:8]}"
        options = ["-d", "--name", name, "--network", "host", "--label", docker_labels]
        subprocess.run(
            [DOCKER_CLI, "run", *options, image, *command],
            check=True,
            capture_output=True,
        )
        started.append(name)

    yield run
    for name in started:
        subprocess.run([DOCKER_CLI, "rm", "-f", name], check=False, capture_output=True)


def _score_when_ready(port: int, data: list) -> dict:
    deadline = time.monotonic() + 60
    while True:
        try:
            return post(f"http://127.0.0.1:{port}/score", {"data": data}, timeout=5).json()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.docker
@pytest.mark.slow
def test_output_path_is_a_context_plain_docker_build_turns_into_a_serving_image(
    tmp_path: Path, echo_config: str, docker_labels: str, run_container, free_port: int
) -> None:
    register_factor(tmp_path, "factor", 4.0)
    context = tmp_path / "package"

    written = ok(
        "model", "package", "-m", "factor:1", "--ic", echo_config, "--output-path", str(context)
    )

    assert written["location"] == str(context)
    assert (context / "app" / "azureml-models" / "factor" / "1" / "factor.txt").read_text() == "4.0"
    assert (context / "base" / "rootfs.tar.gz").is_file()  # FROM scratch: no registry needed
    assert (context / "env" / "site-packages" / "werkzeug").is_dir()  # installed: no pip run
    tag = f"mlcli-test/package:{uuid.uuid4().hex[:8]}"
    built = subprocess.run(
        [
            DOCKER_CLI,
            "build",
            "--network",
            "none",
            "--label",
            docker_labels,
            "-t",
            tag,
            str(context),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    run_container(
        tag, "python", "-m", "mlcli.server", "--host", "127.0.0.1", "--port", str(free_port)
    )
    assert _score_when_ready(free_port, [1, 2]) == {"result": [4.0, 8.0]}


@pytest.mark.docker
@pytest.mark.slow
def test_without_output_path_the_image_is_built_and_its_tag_printed(
    tmp_path: Path, echo_config: str, run_container, free_port: int
) -> None:
    register_factor(tmp_path, "factor", 5.0)
    name = f"mlcli-test/packaged:{uuid.uuid4().hex[:8]}"

    result = ok("model", "package", "-m", "factor:1", "--ic", echo_config, "--image-name", name)

    assert result["image"] == name
    assert result["models"] == ["factor:1"]
    run_container(
        name, "python", "-m", "mlcli.server", "--host", "127.0.0.1", "--port", str(free_port)
    )
    assert _score_when_ready(free_port, [1]) == {"result": [5.0]}


def test_a_non_empty_output_folder_is_refused_and_left_alone(
    tmp_path: Path, echo_config: str
) -> None:
    register_factor(tmp_path, "factor", 4.0)
    keep = write(tmp_path / "taken" / "notes.txt", "mine")

    result = invoke(
        "model", "package", "-m", "factor:1", "--ic", echo_config, "--output-path", str(keep.parent)
    )

    assert result.exit_code == 4
    assert "--output-path" in result.stderr
    assert "not an empty folder" in result.stderr
    assert [p.name for p in keep.parent.iterdir()] == ["notes.txt"]


def test_packaging_needs_an_entry_script(tmp_path: Path) -> None:
    register_factor(tmp_path, "factor", 4.0)

    result = invoke("model", "package", "-m", "factor:1", "--output-path", str(tmp_path / "out"))

    assert result.exit_code == 2
    assert "entry script" in result.stderr
    assert not (tmp_path / "out").exists()


def test_packaging_an_unknown_model_exits_3(tmp_path: Path, echo_config: str) -> None:
    result = invoke("model", "package", "-m", "nope:1", "--ic", echo_config)

    assert result.exit_code == 3
    assert "nope" in result.stderr
