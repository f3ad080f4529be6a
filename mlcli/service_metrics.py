"""`ml service metrics`: a service's request counts, latency percentiles, throughput, batch sizes
and collection drops, read from its own Prometheus /metrics (mlcli/server/metrics.py).

The server's counters run from its start, so the report covers the server's lifetime; with an
interval, /metrics is read twice and the report covers what happened in between.
Percentiles come from the histograms' buckets, interpolated within a bucket as Prometheus'
histogram_quantile() does.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlcli.errors import ConflictError, DeployError, MlcliError
from mlcli.paths import Workspace

SCORE = "/score"
QUANTILES = (0.5, 0.95, 0.99)
TIMEOUT_S = 10


@dataclass
class Scrape:
    """One read of /metrics: samples by (name, labels) and when it was taken."""

    taken: float
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def matching(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(labels), v) for (n, labels), v in self.samples.items() if n == name]

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.samples)

    def minus(self, earlier: Scrape) -> Scrape:
        """Counters and histogram buckets as increases since `earlier` (gauges as they are)."""
        delta = Scrape(self.taken)
        for key, value in self.samples.items():
            name = key[0]
            cumulative = name.endswith(("_total", "_bucket", "_count", "_sum"))
            delta.samples[key] = value - earlier.samples.get(key, 0.0) if cumulative else value
        return delta


def parse(text: str, taken: float) -> Scrape:
    from prometheus_client.parser import text_string_to_metric_families

    scrape = Scrape(taken)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            scrape.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return scrape


def quantile(
    q: float, buckets: list[tuple[float, float]], *, interpolate: bool = True
) -> float | None:
    """The q-quantile from cumulative (upper bound, count) buckets; None without data.
    Without interpolation, the upper bound of the bucket it falls in (for counts, such as
    batch sizes, where "at most 8" says more than 4.5)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower  # above the highest finite bound: that bound is all we know
            if count == below or not interpolate:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _buckets(scrape: Scrape, name: str, **labels: str) -> list[tuple[float, float]]:
    found = []
    for sample_labels, value in scrape.matching(f"{name}_bucket"):
        bound = sample_labels.pop("le")
        if sample_labels == labels:
            found.append((float(bound), value))
    return found


def _percentiles(
    scrape: Scrape, name: str, scale: float = 1000.0, *, interpolate: bool = True, **labels: str
) -> dict[str, float | None]:
    buckets = _buckets(scrape, name, **labels)
    result: dict[str, float | None] = {}
    for q in QUANTILES:
        value = quantile(q, buckets, interpolate=interpolate)
        result[f"p{round(q * 100)}"] = None if value is None else round(value * scale, 3)
    return result


def report(scrape: Scrape, *, seconds: float, service: str, window: str) -> dict[str, Any]:
    """The numbers a person asks about first, from one scrape (or the difference of two)."""
    by_status: dict[str, int] = {}
    for labels, value in scrape.matching("mlcli_http_requests_total"):
        if labels.get("route") == SCORE and value:
            by_status[labels["status"]] = by_status.get(labels["status"], 0) + int(value)
    requests = sum(by_status.values())
    errors = sum(count for status, count in by_status.items() if int(status) >= 400)
    batches = scrape.value("mlcli_batch_size_count")
    batched = scrape.value("mlcli_batch_size_sum")
    collection = None
    if scrape.has("mlcli_collected_rows_total"):
        collection = {
            "rowsWritten": int(scrape.value("mlcli_collected_rows_total")),
            "rowsDropped": int(scrape.value("mlcli_collection_dropped_rows_total")),
            "filesWritten": int(scrape.value("mlcli_collection_files_total")),
            "writeErrors": int(scrape.value("mlcli_collection_write_errors_total")),
            "rowsPending": int(scrape.value("mlcli_collection_pending_rows")),
        }
    return {
        "name": service,
        "window": window,
        "seconds": round(seconds, 1),
        "requests": requests,
        "errors": errors,
        "requestsByStatus": dict(sorted(by_status.items())),
        "requestsPerSecond": round(requests / seconds, 2) if seconds > 0 else None,
        "latencyMs": _percentiles(scrape, "mlcli_http_request_duration_seconds", route=SCORE),
        "runMs": _percentiles(scrape, "mlcli_run_duration_seconds"),
        "queueWaitMs": _percentiles(scrape, "mlcli_queue_wait_seconds"),
        "batches": {
            "count": int(batches),
            "meanSize": round(batched / batches, 2) if batches else None,
            **_percentiles(scrape, "mlcli_batch_size", scale=1.0, interpolate=False),
        },
        # not counting the /metrics request that read it
        "inFlight": max(int(scrape.value("mlcli_http_requests_in_flight")) - 1, 0),
        "scoringTimeouts": int(scrape.value("mlcli_scoring_timeouts_total")),
        "workerRestarts": int(scrape.value("mlcli_worker_restarts_total")),
        "collection": collection,
    }


def as_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as (metric, value) rows, for a table a person reads top to bottom."""
    rows = []
    for key, value in document.items():
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                rows.append({"metric": f"{key}.{sub_key}", "value": sub_value})
        else:
            rows.append({"metric": key, "value": value})
    return rows


def service_metrics(
    name: str,
    *,
    interval_s: float | None = None,
    workspace: str | Workspace | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Read the service's /metrics (twice, `interval_s` apart, when given) into a report."""
    from mlcli.services import Services

    services = Services.open(workspace)
    try:
        record = services.get(name)
    finally:
        services.close()
    endpoint = record.endpoint
    if endpoint is None:
        raise ConflictError(
            f"service {name!r} is {record.state} and has no server to read metrics from.",
            fix=f"See why with `ml service get-logs -n {name}`.",
        )
    url = f"{endpoint.base_url}/metrics"
    first = parse(_get(endpoint.host, endpoint.port, name, url), time.time())
    if not interval_s:
        started = first.value("process_start_time_seconds")
        seconds = first.taken - started if started else 0.0
        return report(first, seconds=seconds, service=name, window="since the server started")
    sleep(interval_s)
    second = parse(_get(endpoint.host, endpoint.port, name, url), time.time())
    window = f"the last {interval_s:g} s"
    return report(second.minus(first), seconds=second.taken - first.taken, service=name,
                  window=window)  # fmt: skip


def _get(host: str, port: int, name: str, url: str) -> str:
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise DeployError(
            f"service {name!r} did not answer at {url} ({exc}).",
            fix=f"Check its state with `ml service show -n {name}`.",
        ) from exc
    finally:
        conn.close()
    if response.status != 200:
        raise MlcliError(f"{url} answered {response.status}; expected the Prometheus metrics.")
    return body.decode("utf-8", "replace")
