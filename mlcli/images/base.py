"""The base image, made without a registry: debootstrap a slim Debian, then `docker import`.

Debian bookworm's own python3 is 3.11 (3.11.2), so every LOCAL service runs Python 3.11
whatever the conda file asks for. The slimmed root file system is cached as a tarball under
$MLCLI_HOME/cache/base/ (the .debs too), so a lost image comes back in seconds, not minutes.
The image gets its tag only after a container has started from it and imported ssl, sqlite3
and venv: a killed or failed build never leaves a tagged half image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import DockerUnavailableError, EnvironmentBuildError
from mlcli.images import docker_client, file_lock, find_image, labels
from mlcli.paths import mlcli_home

if TYPE_CHECKING:
    import docker

    from mlcli.config import InferenceConfig

Progress = Callable[[str], None]

SUITE = "bookworm"
PYTHON = "3.11"  # what bookworm's python3 is; env images hold packages for this version
PACKAGES = ("python3", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
REPOSITORY = "mlcli/base"
IMAGE_ENV = {
    "LANG": "C.UTF-8",
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
}

# Written into the image so later `apt-get install` steps (extraDockerfileSteps) stay slim too.
_DPKG_SLIM = """\
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
"""
_APT_CLEAN = """\
APT::Install-Recommends "false";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
"""
# The image is meant to run anywhere, so its sources name Debian's public mirrors, not the
# build host's (which may be a local proxy).
_SOURCES = f"""\
deb http://deb.debian.org/debian {SUITE} main
deb http://deb.debian.org/debian {SUITE}-updates main
deb http://deb.debian.org/debian-security {SUITE}-security main
"""
_EMPTIED = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/log",
    "tmp",
    "var/tmp",
)
_RECIPE_FORMAT = 1


def recipe_key() -> str:
    """Hash of everything that shapes the base image; part of its tag and cache file name."""
    recipe = {
        "format": _RECIPE_FORMAT,
        "suite": SUITE,
        "packages": PACKAGES,
        "env": IMAGE_ENV,
        "files": [_DPKG_SLIM, _APT_CLEAN, _SOURCES],
        "emptied": _EMPTIED,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:8]


def base_tag() -> str:
    return f"{REPOSITORY}:{SUITE}-py{PYTHON}-{recipe_key()}"


def cache_dir() -> Path:
    return mlcli_home() / "cache" / "base"


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
    progress = on_progress or (lambda _message: None)
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
        _remove_leftovers(folder)
        rootfs = folder / f"rootfs-{recipe_key()}.tar.gz"
        source = "cache"
        if rebuild or not rootfs.is_file():
            source = "debootstrap"
            _build_rootfs(rootfs, mirror=mirror or debian_mirror(), progress=progress)
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


def debian_mirror() -> str:
    """The Debian mirror apt on this host uses (MLCLI_DEBIAN_MIRROR overrides), else Debian's."""
    if os.environ.get("MLCLI_DEBIAN_MIRROR"):
        return os.environ["MLCLI_DEBIAN_MIRROR"]
    for uri, suites in _apt_sources():
        if SUITE in suites and uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _apt_sources() -> Iterator[tuple[str, list[str]]]:
    apt = Path("/etc/apt")
    one_line = [apt / "sources.list", *sorted(apt.glob("sources.list.d/*.list"))]
    for path in one_line:
        with contextlib.suppress(OSError):
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    yield words[1], [words[2]]
    for path in sorted(apt.glob("sources.list.d/*.sources")):
        with contextlib.suppress(OSError):
            for stanza in path.read_text().split("\n\n"):
                fields = {
                    k.strip(): v.strip()
                    for k, _, v in (ln.partition(":") for ln in stanza.splitlines())
                    if not k.startswith("#") and v
                }
                if "deb" in fields.get("Types", "").split() and fields.get("Enabled") != "no":
                    for uri in fields.get("URIs", "").split():
                        yield uri, fields.get("Suites", "").split()


