"""No-code scoring of a scikit-learn model, as Azure ML v1's no-code deployment served it:
POST {"data": [[feature, ...], ...]} -> [prediction, ...]."""

import json
import os
from pathlib import Path

import joblib
import numpy as np

SUFFIXES = (".pkl", ".pickle", ".joblib", ".sav")
model = None


def _model_file() -> Path:
    root = Path(os.environ["AZUREML_MODEL_DIR"])
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not found:
        raise FileNotFoundError(f"no {', '.join(SUFFIXES)} file under {root}")
    return found[0]


def init():
    global model
    model = joblib.load(_model_file())


def run(raw_data):
    data = np.array(json.loads(raw_data)["data"])
    return model.predict(data).tolist()
