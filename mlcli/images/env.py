"""Environment images: the host's model environment, copied in, never re-resolved.

The build never relies on the container reaching the network (or trusting the host's
re-signing proxy, or seeing the host's local package indexes): the environment is resolved,
downloaded and installed on the host by uv, exactly as for PROCESS (the same cached
environment, keyed by the same spec hash), and its site-packages are copied into the image,
byte for byte, with bytecode compiled on the host. Debian bookworm's python3 is 3.11 (3.11.2),
so the image uses the spec's environment when it runs Python 3.11, else the same requirements
built for 3.11. pip is added (extraDockerfileSteps may `pip install`), nothing is installed
inside the build.

    mlcli/env:<spec key>     base + /opt/mlcli/env (a venv of the image's python3 holding the
                             host environment's packages) + extraDockerfileSteps
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import EnvironmentBuildError
from mlcli.images import BASE_IMAGE, file_lock, find_image, labels
from mlcli.images.base import PYTHON, base_tag, check_python, label_instruction
from mlcli.images.build import BuiltImage, build_dir, context_dir, copy_tree, docker_build
from mlcli.progress import Progress, reporter

if TYPE_CHECKING:
    import docker

    from mlcli.environments import Environment


ENV_REPOSITORY = "mlcli/env"
VENV = "/opt/mlcli/env"
SITE_PACKAGES = f"{VENV}/lib/python{PYTHON}/site-packages"
_PIP_SCRIPT = f"""\
#!{VENV}/bin/python
import sys

from pip._internal.cli.main import main

sys.exit(main())
"""


def env_image_tag(key: str, base: str, extra_steps: str) -> str:
    """mlcli/env:<spec key>; a custom baseImage or extraDockerfileSteps add a suffix."""
    if base == base_tag() and not extra_steps:
        return f"{ENV_REPOSITORY}:{key}"
    variant = hashlib.sha256(f"{base}\0{extra_steps}".encode()).hexdigest()[:8]
    return f"{ENV_REPOSITORY}:{key}-{variant}"


def ensure_env_image(
    client: docker.DockerClient,
    environment: Environment,
    *,
    base: str,
    extra_steps: Path | None = None,
    on_progress: Progress | None = None,
) -> BuiltImage:
    """The env image for `environment` on `base`, built now unless an up-to-date one exists.

    Up to date means built on the base image that `base` names today (a rebuilt base, or a
    re-tagged custom baseImage, makes env images on the old one stale).
    """
    progress = reporter(on_progress)
    steps = read_extra_steps(extra_steps)
    tag = env_image_tag(environment.key, base, steps)
    base_id = client.images.get(base).id
    existing = _current_env_image(client, tag, base_id)
    if existing is not None:
        progress(f"using image {tag}")
        return BuiltImage.of(tag, existing, built=False)
    folder = build_dir()
    with file_lock(folder / f"env-{environment.key}.lock", progress, f"{tag} is being built"):
        existing = _current_env_image(client, tag, base_id)
        if existing is not None:
            return BuiltImage.of(tag, existing, built=False)
        if base != base_tag():
            check_python(client, base, where="inferenceConfig")
        with context_dir() as context:
            write_environment(environment, context / "env", on_progress=progress)
            dockerfile = env_steps(base, extra_steps=steps) + label_instruction(
                labels(kind="env", env=environment.key, base_image=base_id)
            )
            (context / "Dockerfile").write_text(dockerfile + "\n")
            progress(f"building {tag} (docker build: the host environment copied in)")
            image_id = docker_build(client, context, tag=tag, progress=progress)
        image = client.images.get(image_id)
        return BuiltImage.of(tag, image, built=True)


def _current_env_image(client: docker.DockerClient, tag: str, base_id: str) -> Any:
    image = find_image(client, tag)
    if image is None or (image.labels or {}).get(BASE_IMAGE) != base_id:
        return None
    return image


def env_steps(base: str, *, extra_steps: str) -> str:
    """The Dockerfile of an env image, without its LABEL line (context: see write_environment)."""
    text = f"""\
