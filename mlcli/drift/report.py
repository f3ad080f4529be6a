"""The drift report: one HTML file that opens with no network, made from a run's record alone.

plotly.js is embedded once in the page's head (about 4.8 MB) and every figure is a div drawn
by it, so the file can be mailed, archived or opened on an air-gapped machine. Because the
record holds everything the page shows, `ml datadrift show --report` redraws any past run.
"""

from __future__ import annotations

import html
import itertools
import tempfile
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from mlcli.errors import ConfigError

BASELINE_COLOUR = "#1f77b4"
TARGET_COLOUR = "#ff7f0e"
THRESHOLD_COLOUR = "#d62728"
TREND_FEATURES = 6  # features drawn over time: the most drifted ones
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def check_report_path(path: Path) -> None:
    """Refuse a report path that cannot be written, before any work is done."""
    if path.is_dir() or not path.absolute().parent.is_dir():
        raise ConfigError(
            f"the report cannot be written to {path}: "
            + ("it is a folder." if path.is_dir() else "its folder does not exist."),
            where="--report",
            fix="Give a file name in an existing folder, e.g. --report drift.html.",
        )


def write_report(record: dict[str, Any], path: Path) -> None:
    """Write the report for `record` to `path`, atomically (no half-written file on a kill)."""
    check_report_path(path)
    page = render_report(record)
    folder = path.absolute().parent
    with tempfile.NamedTemporaryFile(
        "w", dir=folder, prefix=f".{path.name}.", suffix=".partial", delete=False, encoding="utf-8"
    ) as handle:
        handle.write(page)
        temporary = Path(handle.name)
    try:
        temporary.chmod(0o644)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def render_report(record: dict[str, Any]) -> str:
    title = f"Data drift {record['name']}, run {record.get('runId', '')}"
    sections = [
        _summary(record),
        _figure(_drift_by_feature(record), "drift-by-feature"),
        _feature_table(record),
    ]
    if record["buckets"]:
        sections += ["<h2>Drift over time</h2>", _figure(_drift_over_time(record), "drift-time")]
    sections.append("<h2>Baseline and target, feature by feature</h2>")
    for index, feature in enumerate(record["features"]):
        sections.append(_figure(_distribution(feature), f"feature-{index}"))
    return _PAGE.format(title=html.escape(title), plotly=get_plotlyjs(), body="\n".join(sections))


