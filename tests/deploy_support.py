"""Fixtures and helpers for the tests that deploy services (test_deploy*.py,
test_cli_service.py, test_target_*.py, test_cli_package.py); no tests.

tests/conftest.py loads this module as a plugin, so its fixtures reach every test file; the
helpers are imported by name. Model environments take seconds to build, so the deploy tests
share one envs/ folder for the session (each test's MLCLI_HOME/envs is a link to it);
everything else stays per test. Every server a test starts is stopped at its end by
`services_cleanup`, whatever state it is in.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mlcli.cli import ml

SKLEARN_CONDA = """\
name: iris-env
channels:
  - conda-forge
dependencies:
  - python=3.11
  - scikit-learn
  - pip
  - pip:
      - azureml-defaults
"""

SKLEARN_SCORE = """\
import json
import os
import pickle

import numpy as np


def init():
    global model
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.pkl")
    with open(path, "rb") as fh:
        model = pickle.load(fh)


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return {"predictions": model.predict(data).tolist(), "kind": type(model).__name__}
"""

# Trained inside the model's own environment, so the pickle matches its scikit-learn.
TRAIN = """\
import pickle, sys
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier
X, y = load_iris(return_X_y=True)
kind = sys.argv[2]
model = LogisticRegression(max_iter=500) if kind == "logistic" else DecisionTreeClassifier()
model.fit(X, y)
with open(sys.argv[1], "wb") as fh:
    pickle.dump(model, fh)
"""

ECHO_SCORE = """\
import json
import os


def init():
    global factor
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "factor.txt")) as fh:
        factor = float(fh.read())


def run(raw_data):
    return {"result": [x * factor for x in json.loads(raw_data)["data"]]}
"""


FAILING_INIT = (
    "def init():\n    raise RuntimeError('weights are corrupt')\ndef run(data):\n    return data\n"
)
SLOW_INIT = "import time\ndef init():\n    time.sleep(60)\ndef run(data):\n    return data\n"


PROGRESS_LINE = re.compile(r"^\d\d:\d\d:\d\d ")


def without_progress(stderr: str) -> str:
    """stderr without the timestamped step lines that a non-terminal gets (cli/output.py)."""
    lines = stderr.splitlines(keepends=True)
    return "".join(line for line in lines if not PROGRESS_LINE.match(line))


def invoke(*args: str | Path, input: str | None = None) -> Result:
    """Run `ml ARGS` in-process, as a user would from a shell."""
    return CliRunner().invoke(ml, [str(a) for a in args], input=input, catch_exceptions=False)


def ok(*args: str) -> Any:
    """`ml ARGS`, which must succeed; its stdout parsed as JSON."""
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout) if result.stdout.strip() else None


def record_service(
    name: str,
    *,
    models: tuple[str, ...] = (),
    document: dict[str, Any] | None = None,
    workspace: str | None = None,
) -> None:
    """A Healthy PROCESS service record using `models` ("name:N"), written through the core
    (as a deploy records it), with no server behind it."""
    from mlcli import db
    from mlcli.services import Services

    services = Services.open(workspace)
    try:
        with db.immediate(services.conn):
            services.save(name, compute_type="PROCESS", state="Healthy",
                          document=document or {}, models=models)  # fmt: skip
    finally:
        services.close()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def register_factor(folder: Path, name: str, factor: float) -> dict:
    """A tiny model: factor.txt holding a number that the echo script multiplies by."""
    write(folder / f"{name}-{factor}" / "factor.txt", str(factor))
    return ok("model", "register", "-n", name, "-p", str(folder / f"{name}-{factor}/factor.txt"))


def aks_app(folder: Path, config: dict) -> dict[str, str]:
    """Model scale:1 registered, the echo script and an AKS deployment config (`config` on
    top of computeType AKS): the script's and the config's paths."""
    register_factor(folder, "scale", 3)
    script = write(folder / "score.py", ECHO_SCORE)
    dc = write(folder / "aksDeploymentConfig.json", json.dumps({"computeType": "AKS", **config}))
    return {"script": str(script), "dc": str(dc)}


def echo_app(folder: Path, score: str = ECHO_SCORE, **extra: str) -> str:
    """An inference config (entry script in src/) for `score`; its path."""
    write(folder / "src" / "score.py", score)
    config = {"entryScript": "score.py", "sourceDirectory": "src", **extra}
    return str(write(folder / "inferenceConfig.json", json.dumps(config)))


def deploy_echo(
    folder: Path, name: str, *extra: str, model: str = "scale:1", score: str = ECHO_SCORE
) -> dict:
    """`ml model deploy` of `model` with the echo script (or `score`), which must succeed."""
    script = write(folder / "score.py", score)
    return ok("model", "deploy", "-n", name, "-m", model, "--es", str(script), *extra)


@contextlib.contextmanager
def port_taken() -> Iterator[int]:
    """A port on 127.0.0.1 another program listens on, for as long as the block runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def pending_server(name: str) -> dict | None:
    """{pid, token} of the server a running deploy has started, once it is recorded."""
    from mlcli.services import Services

    record = Services.open().find(name)
    pending = record.pending if record else None
    server = pending.server if pending else None
    pid = server.handle.get("pid") if server else None
    return {"pid": pid, "token": pending.token} if pending and pid else None


