"""A generated driver module that forwards to the real score script (as some SDKs write)."""

import types

driver_module = types.ModuleType("real_score")
driver_module.__file__ = "real_score.py"
exec(
    "def run(data):\n    return {'from': 'real score script', 'data': data}\n",
    driver_module.__dict__,
)


def init():
    print("driver init")


def run(data):
    return {"from": "driver"}
