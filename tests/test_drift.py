"""`ml datadrift run|list|show`: which features drift, over time, from files or a service's
collected data; bad input as one-paragraph errors; the HTML report in a real headless Chromium."""

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from deploy_support import without_progress

from mlcli.cli import ml
from mlcli.paths import Workspace

ROWS = 2000
OVER_THRESHOLD = 5  # ml datadrift run's documented exit code when drift is over the threshold


def customers(seed: int, rows: int = ROWS, **change: float) -> dict[str, object]:
    """Synthetic features; `shift` moves age's mean (in sd), `spread` scales income's sd,
    `new_category` gives that share of rows a colour the baseline never had."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2]).astype(object)
    colour[rng.random(rows) < change.get("new_category", 0.0)] = "purple"
    return {
        "age": rng.normal(40 + 10 * change.get("shift", 0.0), 10, rows),
        "income": rng.normal(50_000, 15_000 * change.get("spread", 1.0), rows),
        "visits": rng.poisson(3, rows),
        "colour": colour.tolist(),
        "plan": rng.choice(["free", "pro"], rows, p=[0.8, 0.2]).tolist(),
    }


def reviews(seed: int, words: list[str], rows: int = 600) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    sentences = [" ".join(rng.choice(words, rng.integers(4, 16))) for _ in range(rows)]
    return {"text": [s.capitalize() + "." for s in sentences]}


MOVIE_WORDS = [
    "the",
    "a",
    "movie",
    "film",
    "plot",
    "actor",
    "was",
    "great",
    "terrible",
    "boring",
    "loved",
    "it",
    "story",
    "ending",
]
PHONE_WORDS = [
    "battery",
    "screen",
    "charger",
    "phone",
    "app",
    "camera",
    "crashed",
    "fast",
    "slow",
    "signal",
    "pixels",
]


def write(path: Path, columns: dict[str, object]) -> Path:
    table = pa.table(columns)
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path


def drift(*args: str) -> Result:
    return CliRunner().invoke(ml, ["datadrift", *args])


def run_drift(baseline: Path, target: Path, *args: str) -> tuple[Result, dict]:
    result = drift(
        "run", "-n", "customers", "--baseline", str(baseline), "--target", str(target), *args
    )
    assert result.exit_code in (0, OVER_THRESHOLD), result.stderr
    return result, json.loads(result.stdout)


@pytest.fixture
def baseline(tmp_path: Path) -> Path:
    return write(tmp_path / "baseline.parquet", customers(seed=0))


@pytest.mark.parametrize(
    ("change", "drifted"),
    [({"shift": 0.5}, "age"), ({"spread": 2.0}, "income"), ({"new_category": 0.2}, "colour")],
    ids=["mean shift", "variance change", "new category"],
)
def test_a_change_in_one_feature_is_flagged_on_that_feature_only(
    baseline: Path, tmp_path: Path, change: dict[str, float], drifted: str
) -> None:
    target = write(tmp_path / "target.parquet", customers(seed=1, **change))

    result, record = run_drift(baseline, target)

    assert result.exit_code == OVER_THRESHOLD
    assert record["driftedFeatures"] == [drifted]
    assert record["overThreshold"] is True
    assert record["features"][0]["feature"] == drifted  # sorted by drift, largest first
    assert record["magnitude"] == record["features"][0]["drift"] >= 0.2


def test_a_resample_of_the_baseline_is_not_flagged(baseline: Path, tmp_path: Path) -> None:
    rows = np.random.default_rng(7).integers(0, ROWS, ROWS)
    target = write(tmp_path / "resample.parquet", pq.read_table(baseline).take(rows).to_pydict())

    result, record = run_drift(baseline, target)

    assert result.exit_code == 0
    assert record["driftedFeatures"] == []
    assert record["magnitude"] < 0.1


def test_a_fresh_sample_of_the_same_population_is_not_flagged(
    baseline: Path, tmp_path: Path
) -> None:
    target = write(tmp_path / "fresh.csv", customers(seed=2))

    result, record = run_drift(baseline, target)

    assert result.exit_code == 0
    assert record["overThreshold"] is False
    assert record["magnitude"] < 0.1


def test_each_kind_of_feature_reports_its_tests_and_distances(
    baseline: Path, tmp_path: Path
) -> None:
    target = write(tmp_path / "target.parquet", customers(seed=1, new_category=0.2))

    _, record = run_drift(baseline, target)

    by_name = {f["feature"]: f for f in record["features"]}
    assert by_name["age"]["kind"] == by_name["visits"]["kind"] == "numeric"
    assert {"ksStatistic", "ksPValue", "wassersteinNormalised"} <= by_name["age"]["metrics"].keys()
    colour = by_name["colour"]
    assert colour["kind"] == "categorical"
    assert {"chiSquaredPValue", "jensenShannonDistance", "populationStabilityIndex"} <= colour[
        "metrics"
    ].keys()
    assert list(colour["metrics"]["newCategories"]) == ["purple"]
    assert "distribution" not in colour  # the plots' data stays in the record, not on stdout


def test_text_in_another_vocabulary_drifts_on_its_out_of_vocabulary_rate(
    tmp_path: Path,
) -> None:
    baseline = write(tmp_path / "reviews.parquet", reviews(0, MOVIE_WORDS))
    same_topic = write(tmp_path / "more_reviews.parquet", reviews(1, MOVIE_WORDS))
    other_topic = write(tmp_path / "phone_reviews.parquet", reviews(2, PHONE_WORDS))

    _, same = run_drift(baseline, same_topic)
    result, other = run_drift(baseline, other_topic)

    assert {f["feature"] for f in same["features"]} == {"text.length", "text.oovRate"}
    assert same["driftedFeatures"] == []
    assert result.exit_code == OVER_THRESHOLD
    assert "text.oovRate" in other["driftedFeatures"]
    assert {f["kind"] for f in other["features"]} == {"text"}


@pytest.mark.parametrize("in_time_order", [True, False], ids=["in time order", "shuffled"])
def test_drift_per_day_shows_when_the_change_began(
    baseline: Path, tmp_path: Path, in_time_order: bool
) -> None:
    days = [customers(seed=10), customers(seed=11), customers(seed=12, shift=1.0)]
    columns = {k: [value for day in days for value in day[k]] for k in days[0]}
    columns["$aml_dc_scoring_timestamp"] = [
        f"2026-11-0{day + 1}T{hour % 24:02d}:30:00Z" for day in range(3) for hour in range(ROWS)
    ]
    if not in_time_order:
        shuffled = np.random.default_rng(5).permutation(3 * ROWS)
        columns = {k: [v[i] for i in shuffled] for k, v in columns.items()}
    target = write(tmp_path / "three_days.parquet", columns)

    _, record = run_drift(baseline, target, "--by", "day")

    starts = [b["start"][:10] for b in record["buckets"]]
    assert starts == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert [b["overThreshold"] for b in record["buckets"]] == [False, False, True]
    assert [b["rows"] for b in record["buckets"]] == [ROWS, ROWS, ROWS]
    assert record["buckets"][2]["drift"]["age"] >= 0.9


def test_since_leaves_older_target_rows_out(baseline: Path, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old, recent = customers(seed=20, shift=1.0), customers(seed=21)
    columns = {k: list(old[k]) + list(recent[k]) for k in old}
    columns["$aml_dc_scoring_timestamp"] = [(now - timedelta(days=10)).isoformat()] * ROWS + [
        (now - timedelta(hours=1)).isoformat()
    ] * ROWS
    target = write(tmp_path / "target.parquet", columns)

    everything, with_old = run_drift(baseline, target)
    recent_only, without_old = run_drift(baseline, target, "--since", "2d")

    assert everything.exit_code == OVER_THRESHOLD
    assert recent_only.exit_code == 0
    assert without_old["target"]["rows"] == ROWS
    assert with_old["target"]["rows"] == 2 * ROWS


def collect(
    service: str, model: str, version: int, day: str, columns: dict, *, twin: dict | None = None
) -> Path:
    """Write collected inputs where a service's data collector puts them (Azure's layout)."""
    yyyy, mm, dd = day.split("-")
    folder = Workspace.named().collected_dir / service / model / str(version) / "inputs"
    folder = folder / yyyy / mm / dd
    folder.mkdir(parents=True, exist_ok=True)
    rows = len(next(iter(columns.values())))
    metadata = {
        "$aml_dc_correlation_id": [f"id-{i}" for i in range(rows)],
        "$aml_model": [f"{model}:{version}"] * rows,
        "$aml_service_name": [service] * rows,
        "$aml_dc_scoring_timestamp": [f"{day}T12:00:{i % 60:02d}.000Z" for i in range(rows)],
    }
    path = write(folder / "data_0.parquet", {**metadata, **columns})
    if twin is not None:
        write(folder / "data_0.csv", {**metadata, **twin})
    return path


def test_a_services_collected_inputs_are_the_target_and_parquet_wins_over_its_csv_twin(
    baseline: Path,
) -> None:
    collect("shop", "churn", 1, "2026-11-01", customers(seed=30), twin=customers(31, shift=2.0))
    collect("shop", "churn", 1, "2026-11-02", customers(seed=32))

    result = drift("run", "-n", "shop", "--baseline", str(baseline), "--service", "shop")

    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["target"]["service"] == "shop"
    assert record["target"]["files"] == 2
    assert record["target"]["rows"] == 2 * ROWS
    assert len(record["buckets"]) == 2
    assert not any(f["feature"].startswith("$aml_") for f in record["features"])


def test_model_picks_one_models_version_among_a_services_collected_data(baseline: Path) -> None:
    collect("shop", "churn", 1, "2026-11-01", customers(seed=40))
    collect("shop", "churn", 2, "2026-11-02", customers(seed=41, shift=1.0))
    args = ["run", "-n", "shop", "--baseline", str(baseline), "--service", "shop"]

    version_1 = drift(*args, "--model", "churn:1")
    both = drift(*args)

    assert version_1.exit_code == 0, version_1.stderr
    assert both.exit_code == OVER_THRESHOLD, both.stderr
    assert json.loads(both.stdout)["driftedFeatures"] == ["age"]


def test_a_service_with_no_collected_data_exits_3_naming_the_folder_searched(
    baseline: Path, mlcli_home: Path
) -> None:
    result = drift("run", "-n", "shop", "--baseline", str(baseline), "--service", "shop")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert str(mlcli_home / "workspaces/default/collected/shop") in result.stderr
    assert "ModelDataCollector" in result.stderr


def test_runs_are_kept_listed_and_shown_by_number(baseline: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "target.parquet", customers(seed=1, shift=0.5))
    run_drift(baseline, target)
    run_drift(baseline, write(tmp_path / "fresh.parquet", customers(seed=2)))

    listed = drift("list", "-n", "customers")
    first = drift("show", "-n", "customers", "--run", "1")
    latest = drift("show", "-n", "customers")

    assert [(r["runId"], r["overThreshold"]) for r in json.loads(listed.stdout)] == [
        (1, True),
        (2, False),
    ]
    assert json.loads(first.stdout)["driftedFeatures"] == ["age"]
    assert json.loads(latest.stdout)["runId"] == 2


def test_show_redraws_a_past_runs_report(baseline: Path, tmp_path: Path) -> None:
    run_drift(baseline, write(tmp_path / "target.parquet", customers(seed=1, shift=0.5)))

    result = drift("show", "-n", "customers", "--report", str(tmp_path / "again.html"))

    assert result.exit_code == 0, result.stderr
    page = (tmp_path / "again.html").read_text()
    assert "<script src=" not in page  # nothing fetched: plotly.js is inside the file
    assert page.count('class="plotly-graph-div"') == 1 + 5  # drift per feature, then each one


def test_showing_an_unknown_name_exits_3() -> None:
    result = drift("show", "-n", "nothing-here")

    assert result.exit_code == 3
    assert "nothing-here" in result.stderr


def _bad_inputs(tmp: Path, baseline: Path) -> dict[str, tuple[list[str], int, list[str]]]:
    """case -> (arguments after `run -n bad`, exit code, words the message must contain)."""
    no_income = customers(seed=1)
    del no_income["income"]
    as_text = customers(seed=1)
    as_text["age"] = [f"{v:.0f} years" for v in as_text["age"]]
    write(tmp / "no_income.parquet", no_income)
    write(tmp / "age_as_text.csv", as_text)
    (tmp / "header_only.csv").write_text("age,income,visits,colour,plan\n")
    (tmp / "data.json").write_text("{}")
    base = ["--baseline", str(baseline)]
    return {
        "missing column": (
            [*base, "--target", str(tmp / "no_income.parquet")],
            2,
            ["'income'", "--features"],
        ),
        "empty target": ([*base, "--target", str(tmp / "header_only.csv")], 2, ["no rows"]),
        "type mismatch": (
            [*base, "--target", str(tmp / "age_as_text.csv")],
            2,
            ["'age'", "double", "string"],
        ),
        "unknown feature": (
            [*base, "--target", str(tmp / "no_income.parquet"), "--features", "age,height"],
            2,
            ["'height'", "--features"],
        ),
        "no such baseline": (
            ["--baseline", str(tmp / "nope.csv"), "--target", str(baseline)],
            3,
            ["nope.csv"],
        ),
        "not csv or parquet": ([*base, "--target", str(tmp / "data.json")], 2, ["data.json"]),
        "target and service": (
            [*base, "--target", str(baseline), "--service", "shop"],
            2,
            ["--service"],
        ),
        "bad duration": ([*base, "--target", str(baseline), "--since", "soon"], 2, ["'soon'"]),
        "since without times": (
            [*base, "--target", str(baseline), "--since", "7d"],
            2,
            ["$aml_dc_scoring_timestamp"],
        ),
        "threshold over 1": ([*base, "--target", str(baseline), "--threshold", "3"], 2, ["(0, 1]"]),
        "report folder missing": (
            [*base, "--target", str(baseline), "--report", str(tmp / "no/such/r.html")],
            2,
            ["--report"],
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing column",
        "empty target",
        "type mismatch",
        "unknown feature",
        "no such baseline",
        "not csv or parquet",
        "target and service",
        "bad duration",
        "since without times",
        "threshold over 1",
        "report folder missing",
    ],
)
def test_bad_input_is_one_paragraph_with_its_exit_code_and_records_nothing(
    case: str, baseline: Path, tmp_path: Path
) -> None:
    args, exit_code, words = _bad_inputs(tmp_path, baseline)[case]

    result = drift("run", "-n", "bad", *args)

    assert result.exit_code == exit_code, result.stderr
    assert result.stdout == ""
    message = without_progress(result.stderr).strip()
    assert message.startswith("error: ")
    assert "\n" not in message
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in message
    assert json.loads(drift("list").stdout) == []


def chromium() -> str:
    """Debian's chromium; its absence skips, unless CI requires it (MLCLI_REQUIRE_BROWSER=1)."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("MLCLI_REQUIRE_BROWSER") == "1":
            pytest.fail("MLCLI_REQUIRE_BROWSER=1 but chromium is not on PATH")
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    return found


