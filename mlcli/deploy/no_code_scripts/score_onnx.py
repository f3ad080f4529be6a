"""No-code scoring of an ONNX model, as Azure ML v1's no-code deployment served it:
POST {"data": [[feature, ...], ...]} -> the first output, as lists."""

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime

session = None


def init():
    global session
    root = Path(os.environ["AZUREML_MODEL_DIR"])
    found = sorted(p for p in root.rglob("*.onnx") if p.is_file())
    if not found:
        raise FileNotFoundError(f"no .onnx file under {root}")
    session = onnxruntime.InferenceSession(str(found[0]), providers=["CPUExecutionProvider"])


def run(raw_data):
    first = session.get_inputs()[0]
    kind = {"tensor(double)": np.float64, "tensor(int64)": np.int64}.get(first.type, np.float32)
    data = np.array(json.loads(raw_data)["data"], dtype=kind)
    return session.run(None, {first.name: data})[0].tolist()
