"""Entry script of the sentiment sample, in the shape of Azure ML v1's "deploy an existing model".

init() loads the four files registered as one model folder named `models`; run() scores one
request body such as {"text": "Today is a great day!"}. run_batch() is the same for a list of
request bodies with one Keras predict call (mlcli's opt-in dynamic batching; Azure ignores it).
Inputs and predictions go to ModelDataCollector, the tutorial's "collect data from models in
production" step: written only when the deployment config says collectModelData.
"""

# The tutorial's os.path / open() style is kept on purpose: this is what a v1 script looks like.
# ruff: noqa: PTH118, PTH123

import json
import os
import pickle
import time

from gensim.models import Word2Vec
from keras.models import load_model
from keras.preprocessing.sequence import pad_sequences

try:  # mlcli's server provides it; on Azure, the azureml-monitoring package
    from azureml.monitoring import ModelDataCollector
except ImportError:
    ModelDataCollector = None

SEQUENCE_LENGTH = 300
POSITIVE = "POSITIVE"
NEGATIVE = "NEGATIVE"
NEUTRAL = "NEUTRAL"
SENTIMENT_THRESHOLDS = (0.4, 0.7)


def init():
    global model, w2v_model, tokenizer, encoder, inputs_dc, predictions_dc

    # AZUREML_MODEL_DIR is azureml-models/<name>/<version>; the registered folder keeps its name.
    model_path = os.path.join(os.getenv("AZUREML_MODEL_DIR"), "./models")
    model = load_model(os.path.join(model_path, "model.h5"))
    w2v_model = Word2Vec.load(os.path.join(model_path, "model.w2v"))
    with open(os.path.join(model_path, "tokenizer.pkl"), "rb") as handle:
        tokenizer = pickle.load(handle)
    with open(os.path.join(model_path, "encoder.pkl"), "rb") as handle:
        encoder = pickle.load(handle)
    # Keras traces its predict function on first use, and again for a second batch shape (about
    # 1 s each): pay that here rather than on the first requests.
    predict(["warm up"])
    predict(["warm up", "warm up"])
    inputs_dc = predictions_dc = None
    if ModelDataCollector is not None:
        inputs_dc = ModelDataCollector("sentiment", designation="inputs", feature_names=["text"])
        predictions_dc = ModelDataCollector(
            "sentiment", designation="predictions", feature_names=["label", "score"]
        )


def collect(text, result):
    if inputs_dc is not None:
        correlations = inputs_dc.collect([text])
        row = [result["label"], result["score"]]
        predictions_dc.collect(predictions_dc.add_correlations(row, correlations))


def decode_sentiment(score, include_neutral=True):
    if not include_neutral:
        return NEGATIVE if score < 0.5 else POSITIVE
    if score <= SENTIMENT_THRESHOLDS[0]:
        return NEGATIVE
    if score >= SENTIMENT_THRESHOLDS[1]:
        return POSITIVE
    return NEUTRAL


def predict(texts, include_neutral=True):
    start_at = time.time()
    x = pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=SEQUENCE_LENGTH)
    scores = model.predict(x, batch_size=max(len(texts), 1), verbose=0)[:, 0]
    elapsed = time.time() - start_at
    return [
        {
            "label": decode_sentiment(score, include_neutral=include_neutral),
            "score": float(score),
            "elapsed_time": elapsed,
        }
        for score in scores
    ]


def parse_text(data):
    body = json.loads(data) if isinstance(data, (str, bytes)) else data
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise ValueError('expected a JSON object like {"text": "Today is a great day!"}')
    return body["text"]


def run(data):
    try:
        text = parse_text(data)
        result = predict([text])[0]
        collect(text, result)
        return result
    except Exception as e:
        return str(e)


def run_batch(items):
    texts, errors = [], {}
    for position, data in enumerate(items):
        try:
            texts.append(parse_text(data))
        except Exception as e:
            errors[position] = str(e)
    results = predict(texts) if texts else []
    for text, result in zip(texts, results, strict=True):
        collect(text, result)
    results = iter(results)
    return [errors[i] if i in errors else next(results) for i in range(len(items))]
