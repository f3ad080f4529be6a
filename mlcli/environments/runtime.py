"""Stage the scoring server's code where a model environment can import it.

A model environment gets `mlcli/__init__.py` and `mlcli/server/` on PYTHONPATH and nothing else
of mlcli: never click, rich or the CLI venv's site-packages. The copy lives under
runtime_dir()/<code hash>/, so a running service keeps the code it started with while a newer
mlcli stages its own beside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from mlcli.paths import runtime_dir

PACKAGE_DIR = Path(__file__).resolve().parent.parent
_SKIP_DIRS = {"__pycache__", "tests", ".pytest_cache"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}


def server_runtime_path() -> Path:
    """The folder to put on a model environment's PYTHONPATH (holds `mlcli/server/`)."""
    files = _server_files()
    digest = hashlib.sha256()
    for relative, source in files:
        digest.update(relative.as_posix().encode() + b"\0" + source.read_bytes() + b"\0")
    target = runtime_dir() / digest.hexdigest()[:16]
    if (target / "mlcli" / "__init__.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{target.name}-", dir=target.parent))
    try:
        for relative, source in files:
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)
        try:
            staging.chmod(0o755)
            staging.rename(target)  # atomic: the folder appears complete or not at all
        except OSError:
            if not (target / "mlcli" / "__init__.py").is_file():
                raise  # not the benign race of another `ml` staging the same code first
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _server_files() -> list[tuple[Path, Path]]:
    found = [(Path("mlcli/__init__.py"), PACKAGE_DIR / "__init__.py")]
    server = PACKAGE_DIR / "server"
    for root, dirs, names in os.walk(server):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(names):
            source = Path(root) / name
            if source.suffix in _SKIP_SUFFIXES or name.startswith("."):
                continue
            found.append((Path("mlcli") / source.relative_to(PACKAGE_DIR), source))
    return found
