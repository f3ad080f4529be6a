"""No-code scoring of a TensorFlow SavedModel, as Azure ML v1's no-code deployment served it:
POST {"data": [[feature, ...], ...]} -> the serving signature's first output, as lists."""

import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

serve = None


def init():
    global serve
    root = Path(os.environ["AZUREML_MODEL_DIR"])
    found = sorted(p.parent for p in root.rglob("saved_model.pb"))
    if not found:
        raise FileNotFoundError(f"no SavedModel (saved_model.pb) under {root}")
    serve = tf.saved_model.load(str(found[0])).signatures["serving_default"]


def run(raw_data):
    name, spec = next(iter(serve.structured_input_signature[1].items()))
    data = tf.constant(np.array(json.loads(raw_data)["data"]), dtype=spec.dtype)
    outputs = serve(**{name: data})
    return next(iter(outputs.values())).numpy().tolist()
