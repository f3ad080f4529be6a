"""Environment and app images: a model environment installed offline from a host wheelhouse.

The build never relies on the container reaching the network (or trusting the host's
re-signing proxy, or seeing the host's local package indexes): the host resolves the
environment (the same pins as the PROCESS environment of the same spec), downloads or builds
the wheels with pip under the host's own configuration, and the image installs them with
`pip install --no-index`. The wheels go in through a build stage that is dropped afterwards,
so the image holds the installed environment only, not a second copy as wheel files.

    mlcli/env:<spec key>     base + /opt/mlcli/env (a venv of the image's python3)
                             + extraDockerfileSteps
    mlcli/app:<name>-<hash>  env + the scoring server (/opt/mlcli/runtime, on PYTHONPATH)
                             + the app root at /var/azureml-app (AML_APP_ROOT)
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcli.errors import EnvironmentBuildError
from mlcli.images import BASE_IMAGE, ENV_IMAGE, file_lock, find_image, labels
from mlcli.images.base import PYTHON, base_tag, check_python, label_instruction
from mlcli.paths import mlcli_home

if TYPE_CHECKING:
    import docker

    from mlcli.environments import Environment

Progress = Callable[[str], None]

ENV_REPOSITORY = "mlcli/env"
APP_REPOSITORY = "mlcli/app"
VENV = "/opt/mlcli/env"
RUNTIME = "/opt/mlcli/runtime"
APP_ROOT = "/var/azureml-app"  # Azure's AML_APP_ROOT
MODELS = "azureml-models"
CONTAINER_PORT = 5001  # Azure's port inside the container
_WHEELS = "/tmp/mlcli-wheels"
_LAYOUT_FORMAT = 1  # bump when the Dockerfiles below change shape


@dataclass(frozen=True, slots=True)
class BuiltImage:
    tag: str
    id: str
    size_mb: float
    built: bool  # False: an identical image existed and was reused

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "id": self.id, "sizeMB": self.size_mb, "built": self.built}


# --- environment images --------------------------------------------------------------------------


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
    progress = on_progress or (lambda _message: None)
    steps = read_extra_steps(extra_steps)
    tag = env_image_tag(environment.key, base, steps)
    base_id = client.images.get(base).id
    existing = _current_env_image(client, tag, base_id)
    if existing is not None:
        progress(f"using image {tag}")
        return BuiltImage(tag, existing.id, _size_mb(existing), built=False)
    folder = build_dir()
    with file_lock(folder / f"env-{environment.key}.lock", progress, f"{tag} is being built"):
        existing = _current_env_image(client, tag, base_id)
        if existing is not None:
            return BuiltImage(tag, existing.id, _size_mb(existing), built=False)
        if base != base_tag():
            check_python(client, base, where="inferenceConfig")
        with _context_dir() as context:
            write_wheelhouse(environment, context / "wheels", on_progress=progress)
            dockerfile = env_stages(base, extra_steps=steps) + label_instruction(
                labels(kind="env", env=environment.key, base_image=base_id)
            )
            (context / "Dockerfile").write_text(dockerfile + "\n")
            progress(f"building {tag} (docker build, wheels installed offline)")
            image_id = docker_build(client, context, tag=tag, progress=progress)
        image = client.images.get(image_id)
        return BuiltImage(tag, image.id, _size_mb(image), built=True)


def _current_env_image(client: docker.DockerClient, tag: str, base_id: str) -> Any:
    image = find_image(client, tag)
    if image is None or (image.labels or {}).get(BASE_IMAGE) != base_id:
        return None
    return image


def env_stages(base: str, *, extra_steps: str) -> str:
    """The Dockerfile of an env image, without its LABEL line.

    Stage `mlcli-wheels` makes the venv from the wheelhouse; the final stage copies only the
    venv, so the wheel files never reach the image's layers.
    """
    pip = f"{VENV}/bin/python $(ls {_WHEELS}/pip-*.whl)/pip"
    text = f"""\
FROM {base} AS mlcli-wheels
{label_instruction(labels(kind="wheels"))}
COPY wheels/ {_WHEELS}/
RUN python3 -m venv --without-pip {VENV} \\
 && {pip} install --no-index --find-links {_WHEELS} --no-cache-dir \\
      --disable-pip-version-check --progress-bar off -r {_WHEELS}/requirements.txt

FROM {base}
COPY --from=mlcli-wheels {VENV} {VENV}
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


# --- the wheelhouse ------------------------------------------------------------------------------