def open_in_chromium(page: Path, folder: Path) -> tuple[str, Path, list[str]]:
    """Load `page` in headless Chromium with a fresh profile and no network services; returns
    the DOM after scripts ran, a screenshot, and every console message the page produced."""
    screenshot = page.with_suffix(".png")
    done = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={folder / ('profile-' + page.stem)}",
            "--enable-logging=stderr",
            "--v=0",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            "--virtual-time-budget=10000",
            f"--screenshot={screenshot}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, screenshot, console


def pixels_of(screenshot: Path, colour: str) -> int:
    """How many pixels of the screenshot are (nearly) `colour`, e.g. "#ff7f0e"."""
    from PIL import Image

    rgb = np.asarray(Image.open(screenshot).convert("RGB")).astype(int)
    wanted = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - wanted).max(axis=2) <= 12).sum())


@pytest.mark.slow
def test_the_report_renders_its_plots_in_headless_chromium_offline_without_console_errors(
    baseline: Path, tmp_path: Path
) -> None:
    from mlcli.drift.report import BASELINE_COLOUR, TARGET_COLOUR

    target = write(tmp_path / "target.parquet", customers(seed=1, shift=0.5, new_category=0.2))
    report = tmp_path / "drift.html"
    run_drift(baseline, target, "--report", str(report))
    page = report.read_text()

    # The control: the same page without plotly.js must fail every check below.
    broken = tmp_path / "broken.html"
    broken.write_text(
        re.sub(r"<script type=\"text/javascript\">.*?</script>", "", page, count=1, flags=re.S)
    )

    dom, screenshot, console = open_in_chromium(report, tmp_path)
    broken_dom, broken_screenshot, broken_console = open_in_chromium(broken, tmp_path)

    assert not re.search(r"<(script|link|img)[^>]*(src|href)=", page)  # nothing to fetch
    assert console == []
    assert any("Plotly is not defined" in line for line in broken_console)
    figures = page.count('class="plotly-graph-div"')
    assert figures == 1 + 5
    assert dom.count('class="plot-container plotly"') == figures  # plotly drew every one
    assert broken_dom.count('class="plot-container plotly"') == 0
    # The bars are drawn in the report's two colours; without plotly.js nothing is.
    assert pixels_of(screenshot, TARGET_COLOUR) > 2000
    assert pixels_of(screenshot, BASELINE_COLOUR) > 2000
    assert pixels_of(broken_screenshot, TARGET_COLOUR) < 100