def post(uri: str, body: Any, *, headers: dict[str, str] | None = None, timeout: float = 30):
    import requests

    return requests.post(uri, json=body, headers=headers or {}, timeout=timeout)


def alive(pid: int) -> bool:
    """Running and not a zombie (killed servers stay zombies until someone reaps them)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def processes_with_token(token: str) -> list[int]:
    needle = f"MLCLI_SERVICE_TOKEN={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0") and alive(
                    int(entry.name)
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(predicate: Any, *, timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def ml_process(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """`ml ARGS` as a separate process (to kill it, or to race it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlcli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def shared_envs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared-envs")


@pytest.fixture
def shared_environments(mlcli_home: Path, shared_envs_dir: Path) -> Path:
    """This test's MLCLI_HOME/envs is the session's shared folder of model environments."""
    mlcli_home.mkdir(parents=True, exist_ok=True)
    (mlcli_home / "envs").symlink_to(shared_envs_dir, target_is_directory=True)
    return shared_envs_dir


@pytest.fixture
def services_cleanup(mlcli_home: Path) -> Iterator[None]:
    """Stop every server the test started, whatever its record says (even half-deployed)."""
    yield
    from mlcli.services import Services
    from mlcli.targets import stop_by_token
    from mlcli.targets.procfs import stop_process_group, tracked_children

    for db_path in (mlcli_home / "workspaces").glob("*/registry.db"):
        services = Services.open(db_path.parent.name)
        for record in services.conn.execute("SELECT name FROM services").fetchall():
            found = services.find(record["name"])
            if found is None:
                continue
            doc = found.document
            pending = doc.get("pending") or {}
            for data in [doc.get("endpoint"), pending.get("endpoint"), *(doc.get("retired") or [])]:
                if data and data.get("handle", {}).get("pid"):
                    handle = data["handle"]
                    stop_process_group(handle["pid"], handle.get("startTime"), grace_s=5)
            if pending.get("token"):
                stop_by_token(pending.get("computeType", "PROCESS"), pending["token"])
            deployer = doc.get("deployer") or {}
            if deployer.get("pid") and deployer["pid"] != os.getpid() and alive(deployer["pid"]):
                os.kill(deployer["pid"], signal.SIGKILL)  # a --no-wait helper
        services.close()
    for proc in tracked_children():
        if proc.poll() is None:
            stop_process_group(proc.pid, None, grace_s=5)


@pytest.fixture(scope="session")
def sklearn_assets(tmp_path_factory: pytest.TempPathFactory, shared_envs_dir: Path) -> dict:
    """The iris inference config (conda file with python, scikit-learn, azureml-defaults),
    and two models trained inside that very environment: logistic (v1) and tree (v2)."""
    from mlcli.config import load_inference_config
    from mlcli.environments import ensure_environment, spec_for

    root = tmp_path_factory.mktemp("iris")
    write(root / "src" / "score.py", SKLEARN_SCORE)
    write(root / "src" / "env.yml", SKLEARN_CONDA)
    ic_path = write(
        root / "inferenceConfig.json",
        json.dumps({"entryScript": "score.py", "sourceDirectory": "src", "condaFile": "env.yml"}),
    )
    home = tmp_path_factory.mktemp("iris-home")
    (home / "envs").symlink_to(shared_envs_dir, target_is_directory=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLCLI_HOME", str(home))
        env = ensure_environment(spec_for(load_inference_config(ic_path)))
    models = {}
    for kind in ("logistic", "tree"):
        (root / kind).mkdir()
        subprocess.run(
            [str(env.python), "-c", TRAIN, str(root / kind / "model.pkl"), kind],
            check=True,
            capture_output=True,
        )
        models[kind] = root / kind / "model.pkl"
    return {"ic": ic_path, "root": root, **models}
