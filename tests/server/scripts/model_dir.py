"""init() reads the model file from AZUREML_MODEL_DIR, as v1 scripts do."""

import os
from pathlib import Path

MODEL = {}


def init():
    MODEL["weights"] = (Path(os.environ["AZUREML_MODEL_DIR"]) / "model.txt").read_text().strip()


def run(data):
    return {"weights": MODEL["weights"], "input": data}
