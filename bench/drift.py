"""Data drift (issue 17): `ml datadrift run` beside a naive pandas script, 1 M and 10 M rows.

Both compare a 1 M-row baseline with a target of 20 features (16 numeric, 4 categorical) and a
scoring timestamp over 7 days, overall and per day, with the same scipy statistics (KS and
Wasserstein for numbers, chi-squared and Jensen-Shannon for categories). The naive script is
what one writes first: `pandas.read_parquet` of both files, whole, then a groupby per day. Each
contender runs in its own process; the script reports its wall time and its peak resident
memory (ru_maxrss from wait4), and checks that both found the same drifted features.

    .venv/bin/python bench/drift.py [--rows 1000000 10000000] [--work /tmp/drift-bench]

The data is generated once per size (parquet, row groups of 1 M rows, fixed seed) and kept in
--work for reruns. Evidently is not part of the run: see bench/RESULTS.md.
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
    parser.add_argument("--naive", nargs=2, metavar=("BASELINE", "TARGET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive:
        print(json.dumps(naive_pandas(*args.naive)))
        return

    args.work.mkdir(parents=True, exist_ok=True)
    baseline = args.work / "baseline-1M.parquet"
    print(f"generating data in {args.work} (once)", file=sys.stderr)
    generate(baseline, BASELINE_ROWS, seed=0, drifting=False)
    env = {**os.environ, "MLCLI_HOME": str(args.work / "mlcli-home")}
    rows_out = []
    for rows in args.rows:
        target = args.work / f"target-{rows // 1_000_000}M.parquet"
        generate(target, rows, seed=1, drifting=True)
        mlcli = [str(BIN / "ml"), "datadrift", "run", "-n", "bench", "--baseline", str(baseline)]
        mlcli += ["--target", str(target), "--by", "day"]
        naive = [sys.executable, __file__, "--naive", str(baseline), str(target)]
        print(f"{rows:,} rows: mlcli", file=sys.stderr)
        *ml_figures, ml_out = measure(mlcli, env)
        print(f"{rows:,} rows: naive pandas", file=sys.stderr)
        *pd_figures, pd_out = measure(naive, env)
        drifted = sorted(json.loads(ml_out)["driftedFeatures"])
        agree = drifted == json.loads(pd_out)["driftedFeatures"]
        rows_out.append((rows, ml_figures, pd_figures, drifted, agree))

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"load average after the run: {load}")
    print(
        f"baseline {BASELINE_ROWS:,} rows; {NUMERIC} numeric + {CATEGORICAL} categorical features"
    )
    print(
        "\n| target rows | tool | wall s | CPU s | peak RSS MiB | drifted features |\n"
        "|---:|---|---:|---:|---:|---|"
    )
    for rows, (ml_s, ml_cpu, ml_mib), (pd_s, pd_cpu, pd_mib), drifted, agree in rows_out:
        found = ", ".join(drifted) + ("" if agree else " (pandas found others)")
        print(f"| {rows:,} | mlcli | {ml_s:.1f} | {ml_cpu:.1f} | {ml_mib:,.0f} | {found} |")
        print(f"| {rows:,} | naive pandas | {pd_s:.1f} | {pd_cpu:.1f} | {pd_mib:,.0f} | |")
        print(
            f"| {rows:,} | pandas / mlcli | {pd_s / ml_s:.2f}x | {pd_cpu / ml_cpu:.2f}x "
            f"| {pd_mib / ml_mib:.2f}x | |"
        )


if __name__ == "__main__":
    main()
