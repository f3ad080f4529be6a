"""A fresh machine has only what the project's own files install.

uv comes with mlcli (its `uv` dependency, found by `find_uv()`), so nothing may run a bare `uv`
from PATH: it works on a machine where someone installed uv by hand and fails everywhere else.
These guards read the code (a grep-level check, as cheap as it is blunt) and CI's own script.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKED = ("tests", "bench", "samples", "mlcli")
# The one place that may look uv up on PATH: the resolver itself, as its fallback.
RESOLVER = REPO / "mlcli" / "environments" / "build.py"
BARE_TOOLS = {"uv", "uvx"}
SHELL_COMMAND = re.compile(r"^\s*(uv|uvx)\s")


def _python_files() -> list[Path]:
    mine = Path(__file__).resolve()
    return sorted(
        p for top in CHECKED for p in (REPO / top).rglob("*.py") if p not in (RESOLVER, mine)
    )


def _names_uv(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and (node.value in BARE_TOOLS or SHELL_COMMAND.match(node.value) is not None)
    )


def _bare_uv_uses(path: Path, root: Path = REPO) -> list[str]:
    """Where uv is run as a program by name: the first item of an argv list or tuple, or the
    first argument of a call (which() of the name, or a shell line starting with it)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple) and node.elts:
            first = node.elts[0]
        elif isinstance(node, ast.Call) and node.args:
            first = node.args[0]
        else:
            continue
        if _names_uv(first):
            found.append(f"{path.relative_to(root)}:{first.lineno}: {first.value!r}")
    return sorted(found, key=lambda use: int(use.split(":")[1]))


def test_no_test_bench_or_sample_runs_uv_by_its_bare_name() -> None:
    uses = [use for path in _python_files() for use in _bare_uv_uses(path)]

    assert uses == [], "resolve uv with mlcli.environments.build.find_uv():\n" + "\n".join(uses)


def test_the_guard_catches_a_bare_uv(tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    bad = (  # TOOL stands for the name, so this file holds no bare use of it itself
        'import subprocess\nsubprocess.run(["TOOL", "pip", "list"])\n'
        'subprocess.run("TOOL venv x", shell=True)\n'
        'print("the TOOL cache is warm")\n'
        'shutil.which("TOOL")\n'
        'cache = Path.home() / "TOOL"\n'
    )
    script.write_text(bad.replace("TOOL", "".join(("u", "v"))))

    uses = [use.split(": ", 1)[1] for use in _bare_uv_uses(script, root=tmp_path)]

    assert uses == ["'uv'", "'uv venv x'", "'uv'"]


@pytest.mark.slow
def test_ci_runs_make_test_with_no_uv_on_path(tmp_path: Path) -> None:
    """.ci/run drops every PATH folder holding a uv before `make test` (a stand-in `make`
    prints the PATH it was given, and a stand-in uv sits in a folder of the PATH)."""
    hand_installed = tmp_path / "hand-installed"
    hand_installed.mkdir()
    uv = "".join(("u", "v"))  # (built at run time: this file holds no bare use itself)
    for tool in (uv, "make", "docker"):
        program = (tmp_path / "stand-ins" if tool != uv else hand_installed) / tool
        program.parent.mkdir(exist_ok=True)
        body = 'echo "PATH=$PATH"; command -v uv || echo "uv: none"' if tool == "make" else ""
        program.write_text(f"#!/bin/sh\n{body}\nexit 0\n")
        program.chmod(0o755)
    for tool in ("dockerd", "debootstrap", "wrk", "chromium"):  # "already installed"
        stand_in = tmp_path / "stand-ins" / tool
        stand_in.write_text("#!/bin/sh\nexit 0\n")
        stand_in.chmod(0o755)
    path = f"{tmp_path / 'stand-ins'}:{hand_installed}:/usr/bin:/bin"
    result = subprocess.run(
        ["bash", str(REPO / ".ci" / "run")],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "uv: none" in result.stdout
    make_path = next(line for line in result.stdout.splitlines() if line.startswith("PATH="))
    assert str(hand_installed) not in make_path
    assert str(tmp_path / "stand-ins") in make_path
