"""Shared fixtures: every test gets its own MLCLI_HOME, real ports and real engines."""

import contextlib
import os
import signal
import socket
from pathlib import Path

import pytest

pytest_plugins = ["deploy_support", "sdk_support"]  # fixtures of deploy tests and SDK tests


def pytest_configure(config: pytest.Config) -> None:
    """Let child processes see Ctrl-C even when the suite itself runs in the background.

    A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored
    across exec; a handler does not. Installing Python's own handler here means every process a
    test starts gets the default SIGINT again, so the Ctrl-C tests test what a user gets.
    """
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def mlcli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private MLCLI_HOME, so no test sees another's registry, services or environments."""
    home = tmp_path / "mlcli-home"
    monkeypatch.setenv("MLCLI_HOME", str(home))
    monkeypatch.delenv("MLCLI_WORKSPACE", raising=False)
    return home


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model folder: a weights file and a nested vocabulary file."""
    folder = tmp_path / "model"
    (folder / "vocab").mkdir(parents=True)
    (folder / "model.bin").write_bytes(bytes(range(256)) * 64)
    (folder / "vocab" / "words.txt").write_text("good\nbad\n")
    return folder


@pytest.fixture
def registered_model(model_dir: Path):  # -> mlcli.registry.ModelVersion
    """`model_dir` registered as sentiment:1 in the test's own workspace."""
    from mlcli.registry import Registry

    registry = Registry.open()
    try:
        return registry.register(model_dir, "sentiment")
    finally:
        registry.close()


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docker_available() -> bool:
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip docker tests without an engine, unless CI demands them (MLCLI_REQUIRE_DOCKER=1)."""
    if any("docker" in item.keywords for item in items) and not docker_available():
        if os.environ.get("MLCLI_REQUIRE_DOCKER") == "1":
            raise pytest.UsageError("MLCLI_REQUIRE_DOCKER=1 but no Docker engine is reachable")
        skip = pytest.mark.skip(reason="no Docker engine reachable (start dockerd)")
        for item in items:
            if "docker" in item.keywords:
                item.add_marker(skip)


# --- Docker (LOCAL/ACI targets, images, `ml model package`) -----------------------------------

DOCKER_TEST_LABEL = f"org.mlcli.test={os.getpid()}"


@pytest.fixture(scope="session")
def docker_base_image(tmp_path_factory: pytest.TempPathFactory):  # -> Iterator[str]
    """mlcli's base image, built once per session if the engine lacks it (CI: a fresh build).

    Everything docker tests create carries DOCKER_TEST_LABEL (see `docker_labels`) and is
    removed at the end of the session; the base image stays, for the next run.
    """
    import docker

    from mlcli.images.base import ensure_base_image

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLCLI_HOME", str(tmp_path_factory.mktemp("docker-base-home")))
        patch.delenv("MLCLI_DOCKER_LABELS", raising=False)
        tag = ensure_base_image().tag
    yield tag
    client = docker.from_env()
    for container in client.containers.list(all=True, filters={"label": DOCKER_TEST_LABEL}):
        container.remove(force=True)
    for _ in range(4):  # children before parents: app images, then env images
        images = client.images.list(all=True, filters={"label": DOCKER_TEST_LABEL})
        for image in images:
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(image.id, force=True)
        if not images:
            break


@pytest.fixture
def docker_labels(docker_base_image: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Label what this test creates in the engine, for the session's clean-up; the label."""
    monkeypatch.setenv("MLCLI_DOCKER_LABELS", DOCKER_TEST_LABEL)
    return DOCKER_TEST_LABEL
