"""CLI speed, side by side with its floor and its competitor, in one run (issue 3).

    .venv/bin/python bench/cli.py [--runs 20] [--gib 1.0] [--versions 1000]

1. `ml --help` and `ml model list -o json` (over --versions registered versions), as whole
   processes, beside `python -c pass` (the floor: interpreter start-up).
2. `ml model register` of a --gib folder beside `cp -r` + `sha256sum` of the same folder
   (what a shell script would do to copy and fingerprint it). Page cache warm for both.

Prints a table; the figures go to bench/RESULTS.md by hand, with the machine.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ML = str(BIN / "ml") if (BIN / "ml").exists() else None


def ml_command(*args: str) -> list[str]:
    return [ML, *args] if ML else [sys.executable, "-m", "mlcli", *args]


def timed(command: list[str], env: dict[str, str], *, shell: bool = False) -> float:
    start = time.perf_counter()
    subprocess.run(
        command if not shell else " ".join(command),
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        shell=shell,
    )
    return time.perf_counter() - start


def repeat(command: list[str], env: dict[str, str], runs: int) -> list[float]:
    timed(command, env)  # warm the page cache and .pyc files
    return [timed(command, env) for _ in range(runs)]


def fill_registry(home: Path, versions: int) -> None:
    """`versions` versions of 10 models, each a small folder of 3 files, through the API."""
    env = {**os.environ, "MLCLI_HOME": str(home)}
    code = f"""
import sys
from pathlib import Path
from mlcli.registry import Registry
src = Path({str(home / "src")!r})
(src / "sub").mkdir(parents=True, exist_ok=True)
reg = Registry.open()
for i in range({versions}):
    (src / "model.bin").write_bytes(i.to_bytes(4, "big") * 1024)
    (src / "sub" / "vocab.txt").write_text("word\\n" * (i % 50))
    (src / "params.json").write_text('{{"i": %d}}' % i)
    reg.register(src, f"model-{{i % 10}}", tags={{"stage": "dev"}}, framework="Custom")
"""
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def make_folder(folder: Path, gib: float, files: int = 8) -> int:
    folder.mkdir(parents=True)
    per_file = int(gib * (1 << 30)) // files
    chunk = 16 << 20
    for i in range(files):
        with (folder / f"shard-{i:02d}.bin").open("wb") as f:
            left = per_file
            while left:
                n = min(chunk, left)
                f.write(os.urandom(n))
                left -= n
    (folder / "config.json").write_text('{"layers": 12}')
    return per_file * files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--register-runs", type=int, default=3)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mlcli-bench-"))
    try:
        rows = run(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python"
        f" {platform.python_version()}, {platform.platform()}; load average after: {load}"
    )
    print(f"{'measurement':58} {'median':>9} {'min':>9} {'goal':>14}")
    for name, values, goal in rows:
        print(f"{name:58} {statistics.median(values):8.3f}s {min(values):8.3f}s {goal:>14}")


def run(work: Path, args: argparse.Namespace) -> list[tuple[str, list[float], str]]:
    home = work / "home"
    env = {**os.environ, "MLCLI_HOME": str(home)}
    print(f"filling a registry with {args.versions} versions ...", file=sys.stderr)
    fill_registry(home, args.versions)

    floor = repeat([sys.executable, "-c", "pass"], env, args.runs)
    helped = repeat(ml_command("--help"), env, args.runs)
    listed = repeat(ml_command("model", "list", "-o", "json"), env, args.runs)
    rows = [
        ("python -c pass (floor)", floor, ""),
        ("ml --help", helped, "<= 0.150s"),
        (f"ml model list -o json ({args.versions} versions)", listed, "<= 0.250s"),
    ]

    print(f"writing a {args.gib} GiB folder ...", file=sys.stderr)
    folder = work / "big"
    size = make_folder(folder, args.gib)
    shell = ["cp", "-r", str(folder), str(work / "copy"), "&&",
             "sha256sum", str(work / "copy") + "/*", ">/dev/null"]  # fmt: skip
    copy_times, register_times = [], []
    for i in range(args.register_runs):
        shutil.rmtree(work / "copy", ignore_errors=True)
        copy_times.append(timed(shell, env, shell=True))
        fresh = {**env, "MLCLI_HOME": str(work / f"reg-{i}")}
        register_times.append(timed(ml_command("model", "register", "-p", str(folder),
                                               "-n", "big", "-o", "none"), fresh))  # fmt: skip
        shutil.rmtree(work / f"reg-{i}", ignore_errors=True)
    ratio = [r / c for r, c in zip(register_times, copy_times, strict=True)]
    gib = size / (1 << 30)
    rows += [
        (f"cp -r + sha256sum ({gib:.2f} GiB, 9 files)", copy_times, ""),
        (f"ml model register ({gib:.2f} GiB, 9 files)", register_times, ""),
        ("register / (cp -r + sha256sum)  [ratio, not seconds]", ratio, "<= 1.3x"),
    ]
    return rows


if __name__ == "__main__":
    main()
