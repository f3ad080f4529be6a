"""run_batch(items) for dynamic batching: each answer echoes its request's id and tells how
it was scored (by run_batch or by run, in a batch of how many, by which worker).

A body is {"id": ..., "sleep": s, "fail": "return" | "raise" | "short" | "dict" | "exit"}:
"return" gives back a ValueError for that item, "raise" makes run_batch() raise as a whole
(and run() raise for that item alone), "short" makes run_batch() return one result too few,
"dict" makes it return a dict instead of a list, "exit" ends the worker process.
"""

import json
import os
import time


def init():
    pass


def run(data):
    body = json.loads(data)
    if body.get("fail") in ("raise", "return"):
        raise ValueError(f"item {body['id']} cannot be scored")
    return {"id": body["id"], "via": "run", "batch": 1, "pid": os.getpid()}


def run_batch(items):
    bodies = [json.loads(item) for item in items]
    time.sleep(max(body.get("sleep", 0) for body in bodies))
    fails = {body.get("fail") for body in bodies}
    if "exit" in fails:
        os._exit(1)
    if "raise" in fails:
        raise RuntimeError("one item breaks the vectorised call")
    results = [
        ValueError(f"item {body['id']} cannot be scored")
        if body.get("fail") == "return"
        else {"id": body["id"], "via": "run_batch", "batch": len(items), "pid": os.getpid()}
        for body in bodies
    ]
    if "short" in fails:
        return results[:-1]
    if "dict" in fails:
        return {"results": results}
    return results