def _build_rootfs(rootfs: Path, *, mirror: str, progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise EnvironmentBuildError(
            "debootstrap is not installed, and mlcli builds its base image with it.",
            fix="Install it (`apt-get install --no-install-recommends debootstrap`), or set "
            "baseImage in the inference config to a local image with Python 3.11.",
        )
    if os.geteuid() != 0:
        raise EnvironmentBuildError(
            "building the base image needs root (debootstrap creates a root file system).",
            fix="Run `sudo ml image build-base` once; later deploys reuse the image.",
        )
    folder = rootfs.parent
    debs = folder / "debs"
    debs.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="root-", dir=folder))
    try:
        progress(f"debootstrap {SUITE} (minbase + {', '.join(PACKAGES)}) from {mirror}")
        command = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            "--components=main",
            f"--cache-dir={debs}",
            SUITE,
            str(root),
            mirror,
        ]
        _stream(command, progress, what="debootstrap")
        progress("slimming the root file system (apt lists, caches, docs, locales)")
        _slim(root)
        progress("packing the root file system")
        partial = folder / f".{rootfs.name}.{os.getpid()}.partial"
        try:
            excluded = ("--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*")
            pack = ["tar", "--numeric-owner", "--use-compress-program=gzip -1", *excluded]
            subprocess.run(
                [*pack, "-C", str(root), "-cf", str(partial), "."],
                check=True,
                capture_output=True,
            )
            partial.replace(rootfs)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        _remove_tree(root)


def _slim(root: Path) -> None:
    for relative in _EMPTIED:
        folder = root / relative
        if folder.is_dir():
            for child in folder.iterdir():
                if child.is_dir() and not child.is_symlink():
                    _remove_tree(child)
                else:
                    child.unlink()
    for doc in (root / "usr/share/doc").rglob("*"):
        if not doc.is_dir() and doc.name != "copyright":
            doc.unlink()
    for old in [*root.glob("var/cache/debconf/*-old"), *root.glob("var/lib/dpkg/*-old")]:
        old.unlink()
    _remove_tree(root / "debootstrap")
    # debootstrap copies the host's resolver and name; Docker supplies both at run time.
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/apt/sources.list").write_text(_SOURCES)
    (root / "etc/dpkg/dpkg.cfg.d/mlcli-slim").write_text(_DPKG_SLIM)
    (root / "etc/apt/apt.conf.d/mlcli-clean").write_text(_APT_CLEAN)


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
    return BaseImage(tag, image.id, round(image.attrs.get("Size", 0) / 1e6, 1), source)


def _configured_base(ic: InferenceConfig | None) -> str | None:
    if ic is None:
        return None
    environment = getattr(ic, "environment", None) or {}
    name = (environment.get("docker") or {}).get("baseImage") or getattr(ic, "base_image", None)
    if not name:
        return None
    registry = getattr(ic, "base_image_registry", None) or {}
    address = (registry.get("address") if isinstance(registry, dict) else registry) or ""
    first = name.split("/", 1)[0]
    if address and not ("." in first or ":" in first or first == "localhost"):
        name = f"{address.rstrip('/')}/{name}"
    return name


def _where(ic: InferenceConfig | None) -> str:
    return str(getattr(ic, "path", None) or "inferenceConfig")


def label_instruction(values: dict[str, str]) -> str:
    """A Dockerfile LABEL line; json quoting is valid Dockerfile quoting for these strings."""
    return "LABEL " + " ".join(f"{json.dumps(k)}={json.dumps(v)}" for k, v in values.items())


def _stream(command: list[str], progress: Progress, *, what: str) -> None:
    tail: deque[str] = deque(maxlen=15)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if line:
                tail.append(line)
                progress(f"{what}: {line}")
    if proc.returncode != 0:
        raise EnvironmentBuildError(
            f"{what} failed (exit {proc.returncode}):\n" + "\n".join(tail),
            fix="Check that the Debian mirror is reachable (MLCLI_DEBIAN_MIRROR overrides "
            "it), then run `ml image build-base --rebuild`.",
        )


def _remove_leftovers(folder: Path) -> None:
    """Trees and partial tarballs of builds that were killed (we hold the lock: none runs)."""
    for leftover in folder.glob("root-*"):
        _remove_tree(leftover)
    for partial in folder.glob(".*.partial"):
        partial.unlink(missing_ok=True)


def _remove_tree(path: Path) -> None:
    """rm -rf that first unmounts what a killed debootstrap left mounted inside (proc, sys):
    deleting through a mount would reach the host's files."""
    if not path.exists() and not path.is_symlink():
        return
    prefix = str(path.resolve()) + "/"
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    for _ in range(3):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.2)
    shutil.rmtree(path)
