"""Feed the sentiment service shifted text, then ask `ml datadrift` whether it noticed.

    python samples/sentiment/drift.py http://127.0.0.1:32267/score [--out drift-demo]

Writes, in --out:
  baseline.csv   the training corpus (text, label): what the model learned from
  target.csv     what the service was sent and answered (text, label, score, time): five days
                 of 200 requests; days 1-3 are reviews like the training ones, days 4-5 are
                 support tickets about gadgets, a vocabulary the model never saw. The script
                 stamps each request with the day it stands for, so one run shows a trend.
  drift.html     the report of `ml datadrift run -n sentiment --baseline ... --target ...`

Standard library only (plus train.py's corpus), so the project's python runs it; it needs a
deployed service (`make demo` leaves one running).
"""

from __future__ import annotations

import argparse
import csv
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from client import score  # noqa: E402
from train import SEED, TEMPLATES, fill, make_corpus  # noqa: E402

PER_DAY = 200
DAYS = 5
SHIFT_FROM_DAY = 4

DEVICES = [
    "router",
    "printer",
    "headset",
    "charger",
    "tablet",
    "smartwatch",
    "modem",
    "keyboard",
    "webcam",
    "firmware",
]
FAULTS = [
    "disconnects",
    "overheats",
    "flickers",
    "reboots",
    "freezes",
    "beeps",
    "stutters",
    "crackles",
    "drains",
]
WHEN = [
    "after updating",
    "every hour",
    "since Tuesday",
    "when charging",
    "during calls",
    "overnight",
]
TICKETS = (
    "My {device} {fault} {when}.",
    "The {device} {fault} {when}, please advise.",
    "Ticket: {device} {fault} {when} and the {device2} {fault2} too.",
    "Customer reports the {device} {fault} {when}.",
    "Why does the {device} keep saying error {code}?",
)


def ticket(rng: random.Random) -> str:
    device, device2 = rng.sample(DEVICES, 2)
    fault, fault2 = rng.sample(FAULTS, 2)
    return rng.choice(TICKETS).format(
        device=device,
        device2=device2,
        fault=fault,
        fault2=fault2,
        when=rng.choice(WHEN),
        code=rng.randint(100, 999),
    )


def review(rng: random.Random) -> str:
    label = rng.choice(list(TEMPLATES))
    return fill(rng.choice(TEMPLATES[label]), rng)


def write_baseline(path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(make_corpus(random.Random(SEED)))


def feed_service(scoring_uri: str, path: Path) -> None:
    """Send five days of requests (eight at a time) and keep what was sent and answered."""
    rng = random.Random(7)
    first_day = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    first_day -= timedelta(days=DAYS - 1)
    requests = []
    for day in range(1, DAYS + 1):
        for n in range(PER_DAY):
            text = ticket(rng) if day >= SHIFT_FROM_DAY else review(rng)
            sent = first_day + timedelta(days=day - 1, seconds=n * 30)
            requests.append((sent, text))
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda r: score(scoring_uri, r[1]), requests))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["$aml_dc_scoring_timestamp", "text", "label", "score"])
        for (sent, text), reply in zip(requests, replies, strict=True):
            if reply.status != 200 or not isinstance(reply.body, dict):
                raise SystemExit(f"the service answered {reply.status}: {reply.body}")
            stamp = sent.isoformat().replace("+00:00", "Z")
            writer.writerow([stamp, text, reply.body["label"], reply.body["score"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scoring_uri", help="the service's scoring URI (ml service show -n ...)")
    parser.add_argument("--out", type=Path, default=Path("drift-demo"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    baseline, target = args.out / "baseline.csv", args.out / "target.csv"
    write_baseline(baseline)
    feed_service(args.scoring_uri, target)
    ml = str(Path(sys.executable).parent / "ml")
    run = [ml, "datadrift", "run", "-n", "sentiment", "--baseline", str(baseline)]
    run += ["--target", str(target), "--report", str(args.out / "drift.html"), "-o", "table"]
    run += ["--query", "{magnitude: magnitude, overThreshold: overThreshold, runId: runId}"]
    show = [ml, "datadrift", "show", "-n", "sentiment", "-o", "table", "--query"]
    print(f"$ ml datadrift run -n sentiment --baseline {baseline} --target {target} ...")
    done = subprocess.run(run)
    print(f"(exit code {done.returncode})\n$ ml datadrift show -n sentiment ... -o table")
    subprocess.run(
        [
            *show,
            "features[].{feature: feature, kind: kind, drift: drift, "
            "pValue: pValue, drifted: drifted}",
        ],
        check=True,
    )
    print()
    subprocess.run(
        [
            *show,
            "buckets[].{start: start, rows: rows, magnitude: magnitude, "
            "overThreshold: overThreshold}",
        ],
        check=True,
    )
    print(f"report: {args.out / 'drift.html'}")


if __name__ == "__main__":
    main()
