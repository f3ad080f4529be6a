"""`ml datadrift ...`: has what a service receives drifted from its model's baseline?

`run` exits 0 under the threshold and 5 (DRIFT_EXIT_CODE) over it, after printing the result,
so a CI step or a cron job can alert on the exit code alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlcli.cli.options import common_options, parse_duration, workspace_name
from mlcli.cli.output import emit, progress

DRIFT_EXIT_CODE = 5
LIST_COLUMNS = ("name", "runId", "createdTime", "magnitude", "threshold", "overThreshold")


@click.group()
def datadrift() -> None:
    """Compare what a service receives with its model's baseline, feature by feature."""


@datadrift.command("run")
@click.option("-n", "--name", required=True, help="Name the runs are kept under.")
@click.option(
    "--baseline",
    required=True,
    type=click.Path(path_type=Path),
    help="The data the model was trained on (.csv or .parquet).",
)
@click.option(
    "--target", type=click.Path(path_type=Path), help="Data to compare (.csv or .parquet)."
)
@click.option("--service", metavar="NAME", help="Compare the service's collected inputs.")
@click.option("--model", "model_id", metavar="NAME[:N]", help="With --service: one model's data.")
@click.option("--features", metavar="A,B", help="Columns to compare (default: all features).")
@click.option("--since", metavar="DURATION", help="Only target rows this recent: 12h, 7d, 2w.")
@click.option(
    "--threshold",
    type=float,
    default=0.2,
    show_default=True,
    help="Drift magnitude (0-1) above which the run exits 5.",
)
@click.option(
    "--by",
    type=click.Choice(["hour", "day", "week", "month"]),
    default="day",
    show_default=True,
    help="Time bucket of the trend.",
)
@click.option(
    "--timestamp-column",
    default="$aml_dc_scoring_timestamp",
    show_default=True,
    help="The target's time column (ISO 8601 UTC).",
)
@click.option(
    "--report", type=click.Path(path_type=Path), help="Write an offline HTML report here."
)
@common_options
def run(
    name: str,
    baseline: Path,
    target: Path | None,
    service: str | None,
    model_id: str | None,
    features: str | None,
    since: str | None,
    threshold: float,
    by: str,
    timestamp_column: str,
    report: Path | None,
    output: str,
    query: str | None,
) -> None:
    """Compare a target (a file or a service's collected inputs) with a baseline.

    Exits 0 when the drift magnitude is under the threshold, 5 when it is over.

    \b
    Example:
        ml datadrift run -n reviews --baseline train.parquet --service myservice --since 7d \\
            --report drift.html
        ml datadrift run -n reviews --baseline train.csv --target last_week.csv
    """
    from mlcli.drift.detector import DriftRequest, run_drift
    from mlcli.models import ModelRef
    from mlcli.paths import Workspace

    request = DriftRequest(
        name=name,
        baseline=baseline,
        target=target,
        service=service,
        model=ModelRef.parse(model_id, where="--model") if model_id else None,
        features=tuple(f.strip() for f in features.split(",") if f.strip()) if features else (),
        since=parse_duration(since, "--since") if since else None,
        threshold=threshold,
        by=by,
        timestamp_column=timestamp_column,
        report=report,
    )
    with progress("comparing") as on_progress:
        record = run_drift(
            request, workspace=Workspace.named(workspace_name()), on_progress=on_progress
        )
    emit(_shown(record), output, query, columns=LIST_COLUMNS)
    if record["overThreshold"]:
        click.get_current_context().exit(DRIFT_EXIT_CODE)


@datadrift.command("list")
@click.option("-n", "--name", help="Only the runs of this name.")
@common_options
def list_(name: str | None, output: str, query: str | None) -> None:
    """List drift runs: magnitude, threshold and verdict of each.

    \b
    Example:
        ml datadrift list -n reviews -o table
    """
    from mlcli.drift.runs import list_runs
    from mlcli.paths import Workspace

    runs = list_runs(Workspace.named(workspace_name()), name)
    emit([_summary(r) for r in runs], output, query, columns=LIST_COLUMNS)


@datadrift.command("show")
@click.option("-n", "--name", required=True, help="Name of the runs.")
@click.option("--run", "run_id", type=int, help="Run number; the latest when omitted.")
@click.option(
    "--report", type=click.Path(path_type=Path), help="Write this run's HTML report here."
)
@common_options
def show(
    name: str, run_id: int | None, report: Path | None, output: str, query: str | None
) -> None:
    """Show one drift run: every feature's drift and measures, and the trend.

    \b
    Example:
        ml datadrift show -n reviews --run 3 --report drift.html
    """
    from mlcli.drift.report import write_report
    from mlcli.drift.runs import load_run
    from mlcli.paths import Workspace

    record = load_run(Workspace.named(workspace_name()), name, run_id)
    if report is not None:
        write_report(record, report)
    emit(_shown(record), output, query, columns=LIST_COLUMNS)


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    """The record without the plots' histograms (the report draws them; stdout stays short)."""
    features = [{k: v for k, v in f.items() if k != "distribution"} for f in record["features"]]
    return {**record, "features": features}


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": record["name"],
        "runId": record["runId"],
        "createdTime": record["createdTime"],
        "magnitude": record["magnitude"],
        "threshold": record["threshold"],
        "overThreshold": record["overThreshold"],
        "driftedFeatures": record["driftedFeatures"],
        "targetRows": record["target"]["rows"],
    }
