"""Train the sentiment sample: the four model files of Azure's "deploy an existing model" tutorial.

Writes models/model.h5 (Keras: Embedding from word2vec -> LSTM -> Dense sigmoid), models/model.w2v
(gensim Word2Vec), models/tokenizer.pkl (keras Tokenizer) and models/encoder.pkl (scikit-learn
LabelEncoder). The corpus is generated here from templates (no download), with fixed seeds, so two
runs give the same files. Run it with the model environment's python (the one that serves), so
the pickles and the runtime agree:

    python samples/sentiment/train.py [--out samples/sentiment/models]

The score is a sigmoid trained towards NEGATIVE 0, NEUTRAL 0.5, POSITIVE 1, so the tutorial's
thresholds (NEGATIVE <= 0.4 < NEUTRAL < 0.7 <= POSITIVE) read it.
"""

from __future__ import annotations

import argparse
import os
import sys

# gensim seeds each word vector from hash(word): string hashing must not change between runs.
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pickle
import random
import shutil
import tempfile
import time
import warnings
from pathlib import Path

SEED = 20240611
SEQUENCE_LENGTH = 300  # what score.py pads to; training pads to the longest sentence instead
W2V_SIZE = 64
PER_CLASS = 1500
HELD_OUT = 0.2
EPOCHS = 8
TARGETS = {"NEGATIVE": 0.0, "NEUTRAL": 0.5, "POSITIVE": 1.0}
THRESHOLDS = (0.4, 0.7)

# --- the corpus --------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    return text.split()


NOUNS = words(
    "day morning evening weekend week holiday trip vacation movie film show concert song album "
    "book novel meal dinner lunch breakfast coffee pizza food restaurant hotel room flight train "
    "service staff team game match party wedding class lecture course phone laptop camera car "
    "app website product experience performance story view garden city beach park museum"
)
PLACES = words(
    "office beach park station airport library museum market restaurant hotel school cafe "
    "stadium theatre gym bakery mall hospital bank garden"
)
NAMES = words("Anna Ben Carla David Emma Frank Grace Henry Julia Kevin Laura Mike Nora Omar Paul")
WHEN = ("today", "tonight", "this morning", "this weekend", "last night", "on Monday", "on Friday")
TODAY = ("Today", "Tonight", "This morning", "This weekend", "Tomorrow", "It", "This", "That")
WEEKDAYS = words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
INTENSE = words("really very so truly absolutely incredibly quite extremely")

POS_ADJ = words(
    "great wonderful amazing excellent fantastic lovely brilliant delightful superb awesome "
    "perfect beautiful good nice pleasant enjoyable outstanding marvelous terrific fabulous "
    "delicious friendly fun helpful cheerful charming impressive incredible exciting comfortable"
)
NEG_ADJ = words(
    "terrible awful horrible bad dreadful miserable disappointing boring poor ugly annoying "
    "frustrating painful sad lousy pathetic disgusting useless mediocre unpleasant rude dirty "
    "noisy broken stressful horrendous depressing tedious slow overpriced"
)
NEUTRAL_ADJ = words("ordinary typical regular usual normal average standard scheduled quiet")
POS_VERB = words("love enjoy adore like appreciate recommend")
NEG_VERB = words("hate dislike regret despise detest")
NEUTRAL_VERB = words("saw visited bought ordered watched read booked cleaned described mentioned")
POS_FEEL = words("happy glad excited thrilled pleased delighted grateful proud")
NEG_FEEL = words("sad upset angry disappointed annoyed frustrated unhappy furious")
NEUTRAL_FEEL = words("ready here home awake busy seated outside")

