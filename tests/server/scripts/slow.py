"""run() sleeps as long as asked: for timeouts, queues and graceful shutdown."""

import json
import time


def init():
    pass


def run(data):
    seconds = json.loads(data).get("sleep", 0) if data else 0
    time.sleep(seconds)
    return {"slept": seconds}
