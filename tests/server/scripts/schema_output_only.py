"""Only @output_schema: azmlinfsrv still treats run() as schema-decorated (named parameters)."""

from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import output_schema


def init():
    pass


@output_schema(StandardPythonParameterType({"length": 3}))
def run(data):
    return {"length": len(data)}
