"""The package's shape: the `ml` entry points and the import boundaries between its parts."""

import subprocess
import sys

import pytest


def test_ml_help_lists_the_model_and_config_groups() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlcli", "--help"], capture_output=True, text=True, check=True
    )

    assert "model" in result.stdout
    assert "config" in result.stdout


def test_ml_help_loads_no_heavy_library() -> None:
    code = "import sys; from mlcli.cli import ml; print(' '.join(sys.modules))"
    loaded = set(subprocess.check_output([sys.executable, "-c", code], text=True).split())

    assert loaded.isdisjoint({"rich", "docker", "jsonschema", "yaml", "jmespath", "sqlite3"})


@pytest.mark.parametrize("group", ["model", "service", "image", "env", "datadrift"])
def test_a_groups_help_loads_no_heavy_library_and_no_core_module(group: str) -> None:
    code = (
        "import sys; from mlcli.cli import ml\n"
        f"try: ml.main([{group!r}, '--help'], prog_name='ml', standalone_mode=False)\n"
        "except SystemExit: pass\n"
        "print(' '.join(sys.modules), file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    loaded = set(result.stderr.split())

    assert "Usage: ml" in result.stdout  # the help was printed, so its commands were loaded
    heavy = {"rich", "docker", "kubernetes", "jsonschema", "yaml", "jmespath", "sqlite3"}
    heavy |= {"pyarrow", "scipy", "plotly", "numpy", "pandas"}
    assert loaded.isdisjoint(heavy)
    core = {"mlcli.deploy", "mlcli.services", "mlcli.registry", "mlcli.images", "mlcli.targets"}
    core |= {"mlcli.drift.detector"}
    assert loaded.isdisjoint(core)


def test_the_server_extra_lists_what_model_environments_get() -> None:
    """pyproject's `server` extra (the dev venv) and mlcli/server/requirements.txt agree."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["server"]
    lines = (root / "mlcli/server/requirements.txt").read_text().splitlines()
    listed = [line.split(";")[0].strip() for line in lines if line and not line.startswith("#")]

    assert sorted(listed) == sorted(extra)
