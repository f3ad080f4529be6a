"""`ml model package`: one image (or one build context) holding the models, their scoring
script, its environment and the scoring server; what takes a model to another host,
Kubernetes or an edge device.

With an output path it writes a folder that plain `docker build` turns into the image on any
x86_64 machine with no registry and no network: the base image's root file system
(base/rootfs.tar.gz, for `FROM scratch` + ADD), the environment's installed packages (env/:
nothing is downloaded or installed during the build), the server code, the app root and the
models. The Dockerfile has the same steps as the env and app images a LOCAL deploy builds.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.app_root import AppLayout, check_entry_script, lay_out
from mlcli.errors import ConfigError, ConflictError
from mlcli.images import docker_client, labels
from mlcli.images.app import CONTAINER_PORT, app_section, build_app_image
from mlcli.images.base import IMAGE_ENV, base_tag, cached_rootfs, label_instruction, recipe_key
from mlcli.images.build import copy_tree
from mlcli.images.env import ensure_env_image, env_steps, read_extra_steps, write_environment
from mlcli.progress import Progress, reporter

if TYPE_CHECKING:
    import docker

    from mlcli.config import InferenceConfig
    from mlcli.registry import ModelVersion, Registry


PACKAGE_REPOSITORY = "mlcli/package"


def package(
    registry: Registry,
    models: Sequence[ModelVersion],
    inference: InferenceConfig,
    *,
    output_path: Path | None = None,
    image_name: str | None = None,
    on_progress: Progress | None = None,
) -> dict[str, Any]:
    """Write a build context to `output_path`, or (without one) build the image locally."""
    from mlcli.environments import ensure_environment, spec_for

    progress = reporter(on_progress)
    if output_path is not None:
        _check_output_path(output_path)
    check_entry_script(inference)
    environment = ensure_environment(spec_for(inference), on_progress=progress)
    model_ids = [m.id for m in models]
    if output_path is None:
        from mlcli.images.base import resolve_base_image

        client = docker_client()
        base = resolve_base_image(inference, on_progress=progress)
        env_image = ensure_env_image(
            client,
            environment,
            base=base,
            extra_steps=inference.extra_dockerfile_steps,
            on_progress=progress,
        )
        with tempfile.TemporaryDirectory(prefix="package-") as scratch:
            app_root = Path(scratch) / "app"
            layout = lay_out_app(registry, models, inference, app_root, link=True)
            image = build_app_image(
                client,
                env_image,
                app_root=app_root,
                layout=layout,
                repository=PACKAGE_REPOSITORY,
                name="-".join(f"{m.name}-{m.version}" for m in models),
                image_labels=labels(
                    kind="package", env=environment.key, models=",".join(model_ids)
                ),
                include_models=True,
                on_progress=progress,
            )
        tag = image.tag
        if image_name:
            repository, _, version = image_name.partition(":")
            client.api.tag(image.id, repository, version or "latest")
            tag = f"{repository}:{version or 'latest'}"
        return {
            "image": tag,
            "id": image.id,
            "sizeMB": image.size_mb,
            "models": model_ids,
            "runCommand": f"docker run --rm -p {CONTAINER_PORT}:{CONTAINER_PORT} {tag}",
        }
    output_path = output_path.absolute()
    partial = Path(tempfile.mkdtemp(prefix=f".{output_path.name}.partial-", dir=output_path.parent))
    try:
        write_context(registry, models, inference, environment, partial, on_progress=progress)
        if output_path.exists():
            output_path.rmdir()  # checked empty above
        partial.rename(output_path)  # the folder appears complete, or not at all
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    tag = image_name or f"{models[0].name}:{models[0].version}"
    return {
        "location": str(output_path),
        "dockerfile": str(output_path / "Dockerfile"),
        "models": model_ids,
        "buildCommand": f"docker build -t {tag} {output_path}",
        "runCommand": f"docker run --rm -p {CONTAINER_PORT}:{CONTAINER_PORT} {tag}",
    }


def write_context(
    registry: Registry,
    models: Sequence[ModelVersion],
    inference: InferenceConfig,
    environment: Any,
    folder: Path,
    *,
    on_progress: Progress | None = None,
) -> None:
    """Dockerfile, base/, env/, runtime/ and app/ (models included) in `folder`."""
    from mlcli.environments import server_runtime_path
    from mlcli.images.base import resolve_base_image

    progress = reporter(on_progress)
    steps = read_extra_steps(inference.extra_dockerfile_steps)
    base = resolve_base_image(inference, on_progress=progress)
    if base == base_tag():
        progress("writing the base image's root file system (base/rootfs.tar.gz)")
        write_rootfs(docker_client(), base, folder / "base" / "rootfs.tar.gz")
        env = " ".join(f"{k}={v}" for k, v in IMAGE_ENV.items())
        head = (
            f'FROM scratch AS mlcli-base\nADD base/rootfs.tar.gz /\nENV {env}\nCMD ["python3"]\n\n'
        )
        from_base = "mlcli-base"
    else:
        head, from_base = "", base  # a custom baseImage: it must exist where this is built
    progress("copying the environment")
    write_environment(environment, folder / "env", link=False, on_progress=progress)
    copy_tree(server_runtime_path(), folder / "runtime", link=False)
    layout = lay_out_app(registry, models, inference, folder / "app", link=False)
    image_labels = labels(  # no home: the context is built elsewhere
        with_home=False, kind="package", env=environment.key, models=",".join(m.id for m in models)
    )
    dockerfile = (
        "# Written by `ml model package`. Build anywhere, no registry or network needed:\n"
        "#   docker build -t NAME .\n"
        f"#   docker run --rm -p {CONTAINER_PORT}:{CONTAINER_PORT} NAME   "
        f"# then POST to http://localhost:{CONTAINER_PORT}/score\n"
        + head
        + env_steps(from_base, extra_steps=steps)
        + app_section(layout)
        + label_instruction(image_labels)
        + "\n"
    )
    (folder / "Dockerfile").write_text(dockerfile)
    (folder / ".dockerignore").write_text("*.partial\n")
    manifest = {
        "models": [m.id for m in models],
        "environment": environment.key,
        "baseImage": base,
        "baseRecipe": recipe_key() if head else None,
        "entryScript": layout.entry_script,
        "sourceDirectory": layout.source_directory,
        "modelDir": layout.model_dir,
    }
    (folder / "mlcli-package.json").write_text(json.dumps(manifest, indent=2) + "\n")


def lay_out_app(
    registry: Registry,
    models: Sequence[ModelVersion],
    inference: InferenceConfig,
    app_root: Path,
    *,
    link: bool,
) -> AppLayout:
    """Azure's app root (see mlcli/app_root.py), with the models inside."""
    entry, source = check_entry_script(inference)
    return lay_out(
        registry,
        models,
        app_root,
        entry_script=entry,
        source_directory=source,
        link=link,
        read_only=link,
    )


def write_rootfs(client: docker.DockerClient, image: str, dest: Path) -> None:
    """The base image's file system as a gzip tarball: the cached debootstrap result when it
    is this recipe's, else exported from the image itself."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    cached = cached_rootfs()
    if cached.is_file():
        shutil.copyfile(cached, dest)
        return
    container = client.containers.create(image, ["true"], network_mode="none", labels=labels())
    try:
        with gzip.open(dest, "wb", compresslevel=1) as out:
            for chunk in container.export():
                out.write(chunk)
    finally:
        container.remove(force=True)


def _check_output_path(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ConflictError(
            f"{path} already exists and is not an empty folder.",
            where="--output-path",
            fix="Name a new (or empty) folder; mlcli never overwrites files there.",
        )
    if not path.absolute().parent.is_dir():
        raise ConfigError(
            f"the folder {path.absolute().parent} does not exist.",
            where="--output-path",
            fix="Create the parent folder first.",
        )
