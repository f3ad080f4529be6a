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
