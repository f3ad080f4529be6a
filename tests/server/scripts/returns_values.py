"""run() returns a value chosen by the request, to compare how each type is serialised."""

import datetime
import decimal
import enum
import json
import uuid
from collections import OrderedDict, namedtuple


class Colour(str, enum.Enum):  # noqa: UP042 -- the pre-3.11 idiom user scripts hold
    RED = "red"


class Label(str):
    pass


Point = namedtuple("Point", "x y")

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
    "float_keys": lambda: {1.5: "a", None: "b", True: "c"},
    "tuple_keys": lambda: {(1, 2): "pair"},
    "nested_nan": lambda: {"scores": [1.0, float("nan"), float("inf")]},
    "datetime": lambda: datetime.datetime(2024, 5, 6, 7, 8, 9),
    "decimal": lambda: decimal.Decimal("1.10"),
    "uuid": lambda: uuid.UUID(int=7),
    "str_enum": lambda: Colour.RED,
    "str_subclass": lambda: Label("positive"),
    "namedtuple": lambda: Point(1, 2),
    "bytearray": lambda: bytearray(b"ab"),
    "generator": lambda: (i for i in range(3)),
    "range": lambda: range(3),
    "control_chars": lambda: "tab\tnewline\nnul\x00 \u2028",
    "emoji": lambda: {"mood": "\U0001f600"},
    "negative_zero": lambda: -0.0,
    "huge_float": lambda: 1e308 * 10,
    "deep": lambda: {"a": [{"b": [{"c": [1, [2, [3]]]}]}]},
}


def init():
    pass


def run(data):
    return VALUES[json.loads(data)["kind"]]()
