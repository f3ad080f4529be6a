"""Model data collection's CPU cost per request, in-process (issue 16): seconds, not a wrk run.

Times, in CPU time of the calling thread, what the worker of bench/monitoring.py pays per
request with collection on: its score.py's two collect() calls (inputs, then predictions
with the inputs' correlations) and the writer's flushes of those rows (Arrow conversion,
CSV + Parquet twins, fsyncs, the stats file), run here in the same thread so each part is
measured alone. A flush of N rows is timed as the writer thread would do it every 5 s.

    .venv/bin/python bench/collect_cost.py [--requests 40000] [--rounds 5] [--profile flush]
    .venv/bin/python bench/collect_cost.py --stall [--requests 12500] [--rounds 9]

--stall measures instead how long each flush keeps a request thread from running: a thread
that sleeps 0.2 ms (a blocking read) and then needs the GIL, as the worker's does.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import io
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def collectors(enabled: bool) -> tuple:
    """The bench score.py's two collectors, collection on or off (the baseline)."""
    from mlcli.server.v1compat.datacollector import ModelDataCollector

    os.environ["AML_MODEL_DC_STORAGE_ENABLED"] = "true" if enabled else "false"
    with contextlib.redirect_stdout(io.StringIO()):  # the constructor's notices
        inputs = ModelDataCollector("rule", designation="inputs", feature_names=["chars", "words"])
        predictions = ModelDataCollector("rule", designation="predictions",
                                         feature_names=["positive"])  # fmt: skip
    return inputs, predictions


def setup(root: str):
    os.environ["MLCLI_COLLECT_DIR"] = str(Path(root) / "collected")
    os.environ["MLCLI_COLLECT_STATS_DIR"] = root
    os.environ["MLCLI_COLLECT_FLUSH_S"] = "100000"  # flushes only when this script says
    os.environ["MLCLI_COLLECT_MAX_ROWS"] = "10000000"
    os.environ["SERVICE_NAME"] = "bench"
    from mlcli.server import collect

    return collect, *collectors(True)


def requests(collect, inputs, predictions, count: int) -> float:
    """CPU seconds of `count` requests' collect() calls (the bench score.py's run())."""
    texts = ["I love this", "great stuff, really great", "meh"]
    start = time.process_time()
    for index in range(count):
        collect.current_request_id = f"req-{index}"
        text = texts[index % 3]
        positive = int("great" in text or "love" in text)
        correlations = inputs.collect([len(text), len(text.split())])
        predictions.collect(predictions.add_correlations([positive], correlations))
    return time.process_time() - start


def flush(writer) -> float:
    start = time.process_time()
    writer._flush()
    return time.process_time() - start


def stalled_flush(writer) -> float:
    """A flush while another thread plays a request thread: it sleeps 0.2 ms (a request's
    blocking read) and then needs the GIL. Returns its longest wait beyond the sleep, in
    seconds: how long the writer kept a request from running."""
    gaps: list[float] = []
    stop = threading.Event()

    def request_thread() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.0002)
            now = time.perf_counter()
            gaps.append(now - last - 0.0002)
            last = now

    thread = threading.Thread(target=request_thread)
    thread.start()
    time.sleep(0.02)
    writer._flush()
    time.sleep(0.02)
    stop.set()
    thread.join()
    return max(gaps)


def stalls(collect, writer, inputs, predictions, count: int, rounds: int) -> None:
    gc.collect()
    gc.freeze()  # as the worker does after init()
    waits = []
    for _ in range(rounds):
        requests(collect, inputs, predictions, count)
        waits.append(stalled_flush(writer) * 1e3)
    print(
        f"{count} requests a flush, {rounds} flushes: a request thread's longest wait for "
        f"the GIL during a flush, ms: median {statistics.median(waits):.1f}, max "
        f"{max(waits):.1f} ({', '.join(f'{wait:.1f}' for wait in waits)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=40_000, help="requests per flush")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", choices=("requests", "flush"), default=None)
    parser.add_argument(
        "--stall", action="store_true",
        help="instead: how long each flush keeps a request thread from the GIL",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlcli-collect-cost-") as root:
        collect, inputs, predictions = setup(root)
        writer = collect.writer()
        requests(collect, inputs, predictions, 2000)  # warm: imports, caches, pyarrow
        flush(writer)
        if args.stall:
            stalls(collect, writer, inputs, predictions, args.requests, args.rounds)
            return
        off = collectors(False)
        request_us, flush_us, off_us = [], [], []
        for _ in range(args.rounds):
            off_us.append(requests(collect, *off, args.requests))
            request_us.append(requests(collect, inputs, predictions, args.requests))
            if args.profile == "flush":
                profiler = cProfile.Profile()
                profiler.enable()
            flush_us.append(flush(writer))
            if args.profile == "flush":
                profiler.disable()
        if args.profile == "requests":
            profiler = cProfile.Profile()
            profiler.runcall(requests, collect, inputs, predictions, args.requests)
        scale = 1e6 / args.requests
        collect_cost = (statistics.median(request_us) - statistics.median(off_us)) * scale
        flush_cost = statistics.median(flush_us) * scale
        print(f"{args.requests} requests a flush, median of {args.rounds} rounds, CPU us/request:")
        off_cost = statistics.median(off_us) * scale
        flush_ms = statistics.median(flush_us) * 1e3
        print(f"  (the script's run() with collection off: {off_cost:.2f})")
        print(f"  collect() x2   {collect_cost:6.2f}   (run() on minus run() off)")
        print(f"  writer flush   {flush_cost:6.2f}   ({flush_ms:.1f} ms a flush)")
        print(f"  total          {collect_cost + flush_cost:6.2f}")
        if args.profile:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    main()
