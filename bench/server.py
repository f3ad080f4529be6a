"""Scoring server throughput and latency: mlcli's server against azmlinfsrv 1.5.1.

Serves the same two entry scripts (an echo and a CPU-light numpy model) with both servers at
the same worker count (1 and 2), loads each with wrk (another process, 127.0.0.1) at
concurrency 8 and 64, alternating the servers round by round so both see the same machine
load (the median run of each is shown), and prints req/s, p50 and p99 with the ratios, and
the CPU time the servers' processes used per request (read from /proc: a busy machine
disturbs it far less than req/s).

    .venv/bin/python bench/server.py                          # 3 rounds of 5 s runs
    .venv/bin/python bench/server.py --rounds 1 --duration 3  # a quick look
    .venv/bin/python bench/server.py --baseline /tmp/base     # before/after a change: /tmp/base
        holds another commit's tree (git archive <commit> | tar -x -C /tmp/base), whose
        server then runs in azmlinfsrv's place

azmlinfsrv comes from the virtual environment the server tests cache under
~/.cache/mlcli-tests/ (built here with mlcli's uv, find_uv(), if missing). Needs `wrk`
(Debian package).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlcli.environments.build import find_uv, uv_environment

PROJECT = Path(__file__).resolve().parents[1]
REFERENCE = "azureml-inference-server-http==1.5.1"
CACHE = Path(os.environ.get("MLCLI_TEST_CACHE", Path.home() / ".cache" / "mlcli-tests"))

ECHO = """
def init():
    pass


def run(data):
    return data
"""

MODEL = """
import json

import numpy as np

WEIGHTS = None


def init():
    global WEIGHTS
    WEIGHTS = np.random.default_rng(7).normal(size=(20, 3))


def run(data):
    rows = np.asarray(json.loads(data)["data"], dtype=float)
    logits = rows @ WEIGHTS
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return {
        "labels": probabilities.argmax(axis=1).tolist(),
        "probabilities": probabilities.round(4).tolist(),
    }