def write_wheelhouse(
    environment: Environment, dest: Path, *, on_progress: Progress | None = None
) -> list[str]:
    """Wheels for the environment's exact pins (plus pip) in `dest`, and dest/requirements.txt.

    Downloaded (or built from sdists) on the host by a Python 3.11 pip: the host is what can
    reach the package indexes, and a bookworm host builds wheels that fit the bookworm image.
    When the environment's Python is not 3.11 its pins may not exist for 3.11, so the spec's
    own requirements are resolved again, for 3.11.
    """
    from mlcli.environments import frozen_requirements

    progress = on_progress or (lambda _message: None)
    dest.mkdir(parents=True, exist_ok=True)
    same_python = environment.python_version.split(".")[:2] == PYTHON.split(".")
    if same_python:
        wanted, deps = frozen_requirements(environment), False
    else:
        progress(
            f"the image runs Debian's Python {PYTHON}; environment {environment.key} has "
            f"Python {environment.python_version}, so its requirements are resolved again "
            f"for {PYTHON}"
        )
        wanted, deps = list(environment.spec.requirements), True
    wanted = [line for line in wanted if not _is_pip(line)] + ["pip"]
    requested = dest.parent / "requested.txt"
    requested.write_text("\n".join(wanted) + "\n")
    try:
        _pip_wheel(requested, dest, deps=deps, progress=progress)
    finally:
        requested.unlink(missing_ok=True)
    pins = sorted(_pin_of(wheel) for wheel in dest.glob("*.whl"))
    (dest / "requirements.txt").write_text(
        f"# The environment {environment.key}, pinned; installed offline from this folder.\n"
        + "\n".join(pins)
        + "\n"
    )
    return pins


def _pip_wheel(requested: Path, dest: Path, *, deps: bool, progress: Progress) -> None:
    from mlcli.environments.build import find_uv, uv_environment

    command = [str(find_uv()), "tool", "run", "--python", PYTHON, "pip", "wheel"]
    command += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]
    command += ["--prefer-binary", "-w", str(dest), "-r", str(requested)]
    if not deps:
        command.append("--no-deps")  # the pins are a complete, resolved set
    tail: deque[str] = deque(maxlen=20)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=uv_environment(),
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                tail.append(line.rstrip())
                progress(f"pip: {line.strip()}")
    if proc.returncode != 0:
        raise EnvironmentBuildError(
            "could not download the environment's wheels on this host:\n" + "\n".join(tail),
            fix=f"Check the package names and versions; every package needs a wheel (or an "
            f"sdist that builds) for Python {PYTHON} on Linux x86_64.",
        )


def _pin_of(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}=={version}"


def _is_pip(requirement: str) -> bool:
    return re.split(r"[\s=<>!~;\[@]", requirement.strip(), maxsplit=1)[0].lower() == "pip"


# --- app images ----------------------------------------------------------------------------------


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
        return BuiltImage(tag, existing.id, _size_mb(existing), built=False)
    with _context_dir() as context:
        copy_tree(runtime, context / "runtime")
        copy_tree(app_root, context / "app", exclude=excluded)
        all_labels = {**image_labels, ENV_IMAGE: env_image.id}
        dockerfile = f"FROM {env_image.tag}\n{app_section(layout)}{label_instruction(all_labels)}\n"
        (context / "Dockerfile").write_text(dockerfile)
        progress(f"building {tag}")
        image_id = docker_build(client, context, tag=tag, progress=progress)
    image = client.images.get(image_id)
    return BuiltImage(tag, image.id, _size_mb(image), built=True)


# --- docker build --------------------------------------------------------------------------------


def docker_build(
    client: docker.DockerClient, context: Path, *, tag: str, progress: Progress
) -> str:
    """`docker build --network host --force-rm` of `context`, streaming its lines; the image id.

    The engine tags the image only when every step succeeded. The `mlcli-wheels` stage's
    image (the wheel files) is removed afterwards.
    """
    import docker

    tail: deque[str] = deque(maxlen=25)
    image_id = ""
    last_step_id = ""
    stage_ids: list[str] = []
    froms = 0
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
                if re.match(r"^Step \d+/\d+ : FROM ", line):
                    if froms and last_step_id:
                        stage_ids.append(last_step_id)
                    froms += 1
                elif found := re.match(r"^ ---> ([0-9a-f]{12,64})$", line):
                    last_step_id = found.group(1)
                elif found := re.match(r"^Successfully built ([0-9a-f]+)$", line):
                    image_id = image_id or found.group(1)
    except docker.errors.APIError as exc:
        raise EnvironmentBuildError(f"docker build of {tag} failed: {exc}") from exc
    if not image_id:
        raise EnvironmentBuildError(f"docker build of {tag} reported no image:\n" + "\n".join(tail))
    for stage_id in stage_ids:
        # Only the dangling stage image goes; a layer shared with a tagged image stays.
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(stage_id)
    return image_id


# --- helpers -------------------------------------------------------------------------------------


def build_dir() -> Path:
    folder = mlcli_home() / "cache" / "build"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _context_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="context-", dir=build_dir()))
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


def _tag_safe(name: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip(".-")[:80] or "app"


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./:-]*", value) else '"' + value + '"'


def _size_mb(image: Any) -> float:
    return round(image.attrs.get("Size", 0) / 1e6, 1)
