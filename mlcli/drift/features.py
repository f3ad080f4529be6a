"""What kind of feature each column is, and the numbers a text column is compared by.

Numbers are numeric; booleans and strings with few distinct values (at most 100, and at most
half the baseline's rows) are categorical; other strings are text. Text is compared through
derived numeric features, one value per row:

  <column>.length    characters
  <column>.oovRate   share of the row's words never seen in the baseline (out of vocabulary)

A baseline row's out-of-vocabulary rate is measured against the *other half* of the baseline
(even rows against odd rows' words and back), so that fresh text from the same source scores
like the baseline does, not like a set of rows that all know every word by construction.

Values are numpy float64 arrays aligned with the table's rows (NaN where a value is null), so
the target's time buckets can slice them by row position.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_CATEGORIES = 100
WORD_SEPARATORS = r"[^\w']+"


class Kind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    TEXT = "text"


def storage_kind(arrow_type: pa.DataType) -> str | None:
    """'number', 'boolean' or 'string' for columns drift can compare; None for the rest."""
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_decimal(arrow_type):
        return "number"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_dictionary(arrow_type):
        return storage_kind(arrow_type.value_type)
    return None


def classify(storage: str, baseline: pa.ChunkedArray) -> Kind:
    """The feature's kind, judged on the baseline's values."""
    if storage == "number":
        return Kind.NUMERIC
    if storage == "boolean":
        return Kind.CATEGORICAL
    present = len(baseline) - baseline.null_count
    distinct = pc.count_distinct(baseline, mode="only_valid").as_py()
    if distinct <= MAX_CATEGORIES and distinct <= present / 2:
        return Kind.CATEGORICAL
    return Kind.TEXT


def numeric_values(column: pa.ChunkedArray) -> np.ndarray:
    """float64 values, NaN where null."""
    as_float = pc.cast(column, pa.float64())
    return as_float.to_numpy() if as_float.num_chunks else np.empty(0)


def categorical_values(column: pa.ChunkedArray) -> pa.Array:
    """The values as strings ("true"/"false" for booleans), nulls kept, in one array."""
    if pa.types.is_dictionary(column.type):
        column = pc.cast(column, column.type.value_type)
    return pc.cast(column, pa.string()).combine_chunks()


def text_features(
    name: str, baseline: pa.ChunkedArray, target: pa.ChunkedArray
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(derived feature name, baseline values, target values) for a text column."""
    base = categorical_values(baseline)
    aim = categorical_values(target)
    evens, odds = base.take(np.arange(0, len(base), 2)), base.take(np.arange(1, len(base), 2))
    base_oov = np.empty(len(base))
    base_oov[0::2] = oov_rates(evens, vocabulary(odds))
    base_oov[1::2] = oov_rates(odds, vocabulary(evens))
    return [
        (f"{name}.length", _lengths(base), _lengths(aim)),
        (f"{name}.oovRate", base_oov, oov_rates(aim, vocabulary(base))),
    ]


def vocabulary(texts: pa.Array) -> pa.Array:
    """The distinct lower-case words of `texts`."""
    return pc.unique(_words(texts)[1])


def oov_rates(texts: pa.Array, known: pa.Array) -> np.ndarray:
    """Per row, the share of its words not in `known` (0 for a row without words, NaN if null)."""
    rows, words = _words(texts)
    unknown = np.logical_not(pc.is_in(words, value_set=known).to_numpy(zero_copy_only=False))
    totals = np.bincount(rows, minlength=len(texts))
    misses = np.bincount(rows, weights=unknown, minlength=len(texts))
    rates = np.divide(misses, totals, out=np.zeros(len(texts)), where=totals > 0)
    rates[pc.is_null(texts).to_numpy(zero_copy_only=False)] = np.nan
    return rates


def _words(texts: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Every word of every row, and the row each came from."""
    lists = pc.split_pattern_regex(pc.utf8_lower(texts), pattern=WORD_SEPARATORS)
    words = pc.list_flatten(lists)
    rows = pc.list_parent_indices(lists)
    real = pc.not_equal(words, "")
    return rows.filter(real).to_numpy(zero_copy_only=False), words.filter(real)


def _lengths(texts: pa.Array) -> np.ndarray:
    return numeric_values(pa.chunked_array([pc.utf8_length(texts)]))
