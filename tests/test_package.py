"""The package's shape: the `ml` entry points and the import boundaries between its parts."""

import subprocess
import sys


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
