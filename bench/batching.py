"""Dynamic batching (issue 8): the sentiment service with and without batching, and azmlinfsrv.

Three servers, one worker each, same samples/sentiment/score.py and trained files, all up at
once on 127.0.0.1: mlcli with deploymentConfig `"batching": {"maxBatchSize": 32,
"maxLatencyMs": 10}` (the script's run_batch() gets up to 32 texts per Keras predict), mlcli
with `"batching": {"enabled": false}` (run() per request), and azmlinfsrv 1.5.1 (run() per
request; it ignores run_batch). wrk sends POST /score at concurrency 32 and 128, alternating
between the servers level by level; the script prints req/s, p50 and p99 per server and level
(the median of 3 rounds) and each against unbatched mlcli, as a Markdown table (for
bench/RESULTS.md), then the batched server's own batch-size and queue-wait figures from its
/metrics.

    .venv/bin/python bench/batching.py [--duration 8] [--concurrency 32 128] [--rounds 3]

Environment and set-up come from bench/sentiment.py (same bench/out/ state, same azmlinfsrv
environment). Needs `wrk` (apt-get install wrk). Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sentiment import (
    OUT,
    SAMPLE,
    Level,
    azmlinfsrv_environment,
    azmlinfsrv_service,
    check_labels,
    cpu_model,
    free_port,
    load,
    ml,
    model_environment,
    say,
    trained_models,
)

BATCHING = {"maxBatchSize": 32, "maxLatencyMs": 10}
BATCHED = "mlcli, batching"
UNBATCHED = "mlcli, no batching"
AZURE = "azmlinfsrv 1.5.1"
ORDER = (BATCHED, UNBATCHED, AZURE)


@contextmanager
def mlcli_service(models: Path, name: str, batching: dict) -> Iterator[str]:
    """Deploy the sample on PROCESS (one worker), with or without batching; delete it after."""
    model = ml("model", "register", "-p", str(models), "-n", "sentiment")
    port = free_port()
    config = {"computeType": "PROCESS", "port": port, "workers": 1, "batching": batching}
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        dc = Path(scratch) / "deploymentConfig.json"
        dc.write_text(json.dumps(config))
        say(f"mlcli: ml model deploy -n {name} -m {model['id']} (PROCESS, port {port})")
        service = ml(
            "model", "deploy", "-n", name, "-m", model["id"], "--overwrite",
            "--ic", str(SAMPLE / "inferenceConfig.json"), "--dc", str(dc),
        )  # fmt: skip
    try:
        yield service["scoringUri"]
    finally:
        ml("service", "delete", "-n", name)


def medians(levels: list[Level]) -> list[Level]:
    """Per server and concurrency, the round with the median req/s (the machine is shared)."""
    groups: dict[tuple[str, int], list[Level]] = {}
    for level in levels:
        groups.setdefault((level.server, level.concurrency), []).append(level)
    picked = []
    for key in sorted(groups, key=lambda k: (k[1], ORDER.index(k[0]))):
        runs = sorted(groups[key], key=lambda level: level.per_second)
        picked.append(runs[(len(runs) - 1) // 2])
    return picked


def table(levels: list[Level]) -> str:
    baseline = {lv.concurrency: lv for lv in levels if lv.server == UNBATCHED}
    rows = [
        "| server | concurrency | req/s | x unbatched | p50 ms | p99 ms | p99 vs unbatched "
        "| requests | failed |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for level in levels:
        base = baseline.get(level.concurrency)
        ratio = f"{level.per_second / base.per_second:.1f}x" if base else ""
        p99 = f"{level.p99_ms / base.p99_ms:.2f}" if base else ""
        rows.append(
            f"| {level.server} | {level.concurrency} | {level.per_second:.1f} | {ratio} | "
            f"{level.p50_ms:.1f} | {level.p99_ms:.1f} | {p99} | {level.requests} | "
            f"{level.failed} |"
        )
    return "\n".join(rows)


def batch_figures(uri: str) -> str:
    """The batched server's own view: requests per run_batch() call and time in the queue."""
    with urllib.request.urlopen(uri.removesuffix("/score") + "/metrics", timeout=10) as reply:
        text = reply.read().decode()

    def value(name: str) -> float:
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    calls = value("mlcli_batch_size_count")
    requests = value("mlcli_batch_size_sum")
    waits = value("mlcli_queue_wait_seconds_count")
    full = calls - value('mlcli_batch_size_bucket{le="16.0"}')
    return (
        f"{BATCHED}, whole run (warm-ups included): {requests:.0f} requests in {calls:.0f} "
        f"run_batch() calls, {requests / max(calls, 1):.1f} per call on average, "
        f"{full / max(calls, 1):.0%} of calls with 17-32; mean wait from arrival to the "
        f"batch's hand-over {value('mlcli_queue_wait_seconds_sum') / max(waits, 1) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8, help="seconds per level (8)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
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

    levels: list[Level] = []
    with ExitStack() as running:
        uris = {
            BATCHED: running.enter_context(mlcli_service(models, "bench-batched", BATCHING)),
            UNBATCHED: running.enter_context(
                mlcli_service(models, "bench-unbatched", {"enabled": False})
            ),
            AZURE: running.enter_context(azmlinfsrv_service(azmlinfsrv, models)),
        }
        for uri in uris.values():
            check_labels(uri)
        for round_ in range(1, args.rounds + 1):
            for concurrency in args.concurrency:
                for name, uri in uris.items():
                    say(f"round {round_}: {name}, concurrency {concurrency}, {args.duration:g} s")
                    levels.append(load(name, uri, concurrency, args.duration))
        figures = batch_figures(uris[BATCHED])

    print(
        f"{cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after; "
        f"wrk {args.duration:g} s per level after a 2 s warm-up, POST /score (4 sentences in "
        f"turn), one worker per server, batching {json.dumps(BATCHING)}; the median of "
        f"{args.rounds} rounds\n"
    )
    print(table(medians(levels)))
    print(f"\n{figures}")


if __name__ == "__main__":
    main()
