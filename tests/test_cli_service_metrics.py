"""`ml service metrics`: a service's request counts, errors, percentiles and throughput from its
own /metrics, and the percentile arithmetic behind them."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from deploy_support import deploy_echo, invoke, ok, post, register_factor

from mlcli.service_metrics import quantile


def test_quantiles_interpolate_within_a_bucket_as_prometheus_does() -> None:
    # 100 observations: 50 in (0, 0.01], 40 in (0.01, 0.1], 10 in (0.1, 1]
    buckets = [(0.01, 50), (0.1, 90), (1.0, 100), (float("inf"), 100)]

    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.7, buckets) == pytest.approx(0.01 + 0.09 * 20 / 40)
    assert quantile(0.95, buckets) == pytest.approx(0.1 + 0.9 * 5 / 10)
    assert quantile(0.5, [(0.01, 0), (float("inf"), 0)]) is None


def test_batch_size_quantiles_are_bucket_bounds_not_fractions() -> None:
    buckets = [(1.0, 10), (2.0, 10), (4.0, 30), (float("inf"), 30)]

    assert quantile(0.5, buckets, interpolate=False) == 4.0
    assert quantile(0.2, buckets, interpolate=False) == 1.0


def test_a_quantile_beyond_the_last_finite_bucket_is_that_bound() -> None:
    assert quantile(0.99, [(1.0, 10), (float("inf"), 20)]) == 1.0


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_metrics_count_requests_and_errors_and_give_ordered_percentiles(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 3)
    uri = deploy_echo(tmp_path, "measured")["scoringUri"]
    for _ in range(20):
        assert post(uri, {"data": [1, 2]}).status_code == 200
    for _ in range(3):
        assert post(uri, {"no data": True}).status_code == 500

    report = ok("service", "metrics", "-n", "measured")

    assert report["requests"] == 23
    assert report["errors"] == 3
    assert report["requestsByStatus"] == {"200": 20, "500": 3}
    latency = report["latencyMs"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert report["runMs"]["p50"] is not None
    assert report["requestsPerSecond"] > 0
    assert report["collection"] is None  # collection is off
    table = invoke("service", "metrics", "-n", "measured", "-o", "table")
    assert table.exit_code == 0, table.stderr
    assert "latencyMs.p99" in table.stdout
    assert "requestsByStatus.500" in table.stdout


@pytest.mark.slow
@pytest.mark.usefixtures("shared_environments", "services_cleanup")
def test_an_interval_reports_only_the_requests_made_during_it(tmp_path: Path) -> None:
    register_factor(tmp_path, "scale", 3)
    uri = deploy_echo(tmp_path, "windowed")["scoringUri"]
    for _ in range(5):
        post(uri, {"data": [1]})
    sent = []

    def during() -> None:
        import time

        time.sleep(0.3)
        for _ in range(7):
            sent.append(post(uri, {"data": [1]}).status_code)

    thread = threading.Thread(target=during)
    thread.start()
    report = ok("service", "metrics", "-n", "windowed", "--interval", "2")
    thread.join()

    assert sent == [200] * 7
    assert report["requests"] == 7
    assert report["window"] == "the last 2 s"


def test_an_unknown_service_exits_3() -> None:
    result = invoke("service", "metrics", "-n", "nope")

    assert result.exit_code == 3
    assert result.stdout == ""
    assert "nope" in result.stderr
    assert "Traceback" not in result.stderr
