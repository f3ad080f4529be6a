"""The tutorial's scoring client: POST {"text": ...} to a scoring URI, print status, time, JSON.

    python samples/sentiment/client.py http://127.0.0.1:32267/score "Today is a great day!"
    python samples/sentiment/client.py URI --key PRIMARY_KEY "I hate rainy Mondays."

Standard library only, so any Python 3 runs it.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    elapsed: float  # seconds, request sent to body read
    body: object  # the decoded JSON, or the raw text when it is not JSON


def score(scoring_uri: str, text: str, *, key: str | None = None, timeout: float = 60) -> Reply:
    """POST one text to the service and return what it answered, errors included."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        scoring_uri, data=json.dumps({"text": text}).encode(), headers=headers, method="POST"
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    elapsed = time.perf_counter() - started
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    return Reply(status, elapsed, body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scoring_uri", help="the service's scoringUri (ml service show -n NAME)")
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="sentences to score")
    parser.add_argument("--key", help="primary or secondary key when the service has auth on")
    args = parser.parse_args()
    for text in args.texts:
        reply = score(args.scoring_uri, text, key=args.key)
        print(f"POST {text!r}")
        print(f"  status  {reply.status}")
        print(f"  elapsed {reply.elapsed * 1000:.0f} ms")
        print(f"  json    {json.dumps(reply.body)}")


if __name__ == "__main__":
    main()
