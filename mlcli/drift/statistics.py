"""Per-feature drift: a test that says whether a change is real, a distance that says how big.

Numeric features: the two-sample Kolmogorov-Smirnov test (`scipy.stats.ks_2samp`) and the
Wasserstein distance (`scipy.stats.wasserstein_distance`) divided by the baseline's standard
deviation. The feature's drift is that normalised distance, capped at 1: "the values moved by
this many baseline standard deviations", so a mean shift of 0.2 sd reaches the default
threshold, and so does a change of spread of about a quarter.

Categorical features: the chi-squared test of the 2 x k table of counts
(`scipy.stats.chi2_contingency`), the Jensen-Shannon distance in bits
(`scipy.spatial.distance.jensenshannon`, in [0, 1]) and the population stability index (the
symmetric Kullback-Leibler divergence, `scipy.stats.entropy` both ways). The feature's drift is
the Jensen-Shannon distance; a category the baseline never had counts fully.

Distances do not grow with the number of rows, so they are what the threshold compares; the
p-value only says whether the distance can be told from chance (small targets, resamples).

Past 250,000 values, the tests get the side's quantiles at 250,000 evenly spaced ranks
instead of every value (`quantile_sample`): the Wasserstein distance moves by a few
millionths of a standard deviation, the p-value is that of 250,000 rows (still far below any
alpha for a change that reaches the threshold), and a 10 M-row column costs a sort more than a
small one. The means, standard deviations and histograms use every value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats
from scipy.spatial.distance import jensenshannon

HISTOGRAM_BINS = 30
MAX_TESTED_VALUES = 250_000
TOP_CATEGORIES = 20
PSI_FLOOR = 1e-4  # an empty bin's share, so that the PSI of a new category stays finite
OTHER = "(other)"


@dataclass(frozen=True, slots=True)
class Comparison:
    """One feature, baseline vs target: drift in [0, 1], the test's p-value, the metrics."""

    drift: float
    p_value: float
    metrics: dict[str, Any] = field(default_factory=dict)


def present(values: np.ndarray) -> np.ndarray:
    """The values that are not NaN (nulls)."""
    return values[~np.isnan(values)]


def quantile_sample(values: np.ndarray) -> np.ndarray:
    """The values sorted; past MAX_TESTED_VALUES, their quantiles at that many even ranks."""
    ordered = np.sort(values)
    if len(ordered) <= MAX_TESTED_VALUES:
        return ordered
    ranks = np.linspace(0, len(ordered) - 1, MAX_TESTED_VALUES).round().astype(np.int64)
    return ordered[ranks]


def compare_numeric(baseline: np.ndarray, target: np.ndarray) -> Comparison:
    """Both arrays without NaN; the baseline not empty."""
    if len(target) == 0:
        return _nothing_to_compare()
    tested_baseline, tested_target = quantile_sample(baseline), quantile_sample(target)
    ks = stats.ks_2samp(tested_baseline, tested_target)
    distance = stats.wasserstein_distance(tested_baseline, tested_target)
    del tested_baseline, tested_target
    spread = float(np.std(baseline))
    # A constant baseline has no spread to measure by: use its size, else the plain distance.
    scale = spread or abs(float(np.mean(baseline))) or 1.0
    normalised = distance / scale
    return Comparison(
        drift=float(min(1.0, normalised)),
        p_value=float(ks.pvalue),
        metrics={
            "ksStatistic": float(ks.statistic),
            "ksPValue": float(ks.pvalue),
            "wassersteinDistance": float(distance),
            "wassersteinNormalised": float(normalised),
            "baselineMean": float(np.mean(baseline)),
            "targetMean": float(np.mean(target)),
            "baselineStd": spread,
            "targetStd": float(np.std(target)),
        },
    )


def category_counts(values: pa.Array) -> dict[str, int]:
    """How often each non-null value occurs."""
    counted = pc.value_counts(values.drop_null())
    return dict(
        zip(
            counted.field("values").to_pylist(),
            counted.field("counts").to_pylist(),
            strict=True,
        )
    )


def compare_categorical(baseline: dict[str, int], target: dict[str, int]) -> Comparison:
    """Counts per category; the baseline's not empty."""
    if not target:
        return _nothing_to_compare()
    categories = sorted(baseline.keys() | target.keys())
    base = np.array([baseline.get(c, 0) for c in categories], dtype=float)
    aim = np.array([target.get(c, 0) for c in categories], dtype=float)
    if len(categories) > 1:
        chi2 = stats.chi2_contingency(np.vstack([base, aim]))
        statistic, p_value = float(chi2.statistic), float(chi2.pvalue)
    else:
        statistic, p_value = 0.0, 1.0
    p, q = base / base.sum(), aim / aim.sum()
    distance = float(jensenshannon(p, q, base=2))
    p_floor, q_floor = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
    psi = float(stats.entropy(p_floor, q_floor) + stats.entropy(q_floor, p_floor))
    new = {c: float(target[c] / aim.sum()) for c in categories if c not in baseline}
    return Comparison(
        drift=float(min(1.0, distance)),
        p_value=p_value,
        metrics={
            "chiSquared": statistic,
            "chiSquaredPValue": p_value,
            "jensenShannonDistance": distance,
            "populationStabilityIndex": psi,
            "baselineCategories": len(baseline),
            "targetCategories": len(target),
            "newCategories": {c: round(share, 6) for c, share in sorted(new.items())[:20]},
        },
    )


def numeric_histogram(baseline: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """Shares of each side per bin; bins span the middle 99 % of both (outliers in end bins)."""
    low = min(_quantile(baseline, 0.005), _quantile(target, 0.005))
    high = max(_quantile(baseline, 0.995), _quantile(target, 0.995))
    if not high > low:
        high = low + 1.0
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    return {
        "kind": "histogram",
        "edges": [float(e) for e in edges],
        "baseline": _shares(baseline, edges),
        "target": _shares(target, edges),
    }


def categorical_histogram(baseline: dict[str, int], target: dict[str, int]) -> dict[str, Any]:
    """Shares of the most common categories (of both sides together), the rest as (other)."""
    combined = {c: baseline.get(c, 0) + target.get(c, 0) for c in baseline.keys() | target.keys()}
    top = sorted(combined, key=lambda c: (-combined[c], c))[:TOP_CATEGORIES]
    labels = top + ([OTHER] if len(combined) > len(top) else [])
    return {
        "kind": "bars",
        "categories": labels,
        "baseline": _category_shares(baseline, top, labels),
        "target": _category_shares(target, top, labels),
    }


def _nothing_to_compare() -> Comparison:
    """The target has no values where the baseline has some: as far from it as can be."""
    return Comparison(drift=1.0, p_value=0.0, metrics={"note": "the target has no values"})


def _quantile(values: np.ndarray, q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else 0.0


def _shares(values: np.ndarray, edges: np.ndarray) -> list[float]:
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    total = counts.sum()
    return [round(float(c) / total, 6) if total else 0.0 for c in counts]


def _category_shares(counts: dict[str, int], top: list[str], labels: list[str]) -> list[float]:
    total = sum(counts.values())
    if not total:
        return [0.0] * len(labels)
    shares = [counts.get(c, 0) / total for c in top]
    if len(labels) > len(top):
        shares.append(1.0 - sum(shares))
    return [round(s, 6) for s in shares]