FROM {base}
RUN python3 -m venv --without-pip {VENV}
COPY env/bin/ {VENV}/bin/
COPY env/site-packages/ {SITE_PACKAGES}/
ENV VIRTUAL_ENV={VENV} PATH={VENV}/bin:$PATH
"""
    if extra_steps:
        text += f"# extraDockerfileSteps\n{extra_steps.rstrip()}\n"
    return text


def read_extra_steps(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise EnvironmentBuildError(
            f"cannot read {path}: {exc.strerror}.",
            where="inferenceConfig, field extraDockerfileSteps",
            fix="Point extraDockerfileSteps at a file of Dockerfile instructions.",
        ) from exc
    if re.search(r"^\s*FROM\s", text, re.MULTILINE | re.IGNORECASE):
        raise EnvironmentBuildError(
            "extraDockerfileSteps may not start a new stage with FROM.",
            where=f"{path}, extraDockerfileSteps",
            fix="Use baseImage for a different base; keep RUN/ENV/COPY-free steps here.",
        )
    return text


# --- the environment's files --------------------------------------------------------------------


def image_environment(
    environment: Environment, *, on_progress: Progress | None = None
) -> Environment:
    """The host environment whose packages go into the image: `environment` itself when it
    runs Python 3.11 (the image's), else the same requirements built for 3.11."""
    from mlcli.environments import ensure_environment

    if environment.python_version.split(".")[:2] == PYTHON.split("."):
        return environment
    progress = reporter(on_progress)
    progress(
        f"the image runs Debian's Python {PYTHON}; environment {environment.key} has Python "
        f"{environment.python_version}, so its requirements are built again for {PYTHON}"
    )
    spec = dataclasses.replace(environment.spec, python=PYTHON)
    return ensure_environment(spec, on_progress=on_progress)


def write_environment(
    environment: Environment, dest: Path, *, link: bool = True, on_progress: Progress | None = None
) -> Environment:
    """dest/site-packages and dest/bin: the host environment's packages plus pip, with bytecode
    compiled (hash-checked .pyc, valid whatever the files' times become in the image).

    `link` hard-links the files (a build context is read, never written; compiling replaces
    .pyc files by rename, so the host environment is never changed)."""
    progress = reporter(on_progress)
    source = image_environment(environment, on_progress=progress)
    site = dest / "site-packages"
    copy_tree(source.path / "lib" / f"python{PYTHON}" / "site-packages", site, link=link)
    bin_dir = dest / "bin"
    bin_dir.mkdir(parents=True)
    for script in sorted((source.path / "bin").iterdir()):
        # uv's relocatable scripts find the python beside them, so they work in the image too.
        if script.is_file() and not re.match(r"^(python|activate|deactivate|pydoc)", script.name):
            shutil.copy2(script, bin_dir / script.name)
    progress("adding pip")
    _add_pip(source, site)
    (bin_dir / "pip").write_text(_PIP_SCRIPT)
    (bin_dir / "pip").chmod(0o755)
    progress(f"compiling bytecode for Python {PYTHON}")
    compile_all = ["-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    compile_all += ["-x", r"[/\\]tests?[/\\]"]  # packages' own test suites are never imported
    subprocess.run(
        [str(source.python), *compile_all, str(site)],
        capture_output=True,  # files that are not valid Python (templates, py2 tests) are skipped
        check=False,
    )
    return source


def _add_pip(environment: Environment, site: Path) -> None:
    from mlcli.environments.build import find_uv, uv_environment

    with tempfile.TemporaryDirectory(dir=site.parent) as target:
        install = ["pip", "install", "--quiet", "--no-deps", "--target", target]
        result = subprocess.run(
            [str(find_uv()), *install, "--python", str(environment.python), "pip"],
            capture_output=True,
            text=True,
            env=uv_environment(),
        )
        if result.returncode != 0:
            raise EnvironmentBuildError(f"uv could not fetch pip: {result.stderr.strip()}")
        for item in Path(target).iterdir():
            if item.name != "bin":
                item.rename(site / item.name)
