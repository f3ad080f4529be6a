"""Prometheus metrics for GET /metrics.

Only the front process records them: it sees every request, and workers report their init()
and run() times in their replies, so one registry holds everything and no multiprocess
collection (shared files, per-pid series) is needed.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)  # fmt: skip
INIT_BUCKETS = (0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    """The collectors, plus cached label children so the hot path does no label lookups."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        self.requests = Counter(
            "mlcli_http_requests",
            "HTTP requests answered, by route and status code.",
            ("route", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "mlcli_http_request_duration_seconds",
            "Time from the request's arrival to its answer, by route.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.run_seconds = Histogram(
            "mlcli_run_duration_seconds",
            "Time spent inside the entry script's run().",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "mlcli_http_requests_in_flight",
            "Requests received and not yet answered.",
            registry=registry,
        )
        self.queued = Gauge(
            "mlcli_queue_waiting_requests",
            "Requests waiting for a free slot (maxConcurrentRequestsPerContainer).",
            registry=registry,
        )
        self.init_seconds = Histogram(
            "mlcli_init_duration_seconds",
            "Time each worker spent in the entry script's init().",
            buckets=INIT_BUCKETS,
            registry=registry,
        )
        self.timeouts = Counter(
            "mlcli_scoring_timeouts",
            "run() calls answered with the scoring timeout.",
            registry=registry,
        )
        self.restarts = Counter(
            "mlcli_worker_restarts",
            "Workers that died or hung and were replaced.",
            registry=registry,
        )
        self._children: dict = {}
        self._latency_children: dict = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, str(status))
        child.inc()
        latency = self._latency_children.get(route)
        if latency is None:
            latency = self._latency_children[route] = self.latency.labels(route)
        latency.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