"""

PAYLOADS = {
    "echo": json.dumps({"data": [1, 2, 3]}),
    "model": json.dumps({"data": [[round(0.1 * i * j, 2) for i in range(20)] for j in range(4)]}),
}
SCRIPTS = {"echo": ECHO, "model": MODEL}


def reference_python() -> Path:
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    venv = CACHE / f"azmlinfsrv-1.5.1-{python}"
    if not (venv / "READY").exists():
        print(f"building {venv} ...", file=sys.stderr)
        staging = venv.with_name(venv.name + f".tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        uv = str(find_uv())  # mlcli's own uv: a fresh machine has none on PATH
        subprocess.run([uv, "venv", "-q", "--relocatable", "--python", version, str(staging)],
                       env=uv_environment(), check=True)  # fmt: skip
        subprocess.run([uv, "pip", "install", "-q", "--python", str(staging / "bin/python"),
                        REFERENCE, "inference-schema", "numpy", "pandas"],
                       env=uv_environment(), check=True)  # fmt: skip
        (staging / "READY").write_text(REFERENCE)
        staging.rename(venv)
    return venv / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(
        self, kind: str, script: Path, workers: int, reference: Path, *, tree: Path = PROJECT
    ) -> None:
        """azmlinfsrv (kind "azmlinfsrv"), or mlcli's server from the checkout `tree`."""
        self.kind = kind
        self.port = free_port()
        if kind != "azmlinfsrv":
            command = [sys.executable, "-m", "mlcli.server", "--host", "127.0.0.1"]
            command += ["--entry-script", script.name, "--port", str(self.port)]
            command += ["--workers", str(workers)]
        else:
            command = [str(reference), "-m", "azureml_inference_server_http"]
            command += ["--entry_script", script.name, "--port", str(self.port)]
            command += ["--worker_count", str(workers)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZUREML_", "MLCLI_"))}
        env["PYTHONPATH"] = str(tree)
        self.log = (script.parent / f"{kind}-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=script.parent,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.kind} exited with {self.process.returncode}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/")
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"{self.kind} not healthy after 120 s")

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its workers (its own session, so one
        process group): per request, a figure a busy machine disturbs far less than req/s."""
        ticks = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid:  # the process group
                ticks += int(fields[11]) + int(fields[12])  # utime + stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()


def wrk(port: int, lua: Path, concurrency: int, duration: float) -> dict:
    threads = min(2, concurrency)
    command = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration:g}s", "--latency"]
    command += ["-s", str(lua), f"http://127.0.0.1:{port}/score"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: connect (\d+), "
                    r"read (\d+), write (\d+), timeout (\d+)"):  # fmt: skip
        match = re.search(pattern, output)
        if match:
            errors += sum(int(g) for g in match.groups())
    return {
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", output).group(1)),
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", output).group(1)),
        "errors": errors,
    }


def median(runs: list[dict]) -> dict:
    """The run with the median req/s (its own p50/p99 with it), errors summed over all runs."""
    ordered = sorted(runs, key=lambda run: run["rps"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["errors"] = sum(run["errors"] for run in runs)
    cpu = sorted(run["cpu_us"] for run in runs)
    chosen["cpu_us"] = cpu[len(cpu) // 2]
    return chosen


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server; medians shown")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--scripts", nargs="+", default=["echo", "model"], choices=SCRIPTS)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of mlcli (e.g. from `git worktree add`) whose server takes "
        "azmlinfsrv's place: a before/after comparison of a change, in one run",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `make bench-tools` installs it (Debian package)")
    reference = reference_python()

    cores = os.cpu_count()
    print(f"machine: {cores} cores, {platform.platform()}, Python {platform.python_version()}")
    print(
        f"load average (1/5 min) at start: {load()}; wrk -t2, {args.duration:g} s per run, "
        f"median of {args.rounds} alternating runs per server\n"
    )
    header = (
        "| workers | script | conc | azmlinfsrv req/s | mlcli req/s | ratio | azml p50 ms "
        "| mlcli p50 ms | azml p99 ms | mlcli p99 ms | p99 mlcli/azml | errors a/m | load "
        "| azml CPU us/req | mlcli CPU us/req |"
    )
    if args.baseline:
        print(f"baseline: mlcli's server from {args.baseline} in the azmlinfsrv columns")
        header = header.replace("azmlinfsrv", "baseline").replace("azml", "base")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    with tempfile.TemporaryDirectory(prefix="mlcli-bench-server-") as tmp:
        for name in args.scripts:
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "score.py").write_text(SCRIPTS[name])
            lua = folder / "post.lua"
            lua.write_text(
                'wrk.method = "POST"\n'
                f"wrk.body = {json.dumps(PAYLOADS[name])}\n"
                'wrk.headers["Content-Type"] = "application/json"\n'
            )
            for workers in args.workers:
                if args.baseline:
                    servers = {
                        "azmlinfsrv": Server(
                            "baseline", folder / "score.py", workers, reference, tree=args.baseline
                        ),
                        "mlcli": Server("mlcli", folder / "score.py", workers, reference),
                    }
                else:
                    servers = {
                        kind: Server(kind, folder / "score.py", workers, reference)
                        for kind in ("azmlinfsrv", "mlcli")
                    }
                try:
                    for server in servers.values():
                        wrk(server.port, lua, 8, 1)  # warm up
                    for concurrency in args.concurrency:
                        runs: dict[str, list[dict]] = {kind: [] for kind in servers}
                        for _ in range(args.rounds):  # alternate: both see the same load
                            for kind, server in servers.items():
                                cpu = server.cpu_seconds()
                                run = wrk(server.port, lua, concurrency, args.duration)
                                used = server.cpu_seconds() - cpu
                                run["cpu_us"] = used * 1e6 / max(1, run["requests"])
                                runs[kind].append(run)
                        a, m = median(runs["azmlinfsrv"]), median(runs["mlcli"])
                        print(
                            f"| {workers} | {name} | {concurrency} | {a['rps']:.0f} | "
                            f"{m['rps']:.0f} | {m['rps'] / a['rps']:.1f}x | {a['p50']:.2f} | "
                            f"{m['p50']:.2f} | {a['p99']:.2f} | {m['p99']:.2f} | "
                            f"{m['p99'] / a['p99']:.2f} | {a['errors']}/{m['errors']} | {load()} | "
                            f"{a['cpu_us']:.0f} | {m['cpu_us']:.0f} |",
                            flush=True,
                        )
                finally:
                    for server in servers.values():
                        server.stop()
    print(f"\nload average (1/5 min) at end: {load()}")


if __name__ == "__main__":
    main()
