"""run() returns a value chosen by the request, to compare how each type is serialised."""

import json
from collections import OrderedDict

VALUES = {
    "dict": lambda: {"b": 1, "a": [1, 2.5, None, True], "nested": {"ü": "ñ€"}},
    "ordered": lambda: OrderedDict([("z", 1), ("a", 2)]),
    "list": lambda: [1, "two", 3.0, None, False],
    "tuple": lambda: (1, 2),
    "str": lambda: "plain text, ünïcödé",
    "json_str": lambda: json.dumps({"already": "json"}),
    "empty_str": lambda: "",
    "int": lambda: 42,
    "big_int": lambda: 10**30,
    "float": lambda: 0.1 + 0.2,
    "nan": lambda: float("nan"),
    "inf": lambda: float("-inf"),
    "bool": lambda: True,
    "none": lambda: None,
    "empty_dict": lambda: {},
    "bytes": lambda: b"raw bytes",
    "set": lambda: {1},
    "object": lambda: object(),
    "int_keys": lambda: {1: "one", 2: "two"},
}


def init():
    pass


def run(data):
    return VALUES[json.loads(data)["kind"]]()