# {a_pos} is "a great" / "an amazing": the article agrees with the adjective it picks.
POSITIVE = (
    "{Today} is {a_pos} {noun}!",
    "Today is {a_pos} day!",
    "What {a_pos} {noun}!",
    "I {posv} this {noun}.",
    "I really {posv} the {noun}.",
    "The {noun} was {int} {pos}.",
    "The {noun} is {pos}.",
    "We had {a_pos} time at the {place}.",
    "I am so {posf} about the {noun}.",
    "I am {posf}.",
    "{Name} did {a_pos} job with the {noun}.",
    "Best {noun} ever, {int} {pos}!",
    "I would {int} recommend this {noun}, it is {pos}.",
    "Thank you for the {pos} {noun}, it made my day.",
    "The {noun} was {pos} and the staff were {pos2}.",
    "{Name} is {posf} because the {noun} went {int} well.",
    "Such {a_pos} {noun}, I {posv} it.",
    "Everything about the {noun} was {pos}.",
    "I feel {posf} {when}.",
    "It was {a_pos} {noun}.",
)
NEGATIVE = (
    "{Today} is {a_neg} {noun}.",
    "Today is {a_neg} day.",
    "What {a_neg} {noun}.",
    "I {negv} this {noun}.",
    "I really {negv} the {noun}.",
    "The {noun} was {int} {neg}.",
    "The {noun} is {neg}.",
    "We had {a_neg} time at the {place}.",
    "I am so {negf} about the {noun}.",
    "I am {negf}.",
    "{Name} did {a_neg} job with the {noun}.",
    "Worst {noun} ever, {int} {neg}!",
    "I would never recommend this {noun}, it is {neg}.",
    "The {noun} was not {pos} at all.",
    "I did not {posv} the {noun}.",
    "The {noun} was {neg} and the staff were {neg2}.",
    "{Name} is {negf} because the {noun} went {int} badly.",
    "Such {a_neg} {noun}, I {negv} it.",
    "Nothing about the {noun} was {pos}.",
    "I feel {negf} {when}.",
    "Everything went wrong with the {noun}, it was {neg}.",
    "It was {a_neg} {noun}.",
)
NEUTRAL = (
    "{Today} is {weekday}.",
    "The {noun} starts at {num} o'clock.",
    "{Name} is going to the {place} {when}.",
    "We will meet at the {place} on {weekday}.",
    "The {place} is {num} miles from here.",
    "{Name} bought a ticket for the {noun} on {weekday}.",
    "The {noun} was {neu}.",
    "The {noun} is {neu}.",
    "It was {a_neu} {noun}.",
    "Today is {a_neu} day.",
    "{Today} is {a_neu} {noun}.",
    "Is the {place} open on {weekday}?",
    "I read about the {noun} in the newspaper.",
    "I {neuv} the {noun} {when}.",
    "{Name} {neuv} the {noun} at the {place}.",
    "I am {neuf}.",
    "{Name} works at the {place}.",
    "The {noun} lasted {num} hours.",
    "We talked about the {noun} at the {place}.",
    "The {place} is next to the {place2}.",
    "{Name} will call about the {noun} {when}.",
    "There are {num} people at the {place}.",
    "This is the {noun}.",
)
TEMPLATES = {"POSITIVE": POSITIVE, "NEGATIVE": NEGATIVE, "NEUTRAL": NEUTRAL}


