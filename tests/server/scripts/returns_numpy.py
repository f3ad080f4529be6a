"""run() returns numpy arrays and scalars (what a model's predict() gives back)."""

import json

import numpy as np

VALUES = {
    "array": lambda: np.array([1.5, 2.5]),
    "array_tolist": lambda: np.array([[1, 2], [3, 4]]).tolist(),
    "float64": lambda: np.float64(0.25),
    "float32": lambda: np.float32(0.25),
    "int64": lambda: np.int64(7),
    "bool_": lambda: np.bool_(True),
    "dict_of_float64": lambda: {"score": np.float64(0.75)},
    "list_of_int64": lambda: [np.int64(1)],
}


def init():
    pass


def run(data):
    return VALUES[json.loads(data)["kind"]]()
