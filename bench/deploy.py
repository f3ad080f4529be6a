"""Deploy speed, side by side with the plain-pip way, in one run: `python bench/deploy.py`.

Environment rows (issue 5): building the model environment for the deploy test's conda spec
(python 3.11, scikit-learn, pip: [azureml-defaults]) with mlcli (`ml env build`, uv underneath)
cold and warm, beside `python -m venv` + `pip install` of the same requirements. Each row is
one function taking the shared `Bench` and returning seconds; `ROWS` lists them in run order,
so deploy-to-healthy rows are added as more functions in the same table.

    python bench/deploy.py                       # every row
    python bench/deploy.py --rows env            # rows whose name starts with "env"
    python bench/deploy.py --rows env_mlcli_cold,env_pip,process   # PROCESS rows beside pip
    python bench/deploy.py --with-azureml        # also pip-installing azureml-defaults itself
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ML = [sys.executable, "-m", "mlcli"]

CONDA_FILE = """\
name: project_environment
dependencies:
  - python=3.11
  - scikit-learn
  - pip:
    - azureml-defaults
"""


@dataclass
class Bench:
    """What the rows share: a scratch folder, the conda file, private caches."""

    root: Path
    conda_file: Path
    uv_cache: Path  # starts empty: the first mlcli row is cold all the way down
    pip_cache: Path  # starts empty: the first pip row downloads everything
    notes: dict[str, str] = field(default_factory=dict)

    def home(self, name: str) -> Path:
        """A fresh MLCLI_HOME (no environments built yet) for one row."""
        return self.root / f"home-{name}"

    def ml(self, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MLCLI_HOME": str(home), "UV_CACHE_DIR": str(self.uv_cache)}
        return subprocess.run([*ML, *args], env=env, capture_output=True, text=True, check=True)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# --- environment rows -----------------------------------------------------------------------


def env_mlcli_cold_empty_cache(bench: Bench) -> float:
    """`ml env build`: no environment, empty uv cache (every wheel downloaded)."""
    home = bench.home("cold-empty")
    return timed(lambda: bench.ml("env", "build", "--cf", str(bench.conda_file), home=home))


def env_mlcli_cold(bench: Bench) -> float:
    """`ml env build`: no environment yet, uv cache warm (a new spec on a used machine)."""
    home = bench.home("cold")
    result: list[subprocess.CompletedProcess[str]] = []
    seconds = timed(
        lambda: result.append(bench.ml("env", "build", "--cf", str(bench.conda_file), home=home))
    )
    env = json.loads(result[0].stdout)
    bench.notes["requirements"] = json.dumps(env["spec"]["requirements"])
    bench.notes["python"] = env["basePython"]
    bench.notes["packages"] = str(len(env["packages"]))
    return seconds


def env_mlcli_warm(bench: Bench) -> float:
    """`ml env build` again: the environment exists, so it is reused (what a 2nd deploy pays)."""
    home = bench.home("cold")  # built by env_mlcli_cold
    return timed(lambda: bench.ml("env", "build", "--cf", str(bench.conda_file), home=home))


def env_mlcli_warm_in_process(bench: Bench) -> float:
    """spec_for + ensure_environment inside one process, as `ml model deploy` calls them."""
    from mlcli.environments import ensure_environment, spec_for_conda_file

    os.environ["MLCLI_HOME"] = str(bench.home("cold"))
    try:
        return timed(lambda: ensure_environment(spec_for_conda_file(bench.conda_file)))
    finally:
        del os.environ["MLCLI_HOME"]


def env_pip_cold(bench: Bench) -> float:
    """`python -m venv` + `pip install` of the same requirements, empty pip cache."""
    return _venv_and_pip(bench, "pip-cold", _requirements(bench))


def env_pip_warm_cache(bench: Bench) -> float:
    """`python -m venv` + `pip install` of the same requirements, pip cache warm."""
    return _venv_and_pip(bench, "pip-warm", _requirements(bench))


def env_pip_with_azureml_defaults(bench: Bench) -> float:
    """What Azure's image build installs: scikit-learn + azureml-defaults itself (pip cache warm
    for scikit-learn)."""
    return _venv_and_pip(bench, "pip-azureml", ["scikit-learn", "azureml-defaults"])


def _requirements(bench: Bench) -> list[str]:
    if "requirements" not in bench.notes:
        raise SystemExit("run the env_mlcli_cold row first: the pip rows install its spec")
    return json.loads(bench.notes["requirements"])


def _venv_and_pip(bench: Bench, name: str, requirements: list[str]) -> float:
    python = bench.notes.get("python") or sys.executable
    venv = bench.root / name

    # This machine's pip.conf points at local indexes that do not exist (pip warns for every
    # package); pip runs without it, as on a stock machine. PIP_CERT keeps the host CA bundle.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}
    env.pop("PIP_FIND_LINKS", None)

    def build() -> None:
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run(
            [*pip, "--cache-dir", str(bench.pip_cache), *requirements], env=env, check=True
        )

    return timed(build)


# --- PROCESS rows (issue 5): deploy-to-healthy without Docker -------------------------------


def _process_setup(bench: Bench) -> dict[str, str]:
    """Once per run: the app (same conda spec as the env rows: score.py imports scikit-learn
    in init()) and a registered model, in a home of its own for each row."""
    if "process_ic" in bench.notes:
        return bench.notes
    app = bench.root / "process"
    (app / "src").mkdir(parents=True)
    (app / "src" / "score.py").write_text(LOCAL_SCORE)
    (app / "src" / "myenv.yml").write_text(CONDA_FILE)
    ic = {"entryScript": "score.py", "sourceDirectory": "src", "condaFile": "myenv.yml"}
    (app / "inferenceConfig.json").write_text(json.dumps(ic))
    (app / "model.json").write_text('{"coef": [2.0, 3.0], "intercept": 1.0}')
    bench.notes["process_ic"] = str(app / "inferenceConfig.json")
    bench.notes["process_model"] = str(app / "model.json")
    return bench.notes


def _process_deploy(bench: Bench, home_name: str, service: str, uv_cache: Path) -> float:
    """`ml model deploy` (no --dc: PROCESS) to Healthy, timed as a whole process; the
    service is then scored once (checked) and deleted, untimed."""
    notes = _process_setup(bench)
    home = bench.home(home_name)
    env = {**os.environ, "MLCLI_HOME": str(home), "UV_CACHE_DIR": str(uv_cache)}

    def ml(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ML, *args], env=env, capture_output=True, text=True, check=True)

    if not (home / "workspaces").exists():
        ml("model", "register", "-n", "linear", "-p", notes["process_model"])
    deploy = ["model", "deploy", "-n", service, "-m", "linear:1", "--ic", notes["process_ic"]]
    seconds = timed(lambda: ml(*deploy))
    try:
        answer = ml("service", "run", "-n", service, "-d", '{"data": [[1, 2]]}')
        if json.loads(answer.stdout) != [9.0]:
            raise SystemExit(f"{service} answered {answer.stdout!r}, not [9.0]")
    finally:
        ml("service", "delete", "-n", service)
    return seconds


def process_mlcli_cold_empty_cache(bench: Bench) -> float:
    """`ml model deploy` PROCESS to healthy: no environment and an empty uv cache (every wheel
    downloaded, venv built, app root laid out, server started, init() run)."""
    return _process_deploy(bench, "process-cold-empty", "bench-cold-empty", bench.root / "uv-p")


def process_mlcli_cold(bench: Bench) -> float:
    """`ml model deploy` PROCESS to healthy: no environment yet, uv cache warm (a new spec on
    a used machine)."""
    return _process_deploy(bench, "process-cold", "bench-cold", bench.root / "uv-p")


def process_mlcli_warm(bench: Bench) -> float:
    """`ml model deploy` PROCESS of another service with the same spec: the environment is
    reused (app root, server start, init(), health)."""
    return _process_deploy(bench, "process-cold", "bench-warm", bench.root / "uv-p")


def process_mlcli_update(bench: Bench) -> float:
    """`ml service update` to a new model version on PROCESS: new server beside the old on the
    same port, health check, hand-over, old server drained and stopped."""
    notes = _process_setup(bench)
    home = bench.home("process-cold")
    env = {**os.environ, "MLCLI_HOME": str(home), "UV_CACHE_DIR": str(bench.root / "uv-p")}

    def ml(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*ML, *args], env=env, capture_output=True, text=True, check=True)

    ml("model", "register", "-n", "linear", "-p", notes["process_model"])  # linear:2
    ml("model", "deploy", "-n", "bench-update", "-m", "linear:1", "--ic", notes["process_ic"])
    try:
        return timed(lambda: ml("service", "update", "-n", "bench-update", "-m", "linear:2"))
    finally:
        ml("service", "delete", "-n", "bench-update")


# --- LOCAL rows (issue 7): deploy-to-healthy in a Docker container ---------------------------

LOCAL_SCORE = """\
import json
import os

