"""A slim Debian root file system for the base image, made with debootstrap.

`debootstrap --variant=minbase` with python3 and ca-certificates, then slimmed (apt lists,
caches, docs, locales removed; dpkg told to keep them out later too) and packed as a gzip
tarball that base.py imports into Docker. The tarball is cached under
$MLCLI_HOME/cache/base/ (the .debs too), keyed by the recipe, so a lost image comes back in
seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlcli.errors import EnvironmentBuildError
from mlcli.paths import mlcli_home
from mlcli.progress import Progress

SUITE = "bookworm"
PACKAGES = ("python3", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"

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


def recipe() -> dict[str, Any]:
    """Everything that shapes the root file system (base.py hashes it into the image tag)."""
    return {
        "format": _RECIPE_FORMAT,
        "suite": SUITE,
        "packages": PACKAGES,
        "files": [_DPKG_SLIM, _APT_CLEAN, _SOURCES],
        "emptied": _EMPTIED,
    }


def cache_dir() -> Path:
    return mlcli_home() / "cache" / "base"


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


def build_rootfs(rootfs: Path, *, mirror: str, progress: Progress) -> None:
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


def remove_leftovers(folder: Path) -> None:
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