def test_large_samples_are_tested_on_their_quantiles_with_the_same_verdict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlcli.drift import statistics

    rng = np.random.default_rng(3)
    baseline, target = rng.normal(0, 1, 40_000), rng.normal(0.3, 1, 40_000)
    every_value = statistics.compare_numeric(baseline, target)
    monkeypatch.setattr(statistics, "MAX_TESTED_VALUES", 2_000)

    quantiles = statistics.compare_numeric(baseline, target)

    assert abs(quantiles.drift - every_value.drift) < 0.01
    assert quantiles.p_value < 1e-6
    assert quantiles.metrics["targetMean"] == every_value.metrics["targetMean"]


def test_concurrent_runs_of_one_name_get_distinct_numbers() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from mlcli.drift.runs import list_runs, save_run

    workspace = Workspace.named()
    record = {"name": "busy", "features": [], "magnitude": 0.0}
    with ThreadPoolExecutor(8) as pool:
        saved = list(pool.map(lambda _: save_run(workspace, record), range(16)))

    assert sorted(r["runId"] for r in saved) == list(range(1, 17))
    assert [r["runId"] for r in list_runs(workspace, "busy")] == list(range(1, 17))
    assert not list((workspace.root / "datadrift" / "busy").glob(".partial-*"))


def test_since_skips_a_services_older_day_folders_without_opening_them(baseline: Path) -> None:
    today = datetime.now(UTC).date().isoformat()
    collect("shop", "churn", 1, "2026-01-01", customers(seed=50, shift=2.0))
    collect("shop", "churn", 1, today, customers(seed=51))

    result = drift(
        "run", "-n", "shop", "--baseline", str(baseline), "--service", "shop", "--since", "2d"
    )

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["target"]["files"] == 1


def test_a_collected_file_without_a_parquet_twin_is_read_from_its_csv(baseline: Path) -> None:
    parquet = collect("shop", "churn", 1, "2026-11-01", customers(60), twin=customers(60))
    parquet.unlink()
    collect("shop", "churn", 1, "2026-11-02", customers(seed=61))

    result = drift("run", "-n", "shop", "--baseline", str(baseline), "--service", "shop")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["target"]["rows"] == 2 * ROWS


def test_a_feature_the_target_never_fills_counts_as_fully_drifted(
    baseline: Path, tmp_path: Path
) -> None:
    columns = customers(seed=1)
    columns["income"] = [None] * ROWS
    target = write(tmp_path / "no_income.csv", columns)

    result, record = run_drift(baseline, target)

    assert result.exit_code == OVER_THRESHOLD
    assert record["driftedFeatures"] == ["income"]
    assert record["features"][0]["metrics"]["note"] == "the target has no values"
