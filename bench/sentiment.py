"""The sentiment sample as a service: mlcli (PROCESS) against azmlinfsrv 1.5.1, in one run.

Both serve the same trained files with the same samples/sentiment/score.py, one worker each,
on 127.0.0.1, both up at once; wrk sends POST /score at concurrency 1, 8 and 32, alternating
between the servers level by level, and the script prints req/s, p50 and p99 per server and
level (the median of 3 rounds) as a Markdown table (for bench/RESULTS.md).

    .venv/bin/python bench/sentiment.py [--duration 8] [--concurrency 1 8 32] [--rounds 3]

State lives in bench/out/ (git-ignored): an MLCLI_HOME of its own (so your services are not
touched), the azmlinfsrv environment (the model environment's exact packages plus
azureml-inference-server-http==1.5.1) and the azmlinfsrv app folder. Needs `wrk` (apt-get
install wrk). Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import wrk

from mlcli.environments.build import find_uv, uv_environment

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "sentiment"
OUT = REPO / "bench" / "out"
AZMLINFSRV = "azureml-inference-server-http==1.5.1"
SERVICE = "bench-sentiment"
TEXTS = (
    "Today is a great day!",
    "This is a terrible day, everything went wrong.",
    "The meeting starts at nine o'clock.",
    "I love this movie.",
)
BODIES = tuple(json.dumps({"text": text}) for text in TEXTS)


@dataclass(frozen=True, slots=True)
class Level:
    server: str
    concurrency: int
    requests: int
    seconds: float
    failed: int
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ml(*args: str) -> dict:
    """`ml ARGS` against the bench's own MLCLI_HOME; its JSON result."""
    done = subprocess.run(
        [sys.executable, "-m", "mlcli", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        sys.exit(f"bench: `ml {' '.join(args)}` exited with {done.returncode}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


def model_environment() -> dict:
    say("model environment: ml env build --ic samples/sentiment/inferenceConfig.json")
    return ml("env", "build", "--ic", str(SAMPLE / "inferenceConfig.json"))


def trained_models(python: str) -> Path:
    models = SAMPLE / "models"
    if not (models / "model.h5").is_file():
        say("training the sample (samples/sentiment/train.py)")
        subprocess.run([python, str(SAMPLE / "train.py")], check=True, stdout=subprocess.DEVNULL)
    return models


def azmlinfsrv_environment(model_env: dict) -> Path:
    """A second venv: the model environment's exact packages plus azmlinfsrv."""
    env = OUT / "azmlinfsrv-env"
    wanted = sorted(p for p in model_env["packages"] if not p.startswith("inference-schema=="))
    wanted.append(AZMLINFSRV)
    stamp = env / "bench-requirements.txt"
    if stamp.is_file() and stamp.read_text() == "\n".join(wanted):
        return env / "bin" / "azmlinfsrv"
    say(f"azmlinfsrv environment: {AZMLINFSRV} + the model environment's packages (uv)")
    shutil.rmtree(env, ignore_errors=True)
    uv = str(find_uv())  # mlcli's own uv: a fresh machine has none on PATH
    subprocess.run(
        [uv, "venv", "-q", "--python", model_env["basePython"], str(env)],
        env=uv_environment(),
        check=True,
    )
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(env / "bin" / "python"), *wanted],
        env=uv_environment(),
        check=True,
    )
    stamp.write_text("\n".join(wanted))
    return env / "bin" / "azmlinfsrv"


def wait_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            sys.exit(f"bench: the server exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"bench: {url} not healthy after {timeout:.0f} s")


@contextmanager
def mlcli_service(models: Path) -> Iterator[str]:
    """Register and deploy the sample on PROCESS (one worker, run() per request, as azmlinfsrv
    serves it: bench/batching.py measures batching); delete the service afterwards."""
    model = ml("model", "register", "-p", str(models), "-n", "sentiment")
    port = free_port()
    config = {"computeType": "PROCESS", "port": port, "workers": 1, "batching": {"enabled": False}}
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        dc = Path(scratch) / "deploymentConfig.json"
        dc.write_text(json.dumps(config))
        say(f"mlcli: ml model deploy -n {SERVICE} -m {model['id']} (PROCESS, port {port})")
        service = ml(
            "model", "deploy", "-n", SERVICE, "-m", model["id"], "--overwrite",
            "--ic", str(SAMPLE / "inferenceConfig.json"), "--dc", str(dc),
        )  # fmt: skip
    try:
        yield service["scoringUri"]
    finally:
        ml("service", "delete", "-n", SERVICE)


@contextmanager
def azmlinfsrv_service(azmlinfsrv: Path, models: Path) -> Iterator[str]:
    """azmlinfsrv on an Azure-shaped app folder: score.py + azureml-models/sentiment/1/models."""
    app = OUT / "azmlinfsrv-app"
    shutil.rmtree(app, ignore_errors=True)
    model_dir = app / "azureml-models" / "sentiment" / "1"
    shutil.copytree(models, model_dir / models.name)
    shutil.copy2(SAMPLE / "score.py", app / "score.py")
    port = free_port()
    env = {
        **os.environ,
        "AZUREML_MODEL_DIR": str(model_dir),
        "AML_APP_ROOT": str(app),
        "WORKER_COUNT": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    command = [str(azmlinfsrv), "--entry_script", str(app / "score.py"), "--port", str(port)]
    say(f"azmlinfsrv: {' '.join(command[1:])}")
    with (OUT / "azmlinfsrv.log").open("w") as log:
        process = subprocess.Popen(
            command, cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/", process)
        yield f"http://127.0.0.1:{port}/score"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def load(server: str, uri: str, concurrency: int, seconds: float) -> Level:
    """wrk at `concurrency` connections for `seconds`; after a short warm-up at that level."""
    wrk.run(uri, concurrency, 2, BODIES)
    return Level(server, concurrency, **wrk.run(uri, concurrency, seconds, BODIES).figures())


def check_labels(uri: str) -> None:
    """Both servers must give the same, right answers before their speed means anything."""
    request = urllib.request.Request(
        uri, data=json.dumps({"text": TEXTS[0]}).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as response:
        label = json.loads(response.read())["label"]
    if label != "POSITIVE":
        sys.exit(f"bench: {uri} labelled {TEXTS[0]!r} {label}, not POSITIVE")


def medians(levels: list[Level]) -> list[Level]:
    """Per server and concurrency, the round with the median req/s (the machine is shared)."""
    groups: dict[tuple[str, int], list[Level]] = {}
    for level in levels:
        groups.setdefault((level.server, level.concurrency), []).append(level)
    ordered = sorted(groups.items(), key=lambda item: (item[0][0] != "mlcli", item[0][1]))
    picked = []
    for _, runs in ordered:
        runs.sort(key=lambda level: level.per_second)
        picked.append(runs[(len(runs) - 1) // 2])
    return picked


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(levels: list[Level]) -> str:
    rows = [
        "| server | concurrency | req/s | p50 ms | p99 ms | requests | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level in levels:
        rows.append(
            f"| {level.server} | {level.concurrency} | {level.per_second:.1f} | "
            f"{level.p50_ms:.1f} | {level.p99_ms:.1f} | {level.requests} | {level.failed} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per level (8)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all levels (3)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed; `make bench-tools` installs it (Debian package)")
    OUT.mkdir(parents=True, exist_ok=True)
    os.environ["MLCLI_HOME"] = str(OUT / "sentiment-home")

    load_before = os.getloadavg()[0]
    model_env = model_environment()
    models = trained_models(model_env["python"])
    azmlinfsrv = azmlinfsrv_environment(model_env)

    # Both servers stay up and the levels alternate between them, so a change in the machine's
    # load (other work on this host) hits both alike rather than one server's whole run.
    levels: list[Level] = []
    with ExitStack() as running:
        uris = {
            "mlcli": running.enter_context(mlcli_service(models)),
            "azmlinfsrv 1.5.1": running.enter_context(azmlinfsrv_service(azmlinfsrv, models)),
        }
        for uri in uris.values():
            check_labels(uri)
        for round_ in range(1, args.rounds + 1):
            for concurrency in args.concurrency:
                for name, uri in uris.items():
                    say(f"round {round_}: {name}, concurrency {concurrency}, {args.duration:g} s")
                    levels.append(load(name, uri, concurrency, args.duration))
    levels = medians(levels)

    print(
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"wrk {args.duration:g} s per level after a 2 s warm-up, POST /score "
        f"(4 sentences in turn), one worker per server; the median of {args.rounds} rounds\n"
    )
    print(table(levels))


if __name__ == "__main__":
    main()
