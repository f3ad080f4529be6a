"""Monitoring's cost (issue 16): one fast service with collection off/on and telemetry off/on.

Four PROCESS services, one worker each, up at once on 127.0.0.1, all running the same v1
score.py, which calls azureml.monitoring.ModelDataCollector for its inputs and predictions
(the shape of Azure's "collect data from models in production" article) on a tiny rule
"model", so that monitoring's share of each request is as large as it gets:

    baseline      collection off, telemetry off (collect() returns at once)
    collection    deploymentConfig collectModelData: CSV + Parquet files, flushed every 5 s
    telemetry     OTEL_EXPORTER_OTLP_ENDPOINT at a local OTLP/HTTP receiver: a span per request
    both          both on
    calls         (only when asked for) collection on, but every row is dropped at the
                  writer's buffer (its score.py sets the buffer's bound to 0): what the two
                  collect() calls cost the request thread alone, no rows kept, no files

wrk sends POST /score at each concurrency, alternating between the services level by level;
the script prints req/s, p50 and p99 per service and level (the median of the rounds) with
the overhead against the baseline, as a Markdown table (for bench/RESULTS.md), then what the
monitoring produced (rows written and dropped, spans received). It also measures the CPU time
the service's processes (front, worker, span exporter; the worker's collection writer
thread apart from its request thread) spent per request: on a machine shared
with other work, req/s swings with the neighbours' load; CPU per request much less.

    .venv/bin/python bench/monitoring.py [--duration 8] [--concurrency 8 32] [--rounds 3]
        [--services collection telemetry both calls] [--warmup 2] [--duet] [--pin-front]

Each round runs the services in another order. Besides the medians, the script prints each
monitored service's overhead against the baseline of its own round (the median and middle
half of the rounds) with the machine's steal time: on a shared VM, a neighbour's load moves
req/s by tens of per cent from one round to the next. --duet loads the baseline and a
monitored service at the same time, so such load falls on both; --pin-front gives each front
process a CPU of its own (a machine with a core to spare for it).

State lives in bench/out/monitoring-home (git-ignored). Needs `wrk` (apt-get install wrk).
Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import wrk
from sentiment import BODIES, OUT, REPO, cpu_model, free_port, say

BASELINE, COLLECTION, TELEMETRY, BOTH = "baseline", "collection", "telemetry", "both"
CALLS = "calls"
ORDER = (BASELINE, COLLECTION, TELEMETRY, BOTH, CALLS)
GOALS = {COLLECTION: 5.0, TELEMETRY: 15.0}  # the overhead goals, per cent
# where a request's CPU goes: the front process, the worker's request thread, the worker's
# collection writer thread (collect.py names it "mlcli-collect"), the span exporter process
ROLES = ("front", "worker", "writer", "exporter")
WRITER_THREAD = "mlcli-collect"
SCORE = """\
import json
import os

from azureml.monitoring import ModelDataCollector


def init():
    global inputs_dc, predictions_dc
    inputs_dc = ModelDataCollector("rule", designation="inputs", feature_names=["chars", "words"])
    predictions_dc = ModelDataCollector("rule", designation="predictions",
                                        feature_names=["positive"])
    if os.environ.get("SERVICE_NAME") == "mon-calls":  # the bench's calls-only service
        from mlcli.server import collect

        collect.writer().max_rows = 0  # every row is dropped at the buffer (and counted)


def run(raw_data):
    text = json.loads(raw_data)["text"]
    positive = int("great" in text or "love" in text)
    correlations = inputs_dc.collect([len(text), len(text.split())])
    predictions_dc.collect(predictions_dc.add_correlations([positive], correlations))
    return {"label": "POSITIVE" if positive else "NEGATIVE"}
"""


@dataclass(frozen=True, slots=True)
class Level:
    server: str
    concurrency: int
    requests: int
    seconds: float
    failed: int
    p50_ms: float
    p99_ms: float
    cpu_s: float  # CPU time of the service's processes (front, workers, children) meanwhile
    roles: tuple[float, ...] = (0.0,) * len(ROLES)  # CPU us/request, by ROLES
    round: int = 0
    steal: float = 0.0  # per cent of the machine's CPU time the hypervisor gave others

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """CPU microseconds per request: what monitoring costs, much less sensitive than req/s
        to the other work on a shared machine."""
        return self.cpu_s / max(self.requests, 1) * 1e6


def role(command: bytes, pid: int, root: int) -> str:
    """Which part of a service a process is: its front, a worker, the span exporter."""
    if pid == root:
        return "front"
    return "exporter" if b"mlcli.server.span_export" in command else "worker"


def family(pid: int) -> set[int]:
    """A process and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry / "stat")
            if fields is not None:
                parents[int(entry.name)] = int(fields[1])
    members, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        members.update(children)
        frontier += children
    return members


