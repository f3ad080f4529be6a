"""inference-schema with standard Python types."""

from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("data", StandardPythonParameterType({"name": "alice", "age": 30}))
@output_schema(StandardPythonParameterType({"greeting": "hello alice", "next_age": 31}))
def run(data):
    return {"greeting": "hello " + data["name"], "next_age": data["age"] + 1}
