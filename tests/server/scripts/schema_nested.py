"""inference-schema as AutoML's generated score.py uses it: parameter types nested in a
StandardPythonParameterType, an `Inputs` and a `GlobalParameters` argument."""

import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema

SAMPLE = pd.DataFrame({"age": [30], "income": [1000.5], "city": ["Oslo"]})
INPUTS = StandardPythonParameterType({"data": PandasParameterType(SAMPLE)})
GLOBALS = StandardPythonParameterType({"method": "predict"})
OUTPUT = StandardPythonParameterType({"Results": NumpyParameterType(np.array([1.0]))})


def init():
    pass


@input_schema("Inputs", INPUTS)
@input_schema("GlobalParameters", GLOBALS, convert_to_provided_type=False)
@output_schema(OUTPUT)
def run(Inputs, GlobalParameters={"method": "predict"}):  # noqa: B006 -- AutoML writes it so
    frame = Inputs["data"]
    scores = frame["age"] * 0.5 + frame["income"] / 1000
    if GlobalParameters.get("method") == "predict_proba":
        return {"Results": (scores / scores.max()).round(3).tolist()}
    return {"Results": scores.round(3).tolist(), "type": type(frame).__name__}
