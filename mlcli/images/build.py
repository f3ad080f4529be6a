"""`docker build` for mlcli's images: build contexts, the streamed build, content hashes.

env.py and app.py write a Dockerfile and its files into a scratch context here, and
`docker_build` turns it into an image: the engine tags it only when every step succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import EnvironmentBuildError
from mlcli.images import size_mb
from mlcli.paths import mlcli_home
from mlcli.progress import Progress

if TYPE_CHECKING:
    import docker


@dataclass(frozen=True, slots=True)
class BuiltImage:
    tag: str
    id: str
    size_mb: float
    built: bool  # False: an identical image existed and was reused

    @classmethod
    def of(cls, tag: str, image: Any, *, built: bool) -> BuiltImage:
        return cls(tag, image.id, size_mb(image), built)

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "id": self.id, "sizeMB": self.size_mb, "built": self.built}


def docker_build(
    client: docker.DockerClient, context: Path, *, tag: str, progress: Progress
) -> str:
    """`docker build --network host --force-rm` of `context`, streaming its lines; the image id.

    The engine tags the image only when every step succeeded: a failed or killed build leaves
    no tagged half image. Host networking is for extraDockerfileSteps that fetch something.
    """
    import docker

    tail: deque[str] = deque(maxlen=25)
    image_id = ""
    try:
        events = client.api.build(
            path=str(context),
            tag=tag,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            network_mode="host",
        )
        for event in events:
            if "error" in event:
                detail = event.get("errorDetail", {}).get("message") or event["error"]
                raise EnvironmentBuildError(
                    f"docker build of {tag} failed: {detail.strip()}\n" + "\n".join(tail),
                    fix="Read the build output above; `ml model package --output-path DIR` "
                    "writes the same Dockerfile and context to try by hand.",
                )
            if "aux" in event and "ID" in event["aux"]:
                image_id = event["aux"]["ID"]
            for line in event.get("stream", "").splitlines():
                line = line.rstrip()
                if not line:
                    continue
                tail.append(line)
                progress(f"docker build: {line}")
                if found := re.match(r"^Successfully built ([0-9a-f]+)$", line):
                    image_id = image_id or found.group(1)
    except docker.errors.APIError as exc:
        raise EnvironmentBuildError(f"docker build of {tag} failed: {exc}") from exc
    if not image_id:
        raise EnvironmentBuildError(f"docker build of {tag} reported no image:\n" + "\n".join(tail))
    return image_id


def build_dir() -> Path:
    folder = mlcli_home() / "cache" / "build"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def context_dir() -> Iterator[Path]:
    """A scratch build context, removed after use; ones left by killed `ml` processes (their
    pid is in the name) are removed first, as they can hold a copy of a whole environment."""
    folder = build_dir()
    for stale in folder.glob("context-*-*"):
        pid = stale.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(stale, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"context-{os.getpid()}-", dir=folder))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tree_digest(root: Path, *, exclude: Set[str] = frozenset()) -> str:
    """sha256 over the relative paths, modes and contents of the files under `root`."""
    digest = hashlib.sha256()
    for path in sorted(_walk(root, exclude)):
        relative = path.relative_to(root).as_posix()
        digest.update(f"{relative}\0{path.lstat().st_mode & 0o777}\0".encode())
        if path.is_symlink():
            digest.update(str(path.readlink()).encode())
        elif path.is_file():
            with path.open("rb") as fh:
                digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


def _walk(root: Path, exclude: Set[str]) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == root:
            dirs[:] = [d for d in dirs if d not in exclude]
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if here != root or name not in exclude:
                yield here / name


def copy_tree(
    source: Path, dest: Path, *, exclude: Set[str] = frozenset(), link: bool = True
) -> None:
    """With `link`, hard links where possible (a build context is read, never written)."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in _walk(source, exclude):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            target.symlink_to(path.readlink())
            continue
        if link:
            with contextlib.suppress(OSError):
                os.link(path, target)
                continue
        shutil.copy2(path, target)
