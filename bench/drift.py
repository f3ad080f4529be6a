"""Data drift (issue 17): `ml datadrift run` beside a naive pandas script, 1 M and 10 M rows.

Both compare a 1 M-row baseline with a target of 20 features (16 numeric, 4 categorical) and a
scoring timestamp over 7 days, overall and per day, with the same scipy statistics (KS and
Wasserstein for numbers, chi-squared and Jensen-Shannon for categories). The naive script is
what one writes first: `pandas.read_parquet` of both files, whole, then a groupby per day. Each
contender runs in its own process; the script reports its wall time and its peak resident
memory (ru_maxrss from wait4) and the drifted features each found.

    .venv/bin/python bench/drift.py [--rows 1000000 10000000] [--work /tmp/drift-bench]
        [--evidently-python /tmp/evidently/bin/python [--evidently-rows 1000000]]

The data is generated once per size (parquet, row groups of 1 M rows, fixed seed) and kept in
--work for reruns. Evidently (optional) runs from its own venv, which this script does not
make: `uv venv /tmp/evidently && uv pip install --python /tmp/evidently/bin/python evidently
"pandas<3" pyarrow` (evidently 0.7.23 fails to import with pandas 3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
BASELINE_ROWS = 1_000_000
CHUNK = 1_000_000
NUMERIC = 16
CATEGORICAL = 4
DAYS = 7
TIMESTAMP = "$aml_dc_scoring_timestamp"
START = "2026-11-01T00:00:00"


def generate(path: Path, rows: int, *, seed: int, drifting: bool) -> None:
    """`rows` rows in row groups of CHUNK; a drifting target moves f00 (+0.5 sd from day 4 on)
    and gives c0 a new category on days 6 and 7."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.exists():
        return
    rng = np.random.default_rng(seed)
    start = np.datetime64(START, "us")
    partial = path.with_suffix(".partial")
    writer = None
    for offset in range(0, rows, CHUNK):
        size = min(CHUNK, rows - offset)
        # Rows in time order over DAYS days, as a service's collected data comes.
        moments = start + ((np.arange(offset, offset + size) / rows) * DAYS * 86_400e6).astype(
            "timedelta64[us]"
        )
        day = ((np.arange(offset, offset + size) / rows) * DAYS).astype(int)
        columns: dict[str, object] = {}
        for i in range(NUMERIC):
            values = rng.normal(10 * i, 1 + i, size)
            if drifting and i == 0:
                values += np.where(day >= 3, 0.5 * (1 + i), 0.0)
            columns[f"f{i:02d}"] = values.round(0) if i % 4 == 3 else values
        for i in range(CATEGORICAL):
            labels = np.array([f"c{i}-{k}" for k in range(5 + 10 * i)])
            picked = labels[rng.integers(0, len(labels), size)].astype(object)
            if drifting and i == 0:
                picked[(day >= 5) & (rng.random(size) < 0.3)] = "brand-new"
            columns[f"c{i}"] = pa.array(picked, type=pa.string())
        columns[TIMESTAMP] = pa.array(moments, type=pa.timestamp("us", tz="UTC"))
        table = pa.table(columns)
        if writer is None:
            writer = pq.ParquetWriter(partial, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    partial.rename(path)


def naive_pandas(baseline_path: str, target_path: str) -> dict:
    """The script one writes first: everything in memory, then the same tests per column."""
    import pandas as pd
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    baseline = pd.read_parquet(baseline_path)
    target = pd.read_parquet(target_path)
    target["day"] = target[TIMESTAMP].dt.floor("D")
    features = [c for c in baseline.columns if c != TIMESTAMP]
    alpha = 0.05 / len(features)

    def compare(name: str, base: pd.Series, aim: pd.Series) -> tuple[float, float]:
        if not pd.api.types.is_numeric_dtype(base):
            counts = pd.concat([base.value_counts(), aim.value_counts()], axis=1).fillna(0)
            table = counts.to_numpy().T
            p_value = stats.chi2_contingency(table).pvalue
            drift = jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2)
            return float(drift), float(p_value)
        p_value = stats.ks_2samp(base, aim).pvalue
        drift = stats.wasserstein_distance(base, aim) / base.std(ddof=0)
        return float(min(1.0, drift)), float(p_value)

    overall = {f: compare(f, baseline[f], target[f]) for f in features}
    per_day = {
        str(day): {f: compare(f, baseline[f], group[f])[0] for f in features}
        for day, group in target.groupby("day")
    }
    drifted = sorted(f for f, (drift, p) in overall.items() if p < alpha and drift >= 0.2)
    return {"driftedFeatures": drifted, "days": len(per_day), "rows": len(target)}