def _summary(record: dict[str, Any]) -> str:
    over = record["overThreshold"]
    verdict = "over the threshold" if over else "under the threshold"
    target = record["target"]
    target_text = target.get("path") or f"service {target['service']}" + (
        f", model {target['model']}" if target.get("model") else ""
    )
    window = f", {target['from']} to {target['to']}" if target.get("from") else ""
    drifted = ", ".join(record["driftedFeatures"]) or "none"
    rows = [
        ("Drift magnitude", f"{record['magnitude']:.3f} ({verdict} {record['threshold']:g})"),
        ("Drifted features", drifted),
        ("Baseline", f"{record['baseline']['path']} ({record['baseline']['rows']:,} rows)"),
        ("Target", f"{target_text} ({target['rows']:,} rows{window})"),
        ("Run", f"{record.get('runId', '')} at {record['createdTime']}"),
    ]
    cells = "".join(f"<tr><th>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    status = "over" if over else "under"
    return (
        f'<h1>{html.escape(record["name"])}: <span class="{status}">'
        f'drift {record["magnitude"]:.3f}</span></h1>\n<table class="summary">{cells}</table>'
    )


def _feature_table(record: dict[str, Any]) -> str:
    head = "<tr><th>feature</th><th>kind</th><th>drift</th><th>p-value</th><th>drifted</th>"
    head += "<th>measures</th></tr>"
    rows = []
    for feature in record["features"]:
        measures = html.escape(_measures(feature))
        mark = "yes" if feature["drifted"] else ""
        rows.append(
            f'<tr class="{"over" if feature["drifted"] else ""}">'
            f"<td>{html.escape(feature['feature'])}</td><td>{feature['kind']}</td>"
            f"<td>{feature['drift']:.3f}</td><td>{feature['pValue']:.3g}</td>"
            f"<td>{mark}</td><td>{measures}</td></tr>"
        )
    return f'<table class="features">{head}{"".join(rows)}</table>'


def _measures(feature: dict[str, Any]) -> str:
    metrics = feature["metrics"]
    if "note" in metrics:
        return metrics["note"]
    if feature["kind"] == "categorical":
        text = (
            f"Jensen-Shannon {metrics['jensenShannonDistance']:.3f}, "
            f"PSI {metrics['populationStabilityIndex']:.3f}, "
            f"chi-squared {metrics['chiSquared']:.1f}"
        )
        if metrics["newCategories"]:
            text += ", new: " + ", ".join(metrics["newCategories"])
        return text
    return (
        f"KS {metrics['ksStatistic']:.3f}, Wasserstein/sd {metrics['wassersteinNormalised']:.3f}, "
        f"mean {metrics['baselineMean']:.4g} -> {metrics['targetMean']:.4g}, "
        f"sd {metrics['baselineStd']:.4g} -> {metrics['targetStd']:.4g}"
    )


def _drift_by_feature(record: dict[str, Any]) -> go.Figure:
    features = list(reversed(record["features"]))
    figure = go.Figure(
        go.Bar(
            x=[f["drift"] for f in features],
            y=[f["feature"] for f in features],
            orientation="h",
            marker_color=[TARGET_COLOUR if f["drifted"] else BASELINE_COLOUR for f in features],
            name="drift",
        )
    )
    figure.add_vline(x=record["threshold"], line_dash="dash", line_color=THRESHOLD_COLOUR)
    figure.update_layout(
        title="Drift per feature (dashed: threshold)",
        xaxis={"range": [0, 1], "title": "drift"},
        height=max(260, 28 * len(features) + 120),
        margin={"l": 160},
    )
    return figure


def _drift_over_time(record: dict[str, Any]) -> go.Figure:
    starts = [b["start"] for b in record["buckets"]]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=starts,
            y=[b["magnitude"] for b in record["buckets"]],
            name="magnitude",
            mode="lines+markers",
            line={"color": TARGET_COLOUR, "width": 3},
        )
    )
    for feature in record["features"][:TREND_FEATURES]:
        name = feature["feature"]
        figure.add_trace(
            go.Scatter(
                x=starts,
                y=[b["drift"].get(name) for b in record["buckets"]],
                name=name,
                mode="lines",
                line={"dash": "dot"},
            )
        )
    figure.add_hline(y=record["threshold"], line_dash="dash", line_color=THRESHOLD_COLOUR)
    figure.update_layout(
        title=f"Drift per {record['by']} (dashed: threshold)",
        yaxis={"range": [0, 1.05], "title": "drift"},
        height=380,
    )
    return figure


def _distribution(feature: dict[str, Any]) -> go.Figure:
    shape = feature["distribution"]
    if shape["kind"] == "bars":
        labels = shape["categories"]
        width = None
    else:
        edges = shape["edges"]
        labels = [(low + high) / 2 for low, high in itertools.pairwise(edges)]
        width = edges[1] - edges[0]
    figure = go.Figure()
    for side, colour in (("baseline", BASELINE_COLOUR), ("target", TARGET_COLOUR)):
        figure.add_trace(
            go.Bar(x=labels, y=shape[side], name=side, marker_color=colour, width=width)
        )
    verdict = "drifted" if feature["drifted"] else "not drifted"
    figure.update_layout(
        title=f"{feature['feature']} ({feature['kind']}): drift {feature['drift']:.3f}, {verdict}",
        barmode="group" if shape["kind"] == "bars" else "overlay",
        yaxis={"title": "share of rows", "tickformat": ".0%"},
        height=320,
    )
    if shape["kind"] != "bars":
        figure.update_traces(opacity=0.6)
    return figure


def _figure(figure: go.Figure, div_id: str) -> str:
    figure.update_layout(template="plotly_white")
    return pio.to_html(
        figure, full_html=False, include_plotlyjs=False, div_id=div_id, config=_PLOT_CONFIG
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<script type="text/javascript">{plotly}</script>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ text-align: left; padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; }}
table.features tr.over td {{ background: #fff1e6; }}
h1 .over {{ color: {over}; }} h1 .under {{ color: #2ca02c; }}
</style>
</head>
<body>
{body}
</body>
</html>
""".replace("{over}", THRESHOLD_COLOUR)
