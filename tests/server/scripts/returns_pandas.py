"""run() returns pandas objects, or their JSON forms."""

import json

import pandas as pd

FRAME = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
VALUES = {
    "frame": lambda: FRAME,
    "series": lambda: FRAME["a"],
    "to_dict": lambda: FRAME.to_dict(orient="records"),
    "to_json": lambda: FRAME.to_json(orient="records"),
    "values_tolist": lambda: FRAME.values.tolist(),
}


def init():
    pass


def run(data):
    return VALUES[json.loads(data)["kind"]]()
