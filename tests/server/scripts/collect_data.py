"""Azure's "collect data from models in production" entry script, with a stand-in model.

inputs and predictions as the article collects them (numpy arrays), the predictions joined to
their inputs with add_correlations, a list and a DataFrame as other types Azure accepts.
"""

import json
import time

import numpy as np
import pandas as pd
from azureml.monitoring import ModelDataCollector


def init():
    global inputs_dc, prediction_dc, labels_dc, signals_dc
    print("model initialized" + time.strftime("%H:%M:%S"))
    inputs_dc = ModelDataCollector(
        "best_model", designation="inputs", feature_names=["feat1", "feat2", "feat3"]
    )
    prediction_dc = ModelDataCollector(
        "best_model", designation="predictions", feature_names=["prediction1"]
    )
    labels_dc = ModelDataCollector("best_model", designation="labels")
    signals_dc = ModelDataCollector("best_model", designation="signals", collection_name="frames")


def run(raw_data):
    data = json.loads(raw_data)
    rows = np.array(data["data"])
    result = rows.sum(axis=1)
    correlations = inputs_dc.collect(rows, user_correlation_id=data.get("id", ""))
    prediction_dc.collect(prediction_dc.add_correlations(result.reshape(-1, 1), correlations))
    labels_dc.collect(["label", len(rows)])
    signals_dc.collect(pd.DataFrame({"rows": [len(rows)], "first": [float(rows[0][0])]}))
    return {"result": result.tolist(), "correlations": correlations}
