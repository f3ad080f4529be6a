"""The span exporter's CPU cost per request span, in-process (issue 16): seconds, not wrk.

Feeds N request tuples of the monitoring bench's shape (marshal frames of 400, as the
front sends every 50 ms at 8,000 req/s) to span_export.SpanMaker, whose OTLP/HTTP exporter
posts to a receiver in a child process (its CPU not counted), and prints the CPU time of
this process (reading, encoding, batching, the exporter's POSTs) per span, then the
encoding alone.

    .venv/bin/python bench/span_cost.py [--spans 40000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import marshal
import os
import pstats
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RECEIVER = """
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Receiver(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def records(count: int) -> list[tuple]:
    """The front's request tuples (telemetry.RequestTelemetry.request) for POST /score."""
    now = time.time_ns()
    return [
        ("/score", "/score", "POST", b"", 200, b'{"label": "POSITIVE"}', now + i * 1000,
         now + i * 1000 + 500_000, f"4b7c2e1a-0000-4000-a000-{i:012x}", "", None)
        for i in range(count)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=40_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        port = receiver.stdout.readline().strip()
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
        os.environ.setdefault("SERVICE_NAME", "bench")
        from mlcli.server import otlp_encode, span_export

        given = records(args.spans)
        frames = [marshal.dumps(given[i : i + 400]) for i in range(0, len(given), 400)]
        maker = span_export.SpanMaker(os.environ)
        profiler = cProfile.Profile()
        if args.profile:
            profiler.enable()
        start = time.process_time()
        for frame in frames:
            maker.make_all(marshal.loads(frame))
        maker.shutdown()  # exports what is left
        spent = time.process_time() - start
        profiler.disable()

        encoder = maker.encoder
        start = time.process_time()
        for record, ids in zip(given, otlp_encode.random_ids(len(given)), strict=True):
            encoder.span(record, ids, True)
        encoding = time.process_time() - start
    finally:
        receiver.kill()
    print(f"{args.spans} spans, CPU us a span:")
    print(f"  all (read, encode, batch, POST)  {spent / args.spans * 1e6:6.2f}")
    print(f"  encoding alone                   {encoding / args.spans * 1e6:6.2f}")
    if args.profile:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
