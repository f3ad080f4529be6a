"""Environment and app images: the host's model environment, copied in, never re-resolved.

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
    mlcli/app:<name>-<hash>  env + the scoring server (/opt/mlcli/runtime, on PYTHONPATH)
                             + the app root at /var/azureml-app (AML_APP_ROOT)
"""

from __future__ import annotations

import contextlib
import dataclasses
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
SITE_PACKAGES = f"{VENV}/lib/python{PYTHON}/site-packages"
RUNTIME = "/opt/mlcli/runtime"
APP_ROOT = "/var/azureml-app"  # Azure's AML_APP_ROOT
MODELS = "azureml-models"
CONTAINER_PORT = 5001  # Azure's port inside the container
_LAYOUT_FORMAT = 2  # bump when the Dockerfiles below change shape
_PIP_SCRIPT = f"""\
#!{VENV}/bin/python
import sys

from pip._internal.cli.main import main

sys.exit(main())
"""


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
            write_environment(environment, context / "env", on_progress=progress)
            dockerfile = env_steps(base, extra_steps=steps) + label_instruction(
                labels(kind="env", env=environment.key, base_image=base_id)
            )
            (context / "Dockerfile").write_text(dockerfile + "\n")
            progress(f"building {tag} (docker build: the host environment copied in)")
            image_id = docker_build(client, context, tag=tag, progress=progress)
        image = client.images.get(image_id)
        return BuiltImage(tag, image.id, _size_mb(image), built=True)


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
    progress = on_progress or (lambda _message: None)
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
    progress = on_progress or (lambda _message: None)
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


# --- helpers -------------------------------------------------------------------------------------


def build_dir() -> Path:
    folder = mlcli_home() / "cache" / "build"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def _context_dir() -> Iterator[Path]:
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


def _tag_safe(name: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", name.lower()).strip(".-")[:80] or "app"


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./:-]*", value) else '"' + value + '"'


def _size_mb(image: Any) -> float:
    return round(image.attrs.get("Size", 0) / 1e6, 1)