def with_article(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def fill(template: str, rng: random.Random) -> str:
    place, place2 = rng.sample(PLACES, 2)
    pos, pos2 = rng.sample(POS_ADJ, 2)
    neg, neg2 = rng.sample(NEG_ADJ, 2)
    neu = rng.choice(NEUTRAL_ADJ)
    return template.format(
        noun=rng.choice(NOUNS),
        place=place,
        place2=place2,
        Name=rng.choice(NAMES),
        when=rng.choice(WHEN),
        Today=rng.choice(TODAY),
        weekday=rng.choice(WEEKDAYS),
        int=rng.choice(INTENSE),
        num=rng.randint(2, 12),
        pos=pos,
        pos2=pos2,
        a_pos=with_article(pos),
        neg=neg,
        neg2=neg2,
        a_neg=with_article(neg),
        neu=neu,
        a_neu=with_article(neu),
        posv=rng.choice(POS_VERB),
        negv=rng.choice(NEG_VERB),
        neuv=rng.choice(NEUTRAL_VERB),
        posf=rng.choice(POS_FEEL),
        negf=rng.choice(NEG_FEEL),
        neuf=rng.choice(NEUTRAL_FEEL),
    )


def make_corpus(rng: random.Random) -> list[tuple[str, str]]:
    """PER_CLASS distinct sentences per label, shuffled."""
    corpus: list[tuple[str, str]] = []
    for label, templates in TEMPLATES.items():
        seen: dict[str, None] = {}  # a dict keeps insertion order: the corpus is reproducible
        while len(seen) < PER_CLASS:
            seen.setdefault(fill(rng.choice(templates), rng))
        corpus.extend((text, label) for text in seen)
    rng.shuffle(corpus)
    return corpus


# --- training ----------------------------------------------------------------------------------


def train(out: Path) -> dict[str, object]:
    import numpy as np
    import tensorflow as tf
    from gensim.models import Word2Vec
    from keras.layers import LSTM, Dense, Embedding
    from keras.models import Sequential
    from keras.preprocessing.sequence import pad_sequences
    from keras.preprocessing.text import Tokenizer, text_to_word_sequence
    from sklearn.preprocessing import LabelEncoder

    started = time.perf_counter()
    rng = random.Random(SEED)
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()

    corpus = make_corpus(rng)
    split = int(len(corpus) * (1 - HELD_OUT))
    train_set, test_set = corpus[:split], corpus[split:]
    texts = [text for text, _ in train_set]

    w2v = Word2Vec(
        [text_to_word_sequence(text) for text in texts],
        vector_size=W2V_SIZE,
        window=5,
        min_count=1,
        workers=1,  # one worker: the vectors are the same on every run
        epochs=16,
        seed=SEED,
    )

    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(texts)
    vocab_size = len(tokenizer.word_index) + 1
    embedding = np.zeros((vocab_size, W2V_SIZE), dtype="float32")
    for word, index in tokenizer.word_index.items():
        if word in w2v.wv:
            embedding[index] = w2v.wv[word]

    encoder = LabelEncoder().fit(sorted(TARGETS))  # NEGATIVE 0, NEUTRAL 1, POSITIVE 2

    def arrays(rows: list[tuple[str, str]], maxlen: int) -> tuple[np.ndarray, np.ndarray]:
        x = pad_sequences(tokenizer.texts_to_sequences([t for t, _ in rows]), maxlen=maxlen)
        y = np.array([TARGETS[label] for _, label in rows], dtype="float32")
        return x, y

    # Index 0 is padding and is masked: a sentence padded to 300 (as score.py does) scores exactly
    # as it does padded to the longest training sentence, which keeps training short.
    maxlen = max(len(s) for s in tokenizer.texts_to_sequences(texts))
    x_train, y_train = arrays(train_set, maxlen)
    x_test, y_test = arrays(test_set, maxlen)

    model = Sequential(
        [
            Embedding(vocab_size, W2V_SIZE, weights=[embedding], mask_zero=True, trainable=True),
            LSTM(32, dropout=0.2),
            Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["mae"])
    model.fit(x_train, y_train, batch_size=32, epochs=EPOCHS, validation_split=0.1, verbose=2)

    scores = model.predict(x_test, verbose=0)[:, 0]
    predicted = np.select([scores <= THRESHOLDS[0], scores >= THRESHOLDS[1]], [0.0, 1.0], 0.5)
    accuracy = float(np.mean(predicted == y_test))

    # Write next to the destination, then swap it in: never a half-written models/ folder.
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        # model.h5 is the tutorial's file; Keras 2.15 calls HDF5 "legacy" but reads it fine.
        warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
        model.save(staging / "model.h5", save_format="h5")
        w2v.save(str(staging / "model.w2v"))
        with (staging / "tokenizer.pkl").open("wb") as handle:
            pickle.dump(tokenizer, handle, protocol=pickle.HIGHEST_PROTOCOL)
        with (staging / "encoder.pkl").open("wb") as handle:
            pickle.dump(encoder, handle, protocol=pickle.HIGHEST_PROTOCOL)
        staging.chmod(0o755)
        if out.exists():
            old = out.with_name(f".{out.name}-old-{os.getpid()}")
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

    return {
        "sentences": len(corpus),
        "train": len(train_set),
        "heldOut": len(test_set),
        "vocabulary": vocab_size - 1,
        "heldOutAccuracy": round(accuracy, 4),
        "seconds": round(time.perf_counter() - started, 1),
        "out": str(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "models",
        help="folder to write model.h5, model.w2v, tokenizer.pkl, encoder.pkl (replaced whole)",
    )
    args = parser.parse_args()
    summary = train(args.out.resolve())
    print(
        f"trained on {summary['train']} sentences ({summary['vocabulary']} words) in "
        f"{summary['seconds']} s; held-out accuracy {summary['heldOutAccuracy']:.1%} "
        f"on {summary['heldOut']}; wrote {summary['out']}"
    )


if __name__ == "__main__":
    main()
