"""Find the Python interpreters installed on this machine and pick one for a conda `python=`.

Nothing is ever downloaded: mlcli looks at pyenv's versions, at what `uv python list
--only-installed` knows (uv-managed Pythons, the system's), and at the interpreter running mlcli.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mlcli.errors import EnvironmentBuildError

# The scoring server's requirements (mlcli/server/requirements.txt) support Python 3.8+.
MIN_PYTHON = (3, 8)
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_CLAUSE = re.compile(r"^(==|>=|<=|!=|~=|>|<)?\s*(\d+(?:\.\d+)*)(\.\*)?$")


@dataclass(frozen=True, slots=True, order=True)
class Interpreter:
    version: tuple[int, int, int]
    path: Path

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


@dataclass(frozen=True, slots=True)
class Choice:
    interpreter: Interpreter
    note: str | None  # one line when the choice differs from the request


def choose_interpreter(requested: str, *, uv: Path) -> Choice:
    """The installed interpreter nearest to a conda python constraint ("3.9", ">=3.10").

    pyenv's and uv's own folders are read first (instant); `uv python list`, which also
    searches PATH but takes a second or two here, only when they hold no exact match.
    """
    choice = None
    for thorough in (False, True):
        found = installed_interpreters(uv, thorough=thorough)
        choice = _choose(requested, [i for i in found if i.version[:2] >= MIN_PYTHON], found)
        if choice and choice.note is None:
            return choice
    if choice:
        return choice
    if not any(i.version[:2] >= MIN_PYTHON for i in found):
        raise EnvironmentBuildError(
            f"no Python {'.'.join(map(str, MIN_PYTHON))} or later is installed on this machine.",
            fix="Install one (pyenv install 3.11, or apt-get install python3).",
        )
    raise EnvironmentBuildError(
        f"no installed Python satisfies python{requested}; installed: "
        f"{', '.join(sorted({i.version_text for i in found}, key=_version_key))}.",
        fix="Relax the python constraint in the conda file, or install a matching Python.",
    )


def _choose(requested: str, usable: list[Interpreter], found: list[Interpreter]) -> Choice | None:
    if not usable:
        return None
    exact = _VERSION.match(requested.strip())
    if exact:
        wanted = tuple(int(p) for p in exact.groups() if p is not None)
        if wanted[0] != 3:
            raise EnvironmentBuildError(
                f"python={requested} is asked for, but mlcli runs models on Python 3 only.",
                fix="Ask for python=3.8 or later in the conda file.",
            )
        same = [i for i in usable if i.version[: len(wanted)] == wanted]
        if same:
            return Choice(max(same), None)
        nearest = min(usable, key=lambda i: (_distance(i.version, wanted), i.version))
        return Choice(nearest, _differs(requested, nearest, found))
    clauses = [c.strip() for c in requested.split(",") if c.strip()]
    matching = [i for i in usable if all(_satisfies(i.version, c, requested) for c in clauses)]
    return Choice(max(matching), None) if matching else None


def _distance(version: tuple[int, int, int], wanted: tuple[int, ...]) -> tuple[int, int]:
    # Minor versions apart first; on a tie the caller's min() over (distance, version) takes
    # the older Python: pins written for 3.N more often have wheels for an older Python than
    # for one released after them.
    minor_gap = abs(version[1] - (wanted[1] if len(wanted) > 1 else version[1]))
    patch_gap = abs(version[2] - wanted[2]) if len(wanted) > 2 else 0
    return (minor_gap, patch_gap)


def _differs(requested: str, chosen: Interpreter, found: list[Interpreter]) -> str:
    usable = {i.version_text for i in found if i.version[:2] >= MIN_PYTHON}
    installed = ", ".join(sorted(usable, key=_version_key))
    return (
        f"python={requested} is not installed here; using Python {chosen.version_text} "
        f"({chosen.path}), the nearest of: {installed}."
    )


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _satisfies(version: tuple[int, int, int], clause: str, requested: str) -> bool:
    match = _CLAUSE.match(clause)
    if not match:
        raise EnvironmentBuildError(
            f"python{requested} is not a python constraint mlcli understands.",
            fix="Write python=3.11, python>=3.9 or python>=3.9,<3.12 in the conda file.",
        )
    operator, number, star = match.group(1) or "==", match.group(2), match.group(3)
    bound = tuple(int(p) for p in number.split("."))
    if star or operator == "==":
        equal = version[: len(bound)] == bound
        return equal
    head = version[: len(bound)]
    return {
        ">=": head >= bound,
        "<=": head <= bound,
        ">": head > bound,
        "<": head < bound,
        "!=": head != bound,
        "~=": head >= bound and version[: len(bound) - 1] == bound[:-1],
    }[operator]


@cache
def installed_interpreters(uv: Path, *, thorough: bool = True) -> list[Interpreter]:
    """Every CPython found: pyenv's, uv-managed ones, the one running mlcli and, when
    thorough, whatever else `uv python list` finds (deduplicated)."""
    found: dict[Path, Interpreter] = {}
    listed = _uv_interpreters(uv) if thorough else []
    quick = (*_pyenv_interpreters(), *_uv_managed_interpreters(uv), _running_interpreter())
    for interpreter in (*quick, *listed):
        real = interpreter.path.resolve()
        found.setdefault(real, interpreter)
    return sorted(found.values())


def _pyenv_interpreters() -> list[Interpreter]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for entry in sorted(root.glob("*")) if root.is_dir() else []:
        match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", entry.name)  # CPython only: no pypy-*, t
        if not match:
            continue
        major, minor, patch = (int(p) for p in match.groups())
        executable = entry / "bin" / f"python{major}.{minor}"
        if executable.is_file() and os.access(executable, os.X_OK):
            found.append(Interpreter((major, minor, patch), executable))
    return found


def _uv_managed_interpreters(uv: Path) -> list[Interpreter]:
    root = os.environ.get("UV_PYTHON_INSTALL_DIR")
    base = Path(root) if root else _data_home() / "uv" / "python"
    found = []
    for entry in sorted(base.glob("cpython-*")) if base.is_dir() else []:
        match = re.match(r"cpython-(\d+)\.(\d+)\.(\d+)-", entry.name)  # not 3.13.0+freethreaded
        if not match:
            continue
        major, minor, patch = (int(p) for p in match.groups())
        executable = entry / "bin" / f"python{major}.{minor}"
        if executable.is_file():
            found.append(Interpreter((major, minor, patch), executable))
    return found


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def _uv_interpreters(uv: Path) -> list[Interpreter]:
    result = subprocess.run(
        [str(uv), "python", "list", "--only-installed", "--output-format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"},
        check=False,
    )
    if result.returncode != 0:
        return []  # an old uv without JSON output: pyenv and the running Python remain
    found = []
    for entry in json.loads(result.stdout or "[]"):
        path = entry.get("path") or ""
        parts = entry.get("version_parts") or {}
        if (
            entry.get("implementation") != "cpython"
            or entry.get("variant", "default") != "default"
            or "/shims/" in path  # pyenv shims only work for the pyenv-selected version
            or not path
        ):
            continue
        version = (parts.get("major", 0), parts.get("minor", 0), parts.get("patch", 0))
        found.append(Interpreter(version, Path(path)))
    return found


def _running_interpreter() -> Interpreter:
    base = Path(getattr(sys, "_base_executable", sys.executable))
    return Interpreter(tuple(sys.version_info[:3]), base)  # type: ignore[arg-type]
