"""App images: an env image + the scoring server + the app root (entry script, source
directory), as a LOCAL or ACI service runs it; with the models inside for `ml model package`.

    mlcli/app:<name>-<hash>  env + the scoring server (/opt/mlcli/runtime, on PYTHONPATH)
                             + the app root at /var/azureml-app (AML_APP_ROOT)

Tagged by a hash of what goes in, so deploying the same thing again reuses the image.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlcli.images import ENV_IMAGE, find_image
from mlcli.images.base import label_instruction
from mlcli.images.build import (
    BuiltImage,
    context_dir,
    copy_tree,
    docker_build,
    size_mb,
    tree_digest,
)

if TYPE_CHECKING:
    import docker

Progress = Callable[[str], None]

APP_REPOSITORY = "mlcli/app"
RUNTIME = "/opt/mlcli/runtime"
APP_ROOT = "/var/azureml-app"  # Azure's AML_APP_ROOT
MODELS = "azureml-models"
CONTAINER_PORT = 5001  # Azure's port inside the container
_LAYOUT_FORMAT = 2  # bump when the Dockerfiles below change shape


@dataclass(frozen=True, slots=True)
class AppLayout:
    """Where the scoring server finds things inside the image (paths relative to the app root)."""

    entry_script: str
    source_directory: str | None
    model_dir: str

    def environment(self) -> dict[str, str]:
        env = {
            "AML_APP_ROOT": APP_ROOT,
            "AZUREML_ENTRY_SCRIPT": f"{APP_ROOT}/{self.entry_script}",
            "AZUREML_MODEL_DIR": f"{APP_ROOT}/{self.model_dir}",
            "PYTHONPATH": RUNTIME,
            "PYTHONUNBUFFERED": "1",
        }
        if self.source_directory:
            env["AZUREML_SOURCE_DIRECTORY"] = f"{APP_ROOT}/{self.source_directory}"
        return env


def server_command(layout: AppLayout, *, host: str, port: int, workers: str = "1") -> list[str]:
    script = f"{APP_ROOT}/{layout.entry_script}"
    return [
        "python",
        "-m",
        "mlcli.server",
        "--entry-script",
        script,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        workers,
    ]


def app_section(layout: AppLayout) -> str:
    """The Dockerfile lines that add the server and the app root to an env image."""
    env = " \\\n    ".join(f"{k}={_quote(v)}" for k, v in layout.environment().items())
    command = server_command(layout, host="0.0.0.0", port=CONTAINER_PORT)
    command_json = "[" + ", ".join(f'"{part}"' for part in command) + "]"
    return f"""\
COPY runtime/ {RUNTIME}/
COPY app/ {APP_ROOT}/
ENV {env}
WORKDIR {APP_ROOT}
EXPOSE {CONTAINER_PORT}
CMD {command_json}
"""


def build_app_image(
    client: docker.DockerClient,
    env_image: BuiltImage,
    *,
    app_root: Path,
    layout: AppLayout,
    repository: str = APP_REPOSITORY,
    name: str,
    image_labels: dict[str, str],
    include_models: bool = False,
    on_progress: Progress | None = None,
) -> BuiltImage:
    """env image + server code + app root (and the models when `include_models`).

    Tagged <repository>:<name>-<content hash>, so deploying the same thing again reuses the
    image without a build.
    """
    from mlcli.environments import server_runtime_path

    progress = on_progress or (lambda _message: None)
    runtime = server_runtime_path()
    excluded = set() if include_models else {MODELS}
    digest = hashlib.sha256(
        f"{_LAYOUT_FORMAT}\0{env_image.id}\0{runtime.name}\0{layout}\0".encode()
    )
    digest.update(tree_digest(app_root, exclude=excluded).encode())
    digest.update(repr(sorted(image_labels.items())).encode())
    tag = f"{repository}:{_tag_safe(name)}-{digest.hexdigest()[:12]}"
    existing = find_image(client, tag)
    if existing is not None:
        progress(f"using image {tag}")
        return BuiltImage(tag, existing.id, size_mb(existing), built=False)
    with context_dir() as context:
        copy_tree(runtime, context / "runtime")
        copy_tree(app_root, context / "app", exclude=excluded)
        all_labels = {**image_labels, ENV_IMAGE: env_image.id}
        dockerfile = f"FROM {env_image.tag}\n{app_section(layout)}{label_instruction(all_labels)}\n"
        (context / "Dockerfile").write_text(dockerfile)
        progress(f"building {tag}")
        image_id = docker_build(client, context, tag=tag, progress=progress)
    image = client.images.get(image_id)
    return BuiltImage(tag, image.id, size_mb(image), built=True)


def _tag_safe(name: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip(".-")[:80] or "app"


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./:-]*", value) else '"' + value + '"'