def evidently(baseline_path: str, target_path: str) -> dict:
    """Evidently's DataDriftPreset, overall and once per day (it has no time buckets), on the
    same pandas frames; a feature counts as drifted at the same 0.2 (Evidently's own default
    threshold is 0.1 on the same measures: normalised Wasserstein, Jensen-Shannon)."""
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    baseline = pd.read_parquet(baseline_path).drop(columns=[TIMESTAMP])
    target = pd.read_parquet(target_path)
    days = target[TIMESTAMP].dt.floor("D")
    target = target.drop(columns=[TIMESTAMP])

    def drift_of(current: pd.DataFrame) -> dict[str, float]:
        snapshot = Report([DataDriftPreset()]).run(reference_data=baseline, current_data=current)
        values = {}
        for metric in snapshot.dict()["metrics"]:
            if metric["config"]["type"].endswith("ValueDrift"):
                values[metric["config"]["column"]] = float(metric["value"])
        return values

    overall = drift_of(target)
    per_day = [drift_of(group) for _day, group in target.groupby(days)]
    drifted = sorted(f for f, value in overall.items() if value >= 0.2)
    return {"driftedFeatures": drifted, "days": len(per_day), "rows": len(target)}


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds (user + system), peak resident MiB and stdout of a process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    out = process.stdout.read() if process.stdout else ""
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 5):  # 5: ml datadrift run found drift over the threshold
        raise SystemExit(f"{command[:3]} exited {process.returncode}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/drift-bench"))
    parser.add_argument(
        "--evidently-python",
        type=Path,
        help="python of a venv with evidently (and pandas<3): adds Evidently as a contender",
    )
    parser.add_argument(
        "--evidently-rows",
        type=int,
        nargs="+",
        default=[1_000_000],
        help="target sizes to run Evidently on (it holds everything in memory, several times)",
    )
    parser.add_argument("--naive", nargs=2, metavar=("BASELINE", "TARGET"), help=argparse.SUPPRESS)
    parser.add_argument("--evidently", nargs=2, metavar=("B", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        print(json.dumps(naive_pandas(*args.naive)))
        return
    if args.evidently:
        print(json.dumps(evidently(*args.evidently)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    baseline = args.work / "baseline-1M.parquet"
    print(f"generating data in {args.work} (once)", file=sys.stderr)
    generate(baseline, BASELINE_ROWS, seed=0, drifting=False)
    env = {**os.environ, "MLCLI_HOME": str(args.work / "mlcli-home")}
    rows_out: list[tuple[int, str, list[float], list[str]]] = []
    for rows in args.rows:
        target = args.work / f"target-{rows // 1_000_000}M.parquet"
        generate(target, rows, seed=1, drifting=True)
        contenders = {
            "mlcli": [
                str(BIN / "ml"),
                "datadrift",
                "run",
                "-n",
                "bench",
                "--baseline",
                str(baseline),
                "--target",
                str(target),
                "--by",
                "day",
            ],
            "naive pandas": [sys.executable, __file__, "--naive", str(baseline), str(target)],
        }
        if args.evidently_python and rows in args.evidently_rows:
            contenders["Evidently"] = [
                str(args.evidently_python),
                __file__,
                "--evidently",
                str(baseline),
                str(target),
            ]
        for tool, command in contenders.items():
            print(f"{rows:,} rows: {tool}", file=sys.stderr)
            *figures, out = measure(command, env)
            rows_out.append((rows, tool, figures, sorted(json.loads(out)["driftedFeatures"])))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average after the run: {load}")
    print(
        f"baseline {BASELINE_ROWS:,} rows; {NUMERIC} numeric + {CATEGORICAL} categorical features"
    )
    print(
        "\n| target rows | tool | wall s | CPU s | peak RSS MiB | x mlcli's time | "
        "x mlcli's memory | drifted features |\n|---:|---|---:|---:|---:|---:|---:|---|"
    )
    mlcli = {rows: figures for rows, tool, figures, _ in rows_out if tool == "mlcli"}
    for rows, tool, (wall, cpu, mib), drifted in rows_out:
        base_wall, _cpu, base_mib = mlcli[rows]
        print(
            f"| {rows:,} | {tool} | {wall:.1f} | {cpu:.1f} | {mib:,.0f} | "
            f"{wall / base_wall:.2f} | {mib / base_mib:.2f} | {', '.join(drifted)} |"
        )


if __name__ == "__main__":
    main()
