"""App images: an env image + the scoring server + the app root (entry script, source
directory), as a LOCAL or ACI service runs it; with the models inside for `ml model package`.

    mlcli/app:<name>-<hash>  env + the scoring server (/opt/mlcli/runtime, on PYTHONPATH)
                             + the app root at /var/azureml-app (AML_APP_ROOT)

Tagged by a hash of what goes in, so deploying the same thing again reuses the image.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlcli.app_root import MODELS, AppLayout, server_command
from mlcli.images import ENV_IMAGE, find_image
from mlcli.images.base import label_instruction
from mlcli.images.build import (
    BuiltImage,
    context_dir,
    copy_tree,
    docker_build,
    tree_digest,
)
from mlcli.progress import Progress, reporter

if TYPE_CHECKING:
    import docker


APP_REPOSITORY = "mlcli/app"
RUNTIME = "/opt/mlcli/runtime"
APP_ROOT = "/var/azureml-app"  # Azure's AML_APP_ROOT
CONTAINER_PORT = 5001  # Azure's port inside the container
_LAYOUT_FORMAT = 2  # bump when the Dockerfiles below change shape


def container_environment(layout: AppLayout) -> dict[str, str]:
    """The server's environment in the image: Azure's variables under /var/azureml-app, and
    the server's code (/opt/mlcli/runtime) on PYTHONPATH."""
    return {
        **layout.server_environment(APP_ROOT),
        "PYTHONPATH": RUNTIME,
        "PYTHONUNBUFFERED": "1",
    }


def container_command(layout: AppLayout, *, host: str, port: int, workers: str = "1") -> list[str]:
    return server_command("python", layout, APP_ROOT, host=host, port=port, workers=workers)


def app_section(layout: AppLayout) -> str:
    """The Dockerfile lines that add the server and the app root to an env image."""
    env = " \\\n    ".join(f"{k}={_quote(v)}" for k, v in container_environment(layout).items())
    command = container_command(layout, host="0.0.0.0", port=CONTAINER_PORT)
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

    progress = reporter(on_progress)
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
        return BuiltImage.of(tag, existing, built=False)
    with context_dir() as context:
        copy_tree(runtime, context / "runtime")
        copy_tree(app_root, context / "app", exclude=excluded)
        all_labels = {**image_labels, ENV_IMAGE: env_image.id}
        dockerfile = f"FROM {env_image.tag}\n{app_section(layout)}{label_instruction(all_labels)}\n"
        (context / "Dockerfile").write_text(dockerfile)
        progress(f"building {tag}")
        image_id = docker_build(client, context, tag=tag, progress=progress)
    image = client.images.get(image_id)
    return BuiltImage.of(tag, image, built=True)


def _tag_safe(name: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip(".-")[:80] or "app"


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./:-]*", value) else '"' + value + '"'