def pin_front(pid: int, cpus: list[int]) -> None:
    """Give a service's front process the last CPU alone and its workers and exporter the
    others, thread by thread (Linux sets affinity per thread; threads started later inherit
    their creator's). The bench process (and so wrk) keeps to the others too."""
    front, rest = {cpus[-1]}, set(cpus[:-1])
    for member in family(pid):
        for task in _tasks(member):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(task, front if member == pid else rest)
    os.sched_setaffinity(0, rest)


def _tasks(pid: int) -> list[int]:
    """The thread ids of a process (none once it has exited)."""
    with contextlib.suppress(OSError):
        return [int(task.name) for task in Path(f"/proc/{pid}/task").iterdir()]
    return []


def tree_cpu_seconds(pid: int) -> dict[str, float]:
    """utime + stime of a process and all its descendants (Linux /proc), by role; a
    worker's collection writer thread counts as "writer"."""
    seconds = dict.fromkeys(ROLES, 0.0)
    for member in family(pid):
        try:
            command = Path(f"/proc/{member}/cmdline").read_bytes()
        except OSError:
            continue
        kind = role(command, member, pid)
        for thread, used in _threads_cpu_seconds(member):
            seconds["writer" if kind == "worker" and thread == WRITER_THREAD else kind] += used
    return seconds


def _threads_cpu_seconds(pid: int) -> list[tuple[str, float]]:
    """(name, utime + stime) of each thread of a process (none once it has exited)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = []
    for task in _tasks(pid):
        folder = Path(f"/proc/{pid}/task/{task}")
        fields = _stat_fields(folder / "stat")
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            if fields is not None:
                name = (folder / "comm").read_text().strip()
                found.append((name, (int(fields[11]) + int(fields[12])) / ticks))
    return found


def _stat_fields(path: Path) -> list[str] | None:
    """A /proc stat file's fields after the command name (None when the process is gone)."""
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def load(
    services: list[tuple[str, str, int]],
    concurrency: int,
    seconds: float,
    round_: int,
    warmup: float,
) -> list[Level]:
    """wrk at `concurrency` against each (name, uri, pid) of `services` at the same time, for
    `seconds` after a warm-up; each service's CPU time meanwhile, and the machine's steal
    time (a neighbour's load on a shared VM shows there). Two services at once is duet
    benchmarking: whatever the neighbours do to the machine, they do to both."""

    def drive(duration: float) -> list[wrk.Result]:
        with ThreadPoolExecutor(len(services)) as pool:
            return list(pool.map(lambda s: wrk.run(s[1], concurrency, duration, BODIES), services))

    drive(warmup)
    cpu_before, machine_before = [tree_cpu_seconds(s[2]) for s in services], machine_ticks()
    results = drive(seconds)
    cpu_after, machine_after = [tree_cpu_seconds(s[2]) for s in services], machine_ticks()
    total, stolen = (now - then for now, then in zip(machine_after, machine_before, strict=True))
    levels = []
    for (name, _, _), result, before, after in zip(
        services, results, cpu_before, cpu_after, strict=True
    ):
        cpu = {role: after[role] - before[role] for role in after}
        requests = max(result.requests, 1)
        levels.append(
            Level(
                server=name,
                concurrency=concurrency,
                **result.figures(),
                cpu_s=sum(cpu.values()),
                roles=tuple(cpu[role] / requests * 1e6 for role in ROLES),
                round=round_,
                steal=stolen / max(total, 1) * 100,
            )
        )
    return levels


