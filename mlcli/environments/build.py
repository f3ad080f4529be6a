"""Build a model environment with uv, once per spec, atomically, under a lock.

Layout under envs_dir():
    <key>/                     a finished environment: a relocatable uv venv + mlcli-env.json
    .building-<key>-<pid>/     a build in progress (or the leftover of a killed one)
    .trash-<key>-<random>/     an environment being deleted
    .locks/<key>.lock          flock'ed by whoever builds or deletes <key>

A venv bakes absolute paths into its scripts' shebangs, so building at a temporary path and
renaming would break them. mlcli creates the venv with `uv venv --relocatable`: scripts find
their interpreter relative to themselves, pyvenv.cfg names only the base interpreter (which does
not move), and `uv pip install` keeps new scripts relocatable (pyvenv.cfg: relocatable = true).
So the build happens in `.building-*` and one rename publishes it: `<key>/` exists only when it
is complete, whatever was killed when.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from mlcli.environments.interpreters import choose_interpreter
from mlcli.environments.spec import EnvironmentSpec
from mlcli.errors import EnvironmentBuildError
from mlcli.files import write_json_atomically
from mlcli.paths import envs_dir
from mlcli.progress import Notice, Progress, reporter

RECORD = "mlcli-env.json"  # written last inside the build folder, before the rename
LAST_USED = ".last-used"  # its mtime: when a deploy last asked for this environment
REQUIREMENTS = "mlcli-requirements.txt"


@dataclass(frozen=True, slots=True)
class Environment:
    """A finished model environment."""

    key: str
    path: Path
    python: Path  # <path>/bin/python: what deploy runs `-m mlcli.server` with
    python_version: str  # "3.11.7"
    spec: EnvironmentSpec
    base_python: str = ""  # the interpreter the venv was made from
    created_time: str = ""
    build_seconds: float = 0.0
    frozen: tuple[str, ...] = ()  # exact pins, as `uv pip freeze` printed them

    @property
    def last_used_time(self) -> str:
        try:
            stamp = (self.path / LAST_USED).stat().st_mtime
        except FileNotFoundError:
            return self.created_time
        return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "path": str(self.path),
            "python": str(self.python),
            "pythonVersion": self.python_version,
            "basePython": self.base_python,
            "createdTime": self.created_time,
            "lastUsedTime": self.last_used_time,
            "buildSeconds": round(self.build_seconds, 2),
            "spec": self.spec.to_dict(),
            "packages": list(self.frozen),
        }


def ensure_environment(
    spec: EnvironmentSpec, *, on_progress: Progress | None = None
) -> Environment:
    """The environment for `spec`, built now unless an identical one exists.

    Two `ml` processes asking for the same spec at once build it once: the second waits on the
    lock, then finds the finished folder.
    """
    say = reporter(on_progress)
    if spec.skipped_azureml:
        say(
            Notice(
                f"{', '.join(spec.skipped_azureml)}: not installed; mlcli's scoring server and "
                "its azureml compatibility modules stand in for them."
            )
        )
    dropped = [entry for entry in spec.skipped_conda if not _announced_silently(entry)]
    if dropped:
        say(
            Notice(
                f"{', '.join(dropped)}: conda-only packages (not Python packages), not "
                "installed; PyPI wheels bundle the libraries they need."
            )
        )
    existing = load_environment(spec.key, touch=True)
    if existing and existing.python.exists():
        say(f"using cached environment {spec.key} (Python {existing.python_version})")
        _say_substitution(spec, existing, say)
        return existing
    with environment_lock(spec.key, on_wait=say) as lock_fd:
        existing = load_environment(spec.key, touch=True)
        if existing and existing.python.exists():  # built by the process we waited for
            say(f"using environment {spec.key}, built by another ml process")
            return existing
        if existing:
            # bin/python links to the base interpreter: gone when that Python was uninstalled.
            say(f"environment {spec.key} lost its interpreter {existing.base_python}; rebuilding")
            discard(existing.path)
        return _build(spec, lock_fd, say)


# The scoring server's own packages (and what they need at their lower bounds) are never held
# back to a date: they must be recent enough for the server, whatever the user's file says.
_SERVER_PACKAGES_NOT_AS_OF = (
    "httptools", "uvloop", "prometheus-client", "werkzeug", "markupsafe", "inference-schema",
    "wrapt", "python-dateutil", "pytz", "six",
)  # fmt: skip


def _as_of_flags(spec: EnvironmentSpec) -> list[str]:
    """uv's exclude-newer for a spec resolved as of a date (the end of that day, UTC)."""
    if not spec.as_of:
        return []
    flags = ["--exclude-newer", f"{spec.as_of}T23:59:59Z"]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT00:00:00Z")
    for package in _SERVER_PACKAGES_NOT_AS_OF:
        flags += ["--exclude-newer-package", f"{package}={tomorrow}"]
    return flags