import numpy as np
from sklearn.linear_model import LinearRegression


def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.json")) as fh:
        params = json.load(fh)
    model = LinearRegression()
    model.coef_ = np.array(params["coef"])
    model.intercept_ = params["intercept"]
    model.n_features_in_ = len(params["coef"])


def run(raw_data):
    return model.predict(np.array(json.loads(raw_data)["data"])).tolist()
"""


def _local_setup(bench: Bench) -> dict[str, str]:
    """Once per run: the app (same conda spec as the env rows), a LOCAL deployment config, a
    registered model, and mlcli's base image present (built now if missing, not timed).

    extraDockerfileSteps carries this run's id, so the run's env image is new (cold) even on
    a machine that deployed the same spec before; everything the rows make is labelled and
    removed when the script exits.
    """
    if "local_ic" in bench.notes:
        return bench.notes
    import uuid

    run_id = uuid.uuid4().hex[:12]
    os.environ["MLCLI_DOCKER_LABELS"] = f"org.mlcli.bench={run_id}"
    app = bench.root / "local"
    (app / "src").mkdir(parents=True)
    (app / "src" / "score.py").write_text(LOCAL_SCORE)
    (app / "src" / "myenv.yml").write_text(CONDA_FILE)
    (app / "src" / "bench.dockerfile").write_text(f"ENV MLCLI_BENCH_RUN={run_id}\n")
    ic = {
        "entryScript": "score.py",
        "sourceDirectory": "src",
        "condaFile": "myenv.yml",
        "extraDockerfileSteps": "bench.dockerfile",
    }
    (app / "inferenceConfig.json").write_text(json.dumps(ic))
    (app / "deploymentConfig.json").write_text('{"computeType": "LOCAL"}')
    (app / "model.json").write_text('{"coef": [2.0, 3.0], "intercept": 1.0}')
    home = bench.home("local")
    atexit.register(_local_cleanup, bench, run_id)
    base = timed(lambda: bench.ml("image", "build-base", home=home))
    bench.ml("model", "register", "-n", "linear", "-p", str(app / "model.json"), home=home)
    bench.notes.update(
        local_ic=str(app / "inferenceConfig.json"),
        local_dc=str(app / "deploymentConfig.json"),
        local_base_seconds=f"{base:.1f}",
    )
    return bench.notes


def _local_deploy(bench: Bench, service: str) -> float:
    notes = _local_setup(bench)
    home = bench.home("local")
    args = ["-n", service, "-m", "linear:1", "--ic", notes["local_ic"], "--dc", notes["local_dc"]]
    seconds = timed(lambda: bench.ml("model", "deploy", *args, home=home))
    answer = bench.ml("service", "run", "-n", service, "-d", '{"data": [[1, 2]]}', home=home)
    if json.loads(answer.stdout) != [9.0]:
        raise SystemExit(f"{service} answered {answer.stdout!r}, not [9.0]")
    return seconds


def local_mlcli_cold(bench: Bench) -> float:
    """`ml model deploy` LOCAL to healthy: base image present, env image absent (host env
    built by uv, copied and compiled, docker build of env and app images, container, init())."""
    return _local_deploy(bench, "bench-local-cold")


def local_mlcli_warm(bench: Bench) -> float:
    """`ml model deploy` LOCAL of another service with the same spec: base and env images
    present (app image build, container start, init())."""
    return _local_deploy(bench, "bench-local-warm")


def local_plain_docker_build(bench: Bench) -> float:
    """The same image from nothing: `ml model package --output-path` + plain `docker build`
    (no mlcli caches; what a build-per-deploy flow pays before the container even starts)."""
    notes = _local_setup(bench)
    home = bench.home("local")
    context = bench.root / "local-package"
    label = os.environ["MLCLI_DOCKER_LABELS"]
    docker = shutil.which("docker") or "docker"

    package = ["model", "package", "-m", "linear:1", "--ic", notes["local_ic"]]
    build = [docker, "build", "-q", "--label", label, "-t", "mlcli-bench/package:latest"]

    def package_and_build() -> None:
        bench.ml(*package, "--output-path", str(context), home=home)
        subprocess.run([*build, str(context)], check=True, capture_output=True)

    return timed(package_and_build)


def _local_cleanup(bench: Bench, run_id: str) -> None:
    import docker

    home = bench.home("local")
    for service in ("bench-local-cold", "bench-local-warm"):
        env = {**os.environ, "MLCLI_HOME": str(home)}
        subprocess.run([*ML, "service", "delete", "-n", service], env=env, capture_output=True)
    client = docker.from_env()
    label = f"org.mlcli.bench={run_id}"
    for container in client.containers.list(all=True, filters={"label": label}):
        container.remove(force=True)
    for _ in range(4):  # children (app images) before parents (env images)
        images = client.images.list(all=True, filters={"label": label})
        for image in images:
            try:
                client.images.remove(image.id, force=True)
            except docker.errors.APIError:
                continue
        if not images:
            break


# name -> function, in run order (later rows may rely on earlier ones, as the pip rows do).
ROWS: list[tuple[str, Callable[[Bench], float]]] = [
    ("env_mlcli_cold_empty_cache", env_mlcli_cold_empty_cache),
    ("env_mlcli_cold", env_mlcli_cold),
    ("env_mlcli_warm", env_mlcli_warm),
    ("env_mlcli_warm_in_process", env_mlcli_warm_in_process),
    ("env_pip_cold", env_pip_cold),
    ("env_pip_warm_cache", env_pip_warm_cache),
    ("process_mlcli_cold_empty_cache", process_mlcli_cold_empty_cache),
    ("process_mlcli_cold", process_mlcli_cold),
    ("process_mlcli_warm", process_mlcli_warm),
    ("process_mlcli_update", process_mlcli_update),
    ("local_mlcli_cold", local_mlcli_cold),
    ("local_mlcli_warm", local_mlcli_warm),
    ("local_plain_docker_build", local_plain_docker_build),
]
OPTIONAL_ROWS = {"--with-azureml": ("env_pip_with_azureml_defaults", env_pip_with_azureml_defaults)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", default="", help="run only rows whose name starts with this (comma-separated)"
    )
    parser.add_argument("--with-azureml", action="store_true", help="add the azureml pip row")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    prefixes = args.rows.split(",")  # e.g. --rows env_mlcli_cold,env_pip,process
    rows = [r for r in ROWS if any(r[0].startswith(p) for p in prefixes)]
    if args.with_azureml:
        rows.append(OPTIONAL_ROWS["--with-azureml"])

    root = Path(tempfile.mkdtemp(prefix="mlcli-bench-deploy-"))
    conda_file = root / "myenv.yml"
    conda_file.write_text(CONDA_FILE)
    bench = Bench(root, conda_file, root / "uv-cache", root / "pip-cache")
    if not args.keep:
        # atexit runs last-registered first: the rows' own clean-ups (the LOCAL services,
        # which `ml service delete` in root's MLCLI_HOME) run before the folder goes.
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    results = []
    for name, function in rows:
        seconds = function(bench)
        results.append((name, seconds, " ".join((function.__doc__ or "").split())))
        print(f"{name:32} {seconds:8.2f} s", file=sys.stderr)

    print(
        f"\nmachine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    requirements = " ".join(json.loads(bench.notes.get("requirements", "[]")))
    print(f"spec: {requirements} on {bench.notes.get('python', '?')}")
    print("\n| row | seconds | what |\n|---|---:|---|")
    for name, seconds, what in results:
        print(f"| {name} | {seconds:.2f} | {what} |")
    timings = {name: seconds for name, seconds, _ in results}
    for label, slow, fast in [
        ("pip vs mlcli, both caches empty", "env_pip_cold", "env_mlcli_cold_empty_cache"),
        ("pip vs mlcli, both caches warm", "env_pip_warm_cache", "env_mlcli_cold"),
        ("pip (empty cache) vs mlcli reusing the env", "env_pip_cold", "env_mlcli_warm"),
        (
            "pip (empty cache) vs mlcli deploy-to-healthy (empty cache)",
            "env_pip_cold",
            "process_mlcli_cold_empty_cache",
        ),
        (
            "pip (warm cache) vs mlcli deploy-to-healthy (warm cache)",
            "env_pip_warm_cache",
            "process_mlcli_cold",
        ),
    ]:
        if {slow, fast} <= timings.keys():
            print(f"{label}: {timings[slow] / timings[fast]:.1f}x")


if __name__ == "__main__":
    main()
