"""Docker images for LOCAL and ACI services and for `ml model package`, with no registry.

    mlcli/base:bookworm-py3.11-<recipe>  Debian bookworm + python3 from debootstrap (base.py,
                                         its root file system from rootfs.py)
    mlcli/env:<spec key>                 + the model environment, built on the host by uv (as
                                         for PROCESS) and copied in (env.py)
    mlcli/app:<service>-<hash>           + the scoring server and the app root (entry script,
                                         source directory); models are mounted read-only (app.py)
    mlcli/package:<model>-<hash>         the same with the models inside (`ml model package`,
                                         package.py)

build.py runs `docker build` on the contexts env.py and app.py write. This module holds the
labels, the engine client and image clean-up.

Every image and container mlcli makes carries `org.mlcli.*` labels, which is how `ml image
list` and `ml service delete --purge` find them. `MLCLI_DOCKER_LABELS="k=v,k2=v2"` adds labels
of your own to all of them (tests use it to clean up after themselves).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import ConfigError, DockerUnavailableError

if TYPE_CHECKING:
    import docker
    import docker.models.images

LABEL = "org.mlcli"
KIND = f"{LABEL}.kind"  # base | env | app | package | service (a container) | probe
WORKSPACE = f"{LABEL}.workspace"
SERVICE = f"{LABEL}.service"
ENV_KEY = f"{LABEL}.env"  # the environment spec key (env, app and package images)
ENV_IMAGE = f"{LABEL}.env-image"  # id of the env image an app or package image was built on
BASE_IMAGE = f"{LABEL}.base-image"  # id of the base image an env image was built on

_CLIENTS: dict[str, docker.DockerClient] = {}


def extra_labels() -> dict[str, str]:
    """Labels from MLCLI_DOCKER_LABELS ("k=v,k2=v2"), added to everything mlcli creates."""
    text = os.environ.get("MLCLI_DOCKER_LABELS", "").strip()
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"{item!r} is not a key=value label.",
                where="environment variable MLCLI_DOCKER_LABELS",
                fix='Write labels as "key=value,key2=value2", or unset the variable.',
            )
        labels[key.strip()] = value.strip()
    return labels


def labels(*, with_home: bool = True, **values: str) -> dict[str, str]:
    """mlcli's labels (keyword names map to org.mlcli.<name>), the MLCLI_HOME that made it
    (owners.py; not in a build context written for elsewhere), plus MLCLI_DOCKER_LABELS."""
    from mlcli.images.owners import HOME, this_home

    ours = {f"{LABEL}.{k.replace('_', '-')}": v for k, v in values.items()}
    home = {HOME: this_home()} if with_home else {}
    return {**extra_labels(), **home, **ours}


def docker_client() -> docker.DockerClient:
    """A client for the local engine (DOCKER_HOST, else the default socket), checked alive once
    per process (state probes call this many times a second while a deploy waits)."""
    import docker

    cached = _CLIENTS.get(os.environ.get("DOCKER_HOST", ""))
    if cached is not None:
        return cached

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailableError(
            f"the Docker engine is not reachable at {host} ({exc}).",
            where="deploymentConfig, field computeType",
            fix="Start dockerd (or point DOCKER_HOST at it), or deploy with computeType "
            "PROCESS, which needs no Docker.",
        ) from exc
    _CLIENTS[os.environ.get("DOCKER_HOST", "")] = client
    return client


def find_image(client: docker.DockerClient, name: str) -> docker.models.images.Image | None:
    """The local image called `name` (tag or id), or None. Never pulls."""
    import docker

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


def size_mb(image: docker.models.images.Image) -> float:
    return round(image.attrs.get("Size", 0) / 1e6, 1)


def image_summary(image: docker.models.images.Image) -> dict[str, Any]:
    """One image as `ml image list` shows it."""
    image_labels = image.labels or {}
    return {
        "tag": image.tags[0] if image.tags else "<none>",
        "id": image.short_id.removeprefix("sha256:"),
        "tags": list(image.tags),
        "kind": image_labels.get(KIND, ""),
        "environment": image_labels.get(ENV_KEY),
        "workspace": image_labels.get(WORKSPACE),
        "service": image_labels.get(SERVICE),
        "sizeMB": size_mb(image),
        "createdTime": image.attrs.get("Created", ""),
    }


def list_images(*, kind: str | None = None) -> list[dict[str, Any]]:
    """mlcli's images in the local engine, newest first."""
    client = docker_client()
    label = f"{KIND}={kind}" if kind else KIND
    found = client.images.list(filters={"label": label})
    shown = {"base", "env", "app", "package"}
    rows = [image_summary(i) for i in found if (i.labels or {}).get(KIND) in shown]
    return sorted(rows, key=lambda row: row["createdTime"], reverse=True)


@contextlib.contextmanager
def file_lock(path: Path, on_progress: Callable[[str], None], waiting: str) -> Iterator[None]:
    """An exclusive flock on `path`: builds of one image by two `ml` processes happen once."""
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_progress(f"waiting: {waiting} by another ml process")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_unused_images(
    *,
    workspace: str | None = None,
    service: str | None = None,
    env_images: Iterable[str] = (),
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Remove app images no container runs (one service's, or all), then the env images that
    no remaining image or container is built on. The base image always stays.

    `ml service delete --purge` calls this for the deleted service, naming in `env_images`
    (tags or ids) the env images it ran on: its app images went with its containers, so they
    no longer tell. `ml image prune` calls it for all.
    """
    from mlcli.images.owners import homes_on_engine, referenced_images

    client = docker_client()
    in_use = {c["ImageID"] for c in client.api.containers(all=True)}
    # ...and what any service record of any MLCLI_HOME on this engine still names
    named = referenced_images(homes_on_engine(client))
    in_use |= {image.id for image in filter(None, (find_image(client, n) for n in named))}
    wanted = [f"{KIND}=app"]
    if workspace:
        wanted.append(f"{WORKSPACE}={workspace}")
    if service:
        wanted.append(f"{SERVICE}={service}")
    removed: list[dict[str, Any]] = []
    freed_env = {image.id for image in filter(None, (find_image(client, i) for i in env_images))}
    for image in client.images.list(filters={"label": wanted}):
        if image.id not in in_use:
            freed_env.add((image.labels or {}).get(ENV_IMAGE, ""))
            removed.append(_remove(client, image, dry_run))
    gone = {row["fullId"] for row in removed}
    still_built_on = {
        (image.labels or {}).get(ENV_IMAGE)
        for image in client.images.list(filters={"label": ENV_IMAGE})
        if image.id not in gone
    }
    for image in client.images.list(filters={"label": f"{KIND}=env"}):
        if service and image.id not in freed_env:
            continue  # only what the service's own images were built on
        if image.id not in in_use and image.id not in still_built_on:
            removed.append(_remove(client, image, dry_run))
    return [{k: v for k, v in row.items() if k != "fullId"} for row in removed]


def _remove(client: docker.DockerClient, image: Any, dry_run: bool) -> dict[str, Any]:
    import docker

    row = {**image_summary(image), "fullId": image.id, "removed": not dry_run}
    if not dry_run:
        try:
            client.images.remove(image.id, force=True)  # force: drop every tag it has
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:  # e.g. an image of yours was built FROM it
            row.update(removed=False, reason=str(exc.explanation or exc))
    return row