def _say_substitution(spec: EnvironmentSpec, existing: Environment, say: Progress) -> None:
    """A cached environment keeps the interpreter chosen when it was built: say so every time
    it stands in for another version (the decision is the user's to see, not only once)."""
    wanted = spec.python
    if re.fullmatch(r"\d+(\.\d+)*", wanted) and not f"{existing.python_version}.".startswith(
        f"{wanted}."
    ):
        say(
            Notice(
                f"python={wanted} is not installed here; environment {existing.key} uses Python "
                f"{existing.python_version} instead ({existing.base_python})."
            )
        )


def _announced_silently(conda_entry: str) -> bool:
    """python and pip are conda plumbing every file lists: dropping them is no news."""
    name = re.split(r"[\s=<>!~]", conda_entry.strip(), maxsplit=1)[0].lower()
    return name in {"python", "pip", "setuptools", "wheel"}


def load_environment(key: str, *, touch: bool = False) -> Environment | None:
    """A finished environment by key, or None."""
    path = envs_dir() / key
    try:
        record = json.loads((path / RECORD).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if touch:
        with contextlib.suppress(OSError):
            (path / LAST_USED).touch()
    return Environment(
        key=key,
        path=path,
        python=path / "bin" / "python",
        python_version=record["pythonVersion"],
        spec=EnvironmentSpec.from_dict(record["spec"]),
        base_python=record.get("basePython", ""),
        created_time=record.get("createdTime", ""),
        build_seconds=record.get("buildSeconds", 0.0),
        frozen=tuple(record.get("frozen", ())),
    )


def frozen_requirements(env: Environment) -> list[str]:
    """Exact pins of everything installed in `env` (`name==version` lines), for images."""
    if env.frozen:
        return list(env.frozen)
    return _freeze(env.python)


@contextlib.contextmanager
def environment_lock(key: str, *, on_wait: Progress | None = None) -> Iterator[int]:
    """Hold the exclusive lock of environment `key`; yields the lock file's descriptor."""
    locks = envs_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    fd = os.open(locks / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait(f"waiting for another ml process building environment {key}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def lock_is_free(key: str) -> bool:
    """True when nobody builds or deletes `key` right now (a leftover can go)."""
    path = envs_dir() / ".locks" / f"{key}.lock"
    if not path.exists():
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _build(spec: EnvironmentSpec, lock_fd: int, say: Progress) -> Environment:
    started = time.monotonic()
    root = envs_dir()
    for leftover in root.glob(f".building-{spec.key}-*"):  # a killed build's; we hold the lock
        shutil.rmtree(leftover, ignore_errors=True)
    uv = find_uv()
    choice = choose_interpreter(spec.python, uv=uv)
    if choice.note:
        say(Notice(choice.note))
    interpreter = choice.interpreter
    building = root / f".building-{spec.key}-{os.getpid()}"
    say(
        f"building environment {spec.key}: Python {interpreter.version_text}, "
        f"{len(spec.requirements)} requirements from {spec.source}"
        + (f", as of {spec.as_of}" if spec.as_of else "")
    )
    try:
        _run_uv(
            [uv, "venv", "--relocatable", "--no-project", "--python", interpreter.path, building],
            spec=spec,
            lock_fd=lock_fd,
            say=say,
        )
        requirements = building / REQUIREMENTS
        requirements.write_text("\n".join(spec.requirements) + "\n", encoding="utf-8")
        python = building / "bin" / "python"
        _run_uv(
            [uv, "pip", "install", "--python", python, "-r", requirements, *_as_of_flags(spec)],
            spec=spec,
            lock_fd=lock_fd,
            say=say,
        )
        created = datetime.now(UTC).isoformat(timespec="seconds")
        seconds = time.monotonic() - started
        record = {
            "key": spec.key,
            "pythonVersion": interpreter.version_text,
            "basePython": str(interpreter.path),
            "createdTime": created,
            "buildSeconds": round(seconds, 3),
            "uv": _uv_version(uv),
            "spec": spec.to_dict(),
            "frozen": _freeze(python),
        }
        write_json_atomically(building / RECORD, record, mode=0o644)
        (building / LAST_USED).touch()
        building.rename(root / spec.key)  # publish: the folder appears complete or not
    finally:
        shutil.rmtree(building, ignore_errors=True)
    say(f"environment {spec.key} ready in {time.monotonic() - started:.1f} s")
    built = load_environment(spec.key)
    assert built is not None, "the environment vanished right after it was published"
    return built


def _run_uv(command: list[Any], *, spec: EnvironmentSpec, lock_fd: int, say: Progress) -> list[str]:
    """Run uv, relaying its stderr lines as progress; EnvironmentBuildError on failure.

    uv inherits the lock's descriptor: if this `ml` is killed mid-install, the lock stays held
    until uv itself exits, so nobody deletes the folder uv is still writing into.
    """
    process = subprocess.Popen(
        [str(part) for part in command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=uv_environment(),
        cwd=envs_dir(),
        pass_fds=(lock_fd,),
    )
    lines = []
    assert process.stderr is not None
    try:
        for raw in process.stderr:
            line = raw.rstrip()
            lines.append(line)
            if line and not line.startswith(("Using ", "Creating ", "Activate ")):
                say(f"uv: {line.strip()}")
    except BaseException:  # Ctrl-C, or a progress callback failing: uv must not outlive us
        process.kill()
        process.wait()
        raise
    if process.wait() != 0:
        raise _build_error(spec, lines)
    return lines


_NOT_FOUND = re.compile(r"Because (\S+) was not found in the package registry")


def _build_error(spec: EnvironmentSpec, lines: list[str]) -> EnvironmentBuildError:
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    useful = [line for line in lines[starts[0] :] if line.strip()] if starts else lines[-15:]
    detail = "\n".join(useful[:20])
    missing = _NOT_FOUND.search(detail)
    if missing:
        package = missing.group(1)
        origin = spec.origin_of(package) or package
        searched = "" if origin == package else f" (mlcli looked for it as {package!r})"
        return EnvironmentBuildError(
            f"package {origin!r} is not on PyPI{searched}, so mlcli cannot install it.",
            where=spec.where or spec.source,
            fix="mlcli installs conda packages from PyPI, so a conda-only package must go: "
            "remove it, or list its PyPI equivalent under 'pip:' (for example pytorch -> torch, "
            "py-xgboost -> xgboost).",
        )
    return EnvironmentBuildError(
        f"uv could not install the environment's packages:\n{detail}",
        where=spec.where or spec.source,
        fix="Check the versions asked for (each must exist on PyPI for the chosen Python), or "
        "the network and index settings (UV_INDEX_URL).",
    )


def _freeze(python: Path) -> list[str]:
    result = subprocess.run(
        [str(find_uv()), "pip", "freeze", "--python", str(python)],
        capture_output=True,
        text=True,
        env=uv_environment(),
        check=False,
    )
    if result.returncode != 0:
        raise EnvironmentBuildError(
            f"uv pip freeze failed for {python}: {result.stderr.strip()}",
            fix="Delete the environment with `ml env prune --all` and deploy again.",
        )
    return [line for line in result.stdout.splitlines() if line.strip()]


@cache
def find_uv() -> Path:
    """uv from mlcli's own dependency (the version it was tested with), else from PATH."""
    try:
        from uv import find_uv_bin

        return Path(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return Path(found)
    raise EnvironmentBuildError(
        "uv is not installed, and mlcli builds model environments with it.",
        fix="Reinstall mlcli (it depends on the `uv` package) or put uv on PATH.",
    )


def uv_environment() -> dict[str, str]:
    """uv's environment: never download an interpreter; trust the host's CA bundle."""
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)  # the CLI's own venv must not leak into the model's
    if "SSL_CERT_FILE" not in env and "UV_NATIVE_TLS" not in env:
        env["UV_NATIVE_TLS"] = "1"  # custom CAs in the system store (a re-signing proxy)
    return env


def _uv_version(uv: Path) -> str:
    result = subprocess.run([str(uv), "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def discard(path: Path) -> None:
    """Rename out of the way first (atomic: no half environment is ever visible), then delete."""
    if not path.exists():
        return
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    path.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
