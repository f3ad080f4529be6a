"""Prometheus metrics for GET /metrics.

Only the front process records them: it sees every request, and workers report their init()
and run() times in their replies, so one registry holds everything and no multiprocess
collection (shared files, per-pid series) is needed. The hot path only bumps plain ints
(the front is single-threaded); prometheus-client's exposition turns them into text when
/metrics is scraped, through a custom collector.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.process_collector import ProcessCollector

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
INIT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
BATCH_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)


class Histogram:
    """Bucket counts and a sum; `observe` is a bisect and two additions."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        buckets, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            running += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return buckets


class Counter:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1


class Metrics:
    """What the server counts, and the collector that exposes it."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.run_seconds = Histogram(LATENCY_BUCKETS)
        self.init_seconds = Histogram(INIT_BUCKETS)
        self.queue_wait_seconds = Histogram(LATENCY_BUCKETS)
        self.batch_size = Histogram(BATCH_BUCKETS)
        self.in_flight = 0
        self.timeouts = Counter()
        self.restarts = Counter()
        self.queued: Callable[[], int] = lambda: 0  # the pool installs its own
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(self)

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def collect(self) -> Iterator:
        requests = CounterMetricFamily(
            "mlcli_http_requests", "HTTP requests answered, by route and status code.",
            labels=("route", "status"),
        )  # fmt: skip
        for (route, status), count in sorted(self.requests.items()):
            requests.add_metric((route, str(status)), count)
        yield requests

        latency = HistogramMetricFamily(
            "mlcli_http_request_duration_seconds",
            "Time from the request's arrival to its answer, by route.",
            labels=("route",),
        )
        for route, histogram in sorted(self.latency.items()):
            latency.add_metric((route,), histogram.cumulative(), histogram.total)
        yield latency

        yield _histogram(
            "mlcli_run_duration_seconds",
            "Time spent inside the entry script's run() (with batching: in the run_batch() call"
            " that scored the request).",
            self.run_seconds,
        )
        yield _histogram(
            "mlcli_init_duration_seconds", "Time each worker spent in the entry script's init().",
            self.init_seconds,
        )  # fmt: skip
        yield _histogram(
            "mlcli_queue_wait_seconds",
            "Time from a /score request's arrival to its hand-over to a worker (with batching:"
            " until its batch was sent).",
            self.queue_wait_seconds,
        )
        yield _histogram(
            "mlcli_batch_size", "Requests per run_batch() call (dynamic batching).",
            self.batch_size,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "mlcli_http_requests_in_flight", "Requests received and not yet answered.",
            value=self.in_flight,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "mlcli_queue_waiting_requests",
            "Requests waiting for a free slot (maxConcurrentRequestsPerContainer).",
            value=self.queued(),
        )
        yield CounterMetricFamily(
            "mlcli_scoring_timeouts", "run() calls answered with the scoring timeout.",
            value=self.timeouts.value,
        )  # fmt: skip
        yield CounterMetricFamily(
            "mlcli_worker_restarts", "Workers that died or hung and were replaced.",
            value=self.restarts.value,
        )  # fmt: skip


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation)
    family.add_metric((), histogram.cumulative(), histogram.total)
    return family
