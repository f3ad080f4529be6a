"""mlcli/api.py: both faces (the `ml` CLI and the v1 Python SDK) reach the core only through
the public surface it names, and every name it lists exists."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import mlcli
from mlcli.api import FACES, SURFACE

PACKAGE = Path(mlcli.__file__).parent


def _core_names_used(path: Path) -> set[tuple[str, str]]:
    """(module, name) for every core name a face's file imports, also as `module.name` after
    `from mlcli import module`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    used: set[tuple[str, str]] = set()
    modules: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            used.update(
                (alias.name, "*")
                for alias in node.names
                if alias.name.startswith("mlcli") and not alias.name.startswith(FACES)
            )
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if not node.module.startswith("mlcli") or node.module.startswith(FACES):
            continue
        for alias in node.names:
            if node.module == "mlcli":
                modules[alias.asname or alias.name] = f"mlcli.{alias.name}"
            else:
                used.add((node.module, alias.name))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ):
            used.add((modules[node.value.id], node.attr))
    return used


FACE_FILES = sorted(path for face in ("cli", "azureml") for path in (PACKAGE / face).rglob("*.py"))


@pytest.mark.parametrize("path", FACE_FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_face_imports_only_the_core_api(path: Path) -> None:
    outside = sorted(
        f"{module}.{name}"
        for module, name in _core_names_used(path)
        if name not in SURFACE.get(module, ())
    )

    assert outside == [], (
        f"{path.relative_to(PACKAGE)} reaches past mlcli/api.py: {outside}. Call a name of the "
        "surface, or add the core function both faces need to it (and document it)."
    )


def test_every_name_of_the_surface_exists() -> None:
    missing = [
        f"{module}.{name}"
        for module, names in SURFACE.items()
        for name in names
        if not hasattr(importlib.import_module(module), name)
    ]

    assert missing == []


def test_the_check_sees_a_face_reaching_into_the_core(tmp_path: Path) -> None:
    face = tmp_path / "face.py"
    face.write_text(
        "from mlcli import config\n"
        "from mlcli.services import Services\n"
        "def f():\n    return config._resolve_file\n",
        encoding="utf-8",
    )

    used = _core_names_used(face)

    assert {("mlcli.services", "Services"), ("mlcli.config", "_resolve_file")} <= used
    assert all(name not in SURFACE.get(module, ()) for module, name in used)
