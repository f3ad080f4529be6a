"""inference-schema with a pandas DataFrame input and a standard output."""

import pandas as pd
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema

SAMPLE = pd.DataFrame({"sepal_length": [5.1], "species": ["setosa"]})


def init():
    pass


@input_schema("data", PandasParameterType(SAMPLE))
@output_schema(StandardPythonParameterType([{"sepal_length": 5.1, "species": "setosa"}]))
def run(data):
    return data.assign(sepal_length=data["sepal_length"] * 2).to_dict(orient="records")
