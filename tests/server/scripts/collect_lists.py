"""ModelDataCollector with plain lists: no numpy or pandas (the Python 3.8 test's venv)."""

from azureml.monitoring import ModelDataCollector


def init():
    global inputs_dc
    inputs_dc = ModelDataCollector("m", designation="inputs", feature_names=["x", "y"])


def run(data):
    return inputs_dc.collect([1, "two"])
