"""inference-schema with two named parameters (one optional) and request_headers."""

from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("text", StandardPythonParameterType("hello"))
@input_schema("repeat", StandardPythonParameterType(2))
def run(text, repeat=1, request_headers=None):
    return {"out": text * repeat, "client": (request_headers or {}).get("X-Client")}