def machine_ticks() -> tuple[int, int]:
    """(all CPU ticks, steal ticks) of the machine so far, from /proc/stat's cpu line."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:8]), fields[7]


class SpanCounter:
    """A minimal OTLP/HTTP receiver: answers 200 and counts what arrives (not decoded, so it
    takes as little of the machine as it can)."""

    def __init__(self) -> None:
        self.posts = 0
        self.bytes = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(size)
                counter.posts += 1
                counter.bytes += size
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def ml(*args: str, env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "mlcli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        sys.exit(f"bench: `ml {' '.join(args)}` exited with {done.returncode}")
    return json.loads(done.stdout) if done.stdout.strip() else {}


@contextmanager
def service(
    name: str, folder: Path, *, collect: bool, otlp: str | None
) -> Iterator[tuple[str, int]]:
    config = {"computeType": "PROCESS", "port": free_port(), "workers": 1}
    if collect:
        config["collectModelData"] = True
    dc = folder / f"{name}.json"
    dc.write_text(json.dumps(config))
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp} if otlp else {}
    say(f"ml model deploy -n {name} ({json.dumps(config)}{', OTLP' if otlp else ''})")
    deployed = ml(
        "model", "deploy", "-n", name, "-m", "rule:1", "--es", str(folder / "score.py"),
        "--dc", str(dc), "--overwrite", env=env,
    )  # fmt: skip
    try:
        yield deployed["scoringUri"], deployed["serverDetails"]["pid"]
    finally:
        ml("service", "delete", "-n", name)


def medians(levels: list[Level]) -> list[Level]:
    groups: dict[tuple[str, int], list[Level]] = {}
    for level in levels:
        groups.setdefault((level.server, level.concurrency), []).append(level)
    picked = []
    for key in sorted(groups, key=lambda k: (k[1], ORDER.index(k[0]))):
        runs = sorted(groups[key], key=lambda level: level.per_second)
        middle = runs[(len(runs) - 1) // 2]
        # CPU per request: its own median, which need not be the median req/s round's
        cpu_us = sorted(level.cpu_us for level in runs)[(len(runs) - 1) // 2]
        roles = tuple(
            sorted(r)[(len(r) - 1) // 2] for r in zip(*(lv.roles for lv in runs), strict=True)
        )
        picked.append(
            dataclasses.replace(middle, cpu_s=cpu_us * middle.requests / 1e6, roles=roles)
        )
    return picked


def table(levels: list[Level]) -> str:
    baseline = {lv.concurrency: lv for lv in levels if lv.server == BASELINE}
    rows = [
        "| service | concurrency | req/s | req/s overhead | CPU us/request | CPU overhead | goal "
        "| front / worker / writer / exporter us | p50 ms | p99 ms | requests | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level in levels:
        base = baseline[level.concurrency]
        rate = (1 - level.per_second / base.per_second) * 100
        cpu = (level.cpu_us / base.cpu_us - 1) * 100
        goal = f"<= {GOALS[level.server]:g} %" if level.server in GOALS else ""
        same = level.server == BASELINE
        rows.append(
            f"| {level.server} | {level.concurrency} | {level.per_second:.0f} | "
            f"{'' if same else f'{rate:.1f} %'} | {level.cpu_us:.0f} | "
            f"{'' if same else f'{cpu:.1f} %'} | {goal} | "
            f"{' / '.join(f'{us:.0f}' for us in level.roles)} | {level.p50_ms:.2f} | "
            f"{level.p99_ms:.2f} | {level.requests} | {level.failed} |"
        )
    return "\n".join(rows)


def rotated(services: list, round_: int) -> list:
    """The services in a different order each round, so that none is always measured first
    (or right after the collection writer's flush of another)."""
    start = (round_ - 1) % len(services)
    return services[start:] + services[:start]


def paired_table(levels: list[Level]) -> str:
    """Each monitored service's overheads against the baseline of its own round: rounds
    seconds apart share the machine's load, so these pairs are steadier than medians
    taken apart. The median, the middle half of the rounds, and the machine's steal time
    (the hypervisor's CPU given to neighbours) in the pair's worse level."""
    baseline = {(lv.round, lv.concurrency): lv for lv in levels if lv.server == BASELINE}
    groups: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for level in levels:
        base = baseline.get((level.round, level.concurrency))
        if level.server == BASELINE or base is None:
            continue
        groups.setdefault((level.server, level.concurrency), []).append(
            (
                (1 - level.per_second / base.per_second) * 100,
                (level.cpu_us / base.cpu_us - 1) * 100,
                max(level.steal, base.steal),
            )
        )
    rows = [
        "| service | concurrency | rounds | req/s overhead | middle half | CPU overhead "
        "| middle half | steal % | goal |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: |",
    ]
    for (server, concurrency), pairs in sorted(
        groups.items(), key=lambda item: (item[0][1], ORDER.index(item[0][0]))
    ):
        rates, cpus, steals = zip(*pairs, strict=True)
        goal = f"<= {GOALS[server]:g} %" if server in GOALS else ""
        rows.append(
            f"| {server} | {concurrency} | {len(pairs)} | {statistics.median(rates):.1f} % | "
            f"{_middle_half(rates)} | {statistics.median(cpus):.1f} % | {_middle_half(cpus)} | "
            f"{statistics.median(steals):.1f} | {goal} |"
        )
    return "\n".join(rows)


def _middle_half(values: Sequence[float]) -> str:
    """The first and third quartiles."""
    if len(values) < 2:
        return ""
    first, _, third = statistics.quantiles(values, n=4)
    return f"{first:.1f} .. {third:.1f}"


def collection_figures(uri: str) -> str:
    from mlcli.service_metrics import parse, report

    with urllib.request.urlopen(uri.removesuffix("/score") + "/metrics", timeout=10) as reply:
        text = reply.read().decode()
    figures = report(parse(text, 0), seconds=1, service="", window="")["collection"] or {}
    return ", ".join(f"{key} {value}" for key, value in figures.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per level (8)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all levels (3)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds before each level (2)")
    parser.add_argument(
        "--duet", action="store_true",
        help="load the baseline and each monitored service at the same time (duet benchmarking)",
    )  # fmt: skip
    parser.add_argument(
        "--pin-front", action="store_true",
        help="each front on the last CPU alone; workers, exporters and wrk on the others",
    )  # fmt: skip
    parser.add_argument(
        "--services", nargs="+", choices=ORDER[1:], default=list(ORDER[1:4]),
        help="which monitored services to run next to the baseline (all but calls)",
    )  # fmt: skip
    args = parser.parse_args()
    cpus = sorted(os.sched_getaffinity(0))  # before the bench pins itself
    if args.pin_front and len(cpus) < 2:
        sys.exit("bench: --pin-front needs two CPUs or more")
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is not installed; apt-get install wrk")
    OUT.mkdir(parents=True, exist_ok=True)
    home = OUT / "monitoring-home"
    os.environ["MLCLI_HOME"] = str(home)
    for variable in [v for v in os.environ if v.startswith("OTEL_")]:
        del os.environ[variable]
    load_before = os.getloadavg()[0]
    receiver = SpanCounter()
    levels: list[Level] = []
    with tempfile.TemporaryDirectory(dir=OUT) as scratch, ExitStack() as running:
        folder = Path(scratch)
        (folder / "score.py").write_text(SCORE)
        (folder / "rule.txt").write_text("a rule, not weights\n")
        ml("model", "register", "-n", "rule", "-p", str(folder / "rule.txt"))
        settings = {
            BASELINE: ("mon-base", False, None),
            COLLECTION: ("mon-collect", True, None),
            TELEMETRY: ("mon-otel", False, receiver.url),
            BOTH: ("mon-both", True, receiver.url),
            CALLS: ("mon-calls", True, None),
        }
        uris = {}
        for name in (BASELINE, *args.services):
            service_name, collect, otlp = settings[name]
            uris[name] = running.enter_context(
                service(service_name, folder, collect=collect, otlp=otlp)
            )
            if args.pin_front:
                pin_front(uris[name][1], cpus)
        services = [(name, uri, pid) for name, (uri, pid) in uris.items()]
        for round_ in range(1, args.rounds + 1):
            for concurrency in args.concurrency:
                if args.duet:  # the baseline beside each monitored service in turn
                    groups = [[services[0], s] for s in rotated(services[1:], round_)]
                else:
                    groups = [[s] for s in rotated(services, round_)]
                for number, group in enumerate(groups):
                    names = " + ".join(s[0] for s in group)
                    say(f"round {round_}: {names}, concurrency {concurrency}, {args.duration:g} s")
                    # in a duet round each pair is a round of its own: its own baseline
                    pair_round = round_ * 100 + number if args.duet else round_
                    levels += load(group, concurrency, args.duration, pair_round, args.warmup)
        collecting = [name for name in (COLLECTION, BOTH) if name in uris]
        collected = collection_figures(uris[collecting[0]][0]) if collecting else "not run"
        calls = collection_figures(uris[CALLS][0]) if CALLS in uris else ""
    receiver.server.shutdown()

    print(
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"wrk {args.duration:g} s per level after a {args.warmup:g} s warm-up, POST /score, "
        f"one worker per service; the median of {args.rounds} rounds\n"
    )
    print(table(medians(levels)))
    print("\nEach round against the same round's baseline:\n")
    print(paired_table(levels))
    print(f"\n{collecting[0] if collecting else 'collection'} service, whole run: {collected}")
    if calls:
        print(f"calls service (every row dropped at the buffer), whole run: {calls}")
    print(
        f"OTLP receiver, whole run (telemetry and both): {receiver.posts} exports, "
        f"{receiver.bytes / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
