"""wrk, the HTTP load generator, as the benchmarks run it: POST bodies in turn at a given
concurrency for a given time, read back as requests, failures and latency percentiles (a
Lua done() hook prints them as one JSON line). Shared by sentiment.py, batching.py and
monitoring.py. Needs `wrk` (apt-get install wrk)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = """
local bodies = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, bodies[n %% #bodies + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "errors": %%d, '
    .. '"p50_us": %%d, "p99_us": %%d, "mean_us": %%.0f}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class Result:
    requests: int
    seconds: float
    failed: int  # non-2xx answers and connection errors or timeouts
    p50_ms: float
    p99_ms: float

    def figures(self) -> dict:
        """The fields, for a benchmark's own result type (Level(**result.figures()))."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def run(uri: str, concurrency: int, seconds: float, bodies: Sequence[str]) -> Result:
    """wrk at `concurrency` connections (two threads at most) for `seconds` against `uri`,
    sending the JSON `bodies` in turn."""
    table = ", ".join(json.dumps(body) for body in bodies)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(SCRIPT % table)
    try:
        command = [
            "wrk", "-t", str(min(concurrency, 2)), "-c", str(concurrency), "-s", script.name,
            "--timeout", "30s", "-d", f"{seconds:g}s", uri,
        ]  # fmt: skip
        done = subprocess.run(command, check=True, capture_output=True, text=True)
    finally:
        Path(script.name).unlink()
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return Result(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        failed=result["non2xx"] + result["errors"],
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
    )
