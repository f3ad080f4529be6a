"""Fixtures of the Python SDK tests (test_sdk_*.py): the real azureml-core to compare with.

tests/conftest.py loads this module as a plugin."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

V1_VERSION = "1.61.0"
CACHE = Path(os.environ.get("MLCLI_TEST_CACHE", Path.home() / ".cache" / "mlcli-tests"))


@pytest.fixture(scope="session")
def v1_sdk_python() -> Path:
    """The python of a venv with the real azureml-core (its pkg_resources imports need
    setuptools), built once and cached across runs."""
    from mlcli.environments.build import find_uv

    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = CACHE / f"azureml-core-{V1_VERSION}-py{version.replace('.', '')}"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock-azureml-core").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "READY").exists():
            staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
            shutil.rmtree(staging, ignore_errors=True)
            uv = str(find_uv())
            subprocess.run([uv, "venv", "-q", "--python", version, str(staging)], check=True)
            subprocess.run(
                [uv, "pip", "install", "-q", "--python", str(staging / "bin" / "python"),
                 f"azureml-core=={V1_VERSION}", "setuptools<70"],
                check=True,
            )  # fmt: skip
            (staging / "READY").write_text(V1_VERSION)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    return target / "bin" / "python"
