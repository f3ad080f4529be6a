"""The base image, made without a registry: a debootstrapped Debian, then `docker import`.

Debian bookworm's own python3 is 3.11 (3.11.2), so every LOCAL service runs Python 3.11
whatever the conda file asks for. The root file system comes from rootfs.py (built once,
cached as a tarball). The image gets its tag only after a container has started from it and
imported ssl, sqlite3 and venv: a killed or failed build never leaves a tagged half image.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import DockerUnavailableError, EnvironmentBuildError
from mlcli.images import docker_client, file_lock, find_image, labels, size_mb
from mlcli.images.rootfs import (
    SUITE,
    build_rootfs,
    cache_dir,
    debian_mirror,
    recipe,
    remove_leftovers,
)
from mlcli.progress import Progress, reporter

if TYPE_CHECKING:
    import docker

    from mlcli.config import InferenceConfig


PYTHON = "3.11"  # what bookworm's python3 is; env images hold packages for this version
REPOSITORY = "mlcli/base"
IMAGE_ENV = {
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}


def recipe_key() -> str:
    """Hash of everything that shapes the base image; part of its tag and cache file name."""
    shape = {**recipe(), "env": IMAGE_ENV}
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:8]


def base_tag() -> str:
    return f"{REPOSITORY}:{SUITE}-py{PYTHON}-{recipe_key()}"


def cached_rootfs() -> Path:
    """The cached root file system tarball of this recipe (present or not)."""
    return cache_dir() / f"rootfs-{recipe_key()}.tar.gz"


@dataclass(frozen=True, slots=True)
class BaseImage:
    tag: str
    id: str
    size_mb: float
    source: str  # "present" | "cache" (re-imported) | "debootstrap" (built now)

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "id": self.id, "sizeMB": self.size_mb, "source": self.source}


def ensure_base_image(
    *, rebuild: bool = False, mirror: str | None = None, on_progress: Progress | None = None
) -> BaseImage:
    """mlcli's base image, tagged in the local engine; built first when missing (or `rebuild`).

    `rebuild` runs debootstrap again instead of re-importing the cached root file system.
    """
    progress = reporter(on_progress)
    client = docker_client()
    tag = base_tag()
    image = find_image(client, tag)
    if image is not None and not rebuild:
        return _describe(image, tag, "present")
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / "build.lock", progress, "the base image is being built"):
        image = find_image(client, tag)
        if image is not None and not rebuild:
            return _describe(image, tag, "present")  # built by whoever held the lock
        remove_leftovers(folder)
        rootfs = cached_rootfs()
        source = "cache"
        if rebuild or not rootfs.is_file():
            source = "debootstrap"
            build_rootfs(rootfs, mirror=mirror or debian_mirror(), progress=progress)
        progress(f"importing {rootfs.name} into Docker")
        image_id = _import(client, rootfs)
        _verify(client, image_id, rootfs)
        client.api.tag(image_id, *tag.split(":"))
        progress(f"tagged {tag}")
        return _describe(client.images.get(tag), tag, source)


def resolve_base_image(ic: InferenceConfig | None, *, on_progress: Progress | None = None) -> str:
    """The image env images start FROM: the config's `baseImage` if set, else mlcli's base.

    A `baseImage` must already be in the local engine: mlcli never pulls (there may be no
    registry at all), and says so instead.
    """
    name = _configured_base(ic)
    if name is None:
        return ensure_base_image(on_progress=on_progress).tag
    client = docker_client()
    if find_image(client, name) is None:
        raise DockerUnavailableError(
            f"the base image {name!r} is not in the local Docker engine, and mlcli never pulls "
            "images.",
            where=f"{_where(ic)}, field baseImage",
            fix=f"Load it first (`docker load -i image.tar`, or `docker build -t {name} .`), or "
            "remove baseImage to use mlcli's Debian base (`ml image build-base`).",
        )
    return name


def check_python(client: docker.DockerClient, image: str, *, where: str) -> None:
    """A base image must run `python3` at version PYTHON (the packages are built for it)."""
    code = "import sys, venv; print('%d.%d' % sys.version_info[:2])"
    status, output = run_once(client, image, ["python3", "-c", code])
    found = output.strip().splitlines()[-1:] if status == 0 else []
    if found != [PYTHON]:
        detail = f"has Python {found[0]}" if found else "has no usable python3 with venv"
        raise EnvironmentBuildError(
            f"the base image {image!r} {detail}; mlcli copies in an environment built for "
            f"Python {PYTHON}.",
            where=f"{where}, field baseImage",
            fix=f"Use an image whose `python3` is {PYTHON} (Debian bookworm's is), or remove "
            "baseImage to use mlcli's base.",
        )


def run_once(client: docker.DockerClient, image: str, command: list[str]) -> tuple[int, str]:
    """Run `command` in a throwaway container with no network; (exit status, output).

    create + start, never `containers.run`, which would pull a missing image.
    """
    import docker

    container = client.containers.create(
        image, command, network_mode="none", labels=labels(kind="probe"), detach=True
    )
    try:
        container.start()
        status = container.wait(timeout=120)["StatusCode"]
        return status, container.logs().decode("utf-8", "replace")
    except docker.errors.APIError as exc:  # e.g. "python3": executable file not found
        return 127, str(exc)
    finally:
        container.remove(force=True)


def _import(client: docker.DockerClient, rootfs: Path) -> str:
    changes = [f"ENV {k}={v}" for k, v in IMAGE_ENV.items()]
    changes += ['CMD ["python3"]', label_instruction(labels(kind="base", recipe=recipe_key()))]
    with rootfs.open("rb") as fh:  # a file object: a str would be fetched as a URL if missing
        result = client.api.import_image(src=fh, changes=changes)
    events = [json.loads(line) for line in result.splitlines() if line.strip()]
    image_id = next((e["status"] for e in reversed(events) if "sha256:" in e.get("status", "")), "")
    if not image_id:
        raise EnvironmentBuildError(f"docker import of {rootfs} returned no image: {result[-500:]}")
    return image_id


def _verify(client: docker.DockerClient, image_id: str, rootfs: Path) -> None:
    code = "import ssl, sqlite3, venv, sys; print(sys.version.split()[0])"
    status, output = run_once(client, image_id, ["python3", "-c", code])
    if status != 0 or not output.startswith(PYTHON):
        client.images.remove(image_id, force=True)
        rootfs.unlink(missing_ok=True)  # a damaged cache must not be imported again
        raise EnvironmentBuildError(
            f"the new base image does not run Python {PYTHON}: {output.strip()[-500:]}",
            fix="Run `ml image build-base --rebuild` (debootstrap again from the mirror).",
        )


def _describe(image: Any, tag: str, source: str) -> BaseImage:
    return BaseImage(tag, image.id, size_mb(image), source)


def _configured_base(ic: InferenceConfig | None) -> str | None:
    if ic is None:
        return None
    environment = ic.environment or {}
    name = (environment.get("docker") or {}).get("baseImage") or ic.base_image
    if not name:
        return None
    registry = ic.base_image_registry or {}
    address = (registry.get("address") if isinstance(registry, dict) else registry) or ""
    first = name.split("/", 1)[0]
    if address and not ("." in first or ":" in first or first == "localhost"):
        name = f"{address.rstrip('/')}/{name}"
    return name


def _where(ic: InferenceConfig | None) -> str:
    return str((ic.path if ic is not None else None) or "inferenceConfig")


def label_instruction(values: dict[str, str]) -> str:
    """A Dockerfile LABEL line; json quoting is valid Dockerfile quoting for these strings."""
    return "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in values.items())
