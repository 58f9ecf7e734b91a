"""The drift reference profile: per-feature summaries of a model's training data.

Numeric features (ints and booleans included):

* ``edges``: up to 9 interior cut points, the reference deciles (0.1 .. 0.9,
  ``inverted_cdf`` so every cut point is an observed value), deduplicated, and
  without the reference maximum. The bins are right-closed with open outer
  ends: bin 0 = (-inf, edges[0]], bin i = (edges[i-1], edges[i]], last bin =
  (edges[-1], +inf); :func:`numeric_bin_index` gives ``searchsorted(edges, x,
  side="left")``. A continuous feature gets 10 bins of ~10 % each; a feature
  with few distinct values (hour_of_day, a boolean) gets fewer bins, one per
  value or value range, and no reference bin is ever empty.
* ``proportions``: reference share per bin (sums to 1).
* ``quantiles``: 1001 quantiles at probabilities 0, 0.001, .., 1 (linear
  interpolation), fine enough to approximate the reference CDF for KS tests.
* ``count``, ``mean``, ``std``, ``min``, ``max``.

Categorical features: ``buckets`` = the contract's categories then ``"__OOV__"``
and ``proportions`` over them (``__OOV__`` is 0 in the reference; live values
outside the list, or codes that are not a valid index, land there).

:func:`build_profile` returns a JSON-serialisable dict (numbers stored with 9
significant digits, exact for float32 data); :func:`load_profile` validates it
and returns numpy-backed :class:`DriftProfile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamscore.foundation.errors import ModelError

PROFILE_FORMAT = 1
OOV_BUCKET = "__OOV__"
DECILES = tuple(round(0.1 * i, 1) for i in range(1, 10))
QUANTILE_POINTS = 1001


@dataclass(frozen=True)
class NumericProfile:
    name: str
    count: int
    mean: float
    std: float
    min: float
    max: float
    edges: np.ndarray  # interior cut points, strictly increasing, <= 9
    proportions: np.ndarray  # len(edges) + 1, sums to 1
    quantiles: np.ndarray  # QUANTILE_POINTS values at linspace(0, 1)

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """How many of ``values`` fall into each reference bin."""
        return np.bincount(numeric_bin_index(self.edges, values), minlength=len(self.proportions))


@dataclass(frozen=True)
class CategoricalProfile:
    name: str
    count: int
    buckets: tuple[str, ...]  # categories..., OOV_BUCKET
    proportions: np.ndarray

    def bin_counts(self, codes_or_values: np.ndarray) -> np.ndarray:
        """Counts per bucket of ordinal codes or category strings (unknown -> __OOV__)."""
        index = categorical_bucket_index(self.buckets[:-1], codes_or_values)
        return np.bincount(index, minlength=len(self.buckets))


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class DriftProfile:
    rows: int
    features: Mapping[str, FeatureProfile]


def numeric_bin_index(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin of each value: i such that edges[i-1] < value <= edges[i]."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), np.asarray(values, dtype=np.float64), side="left")


def categorical_bucket_index(categories: tuple[str, ...], codes_or_values: np.ndarray) -> np.ndarray:
    """Bucket of each ordinal code (or category string); anything else -> len(categories)."""
    values = np.asarray(codes_or_values)
    k = len(categories)
    if values.dtype.kind in "OUS":
        lookup = {category: i for i, category in enumerate(categories)}
        return np.fromiter((lookup.get(v, k) if isinstance(v, str) else k for v in values.tolist()),
                           np.int64, values.size)
    codes = values.astype(np.float64)
    valid = np.isfinite(codes) & (codes >= 0) & (codes < k) & (codes == np.floor(codes))
    return np.where(valid, np.nan_to_num(codes), k).astype(np.int64)


def _sig9(values: Any) -> Any:
    array = np.asarray(values, dtype=np.float64)
    return [float(f"{v:.9g}") for v in array.tolist()] if array.ndim else float(f"{float(array):.9g}")


def _numeric_summary(name: str, column: np.ndarray) -> dict[str, Any]:
    values = np.asarray(column, dtype=np.float64)
    values = np.sort(values[np.isfinite(values)])
    if values.size == 0:
        raise ModelError(f"drift profile: feature {name!r} has no finite reference values")
    deciles = np.quantile(values, DECILES, method="inverted_cdf")
    edges = np.unique(np.asarray(_sig9(deciles[deciles < values[-1]]), dtype=np.float64))
    counts = np.bincount(numeric_bin_index(edges, values), minlength=edges.size + 1)
    return {"kind": "numeric", "count": int(values.size), "mean": _sig9(values.mean()),
            "std": _sig9(values.std()), "min": _sig9(values[0]), "max": _sig9(values[-1]),
            "edges": edges.tolist(), "proportions": (counts / values.size).tolist(),
            "quantiles": _sig9(_sorted_quantile_grid(values))}


def _sorted_quantile_grid(sorted_values: np.ndarray) -> np.ndarray:
    """The QUANTILE_POINTS linear-interpolation quantiles of already sorted values."""
    position = np.linspace(0.0, 1.0, QUANTILE_POINTS) * (sorted_values.size - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, sorted_values.size - 1)
    low, high = sorted_values[below], sorted_values[above]
    return np.maximum.accumulate(low + (high - low) * (position - below))


def _categorical_summary(categories: tuple[str, ...], column: np.ndarray) -> dict[str, Any]:
    index = categorical_bucket_index(categories, column)
    counts = np.bincount(index, minlength=len(categories) + 1)
    total = max(int(index.size), 1)
    return {"kind": "categorical", "count": int(index.size), "buckets": [*categories, OOV_BUCKET],
            "proportions": (counts / total).tolist()}


def build_profile(contract: Any, matrix_or_columns: np.ndarray | Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Profile every contract feature of a reference sample.

    ``contract`` has ``.features`` with ``name``, ``kind`` and ``categories``;
    ``matrix_or_columns`` is the model's [n, d] matrix in contract order, or a
    mapping from feature name to a 1-D column (categorical: codes or strings).
    """
    features = list(contract.features)
    if isinstance(matrix_or_columns, Mapping):
        columns = [np.asarray(matrix_or_columns[f.name]) for f in features]
    else:
        matrix = np.asarray(matrix_or_columns)
        if matrix.ndim != 2 or matrix.shape[1] != len(features):
            raise ModelError(f"drift profile: matrix shape {matrix.shape} does not fit {len(features)} features")
        columns = [matrix[:, j] for j in range(matrix.shape[1])]
    rows = {len(column) for column in columns}
    if len(rows) != 1 or 0 in rows:
        raise ModelError(f"drift profile: columns must be non-empty and of one length, got lengths {sorted(rows)}")
    summaries = {f.name: (_numeric_summary(f.name, column) if f.kind == "numeric"
                          else _categorical_summary(tuple(f.categories), column))
                 for f, column in zip(features, columns)}
    return {"format_version": PROFILE_FORMAT, "rows": rows.pop(), "bins": len(DECILES) + 1,
            "quantile_points": QUANTILE_POINTS, "features": summaries}


def _array(raw: Mapping[str, Any], key: str, where: str) -> np.ndarray:
    value = raw.get(key)
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) for v in value):
        raise ModelError(f"drift profile field '{where}.{key}': is not a list of numbers")
    return np.asarray(value, dtype=np.float64)


def _check_proportions(proportions: np.ndarray, size: int, where: str) -> None:
    if proportions.size != size or np.any(proportions < 0) or abs(proportions.sum() - 1.0) > 1e-6:
        raise ModelError(f"drift profile field '{where}.proportions': needs {size} shares summing to 1")


def _load_numeric(name: str, raw: Mapping[str, Any], where: str) -> NumericProfile:
    edges, quantiles = _array(raw, "edges", where), _array(raw, "quantiles", where)
    proportions = _array(raw, "proportions", where)
    if edges.size > len(DECILES) or np.any(np.diff(edges) <= 0):
        raise ModelError(f"drift profile field '{where}.edges': needs <= 9 increasing cut points")
    if quantiles.size != QUANTILE_POINTS or np.any(np.diff(quantiles) < 0):
        raise ModelError(f"drift profile field '{where}.quantiles': needs {QUANTILE_POINTS} sorted values")
    _check_proportions(proportions, edges.size + 1, where)
    try:
        stats = {key: float(raw[key]) for key in ("mean", "std", "min", "max")}
        return NumericProfile(name=name, count=int(raw["count"]), edges=edges, proportions=proportions,
                              quantiles=quantiles, **stats)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"drift profile field '{where}': bad or missing count/mean/std/min/max ({exc})") from exc


def _load_categorical(name: str, raw: Mapping[str, Any], where: str) -> CategoricalProfile:
    buckets = raw.get("buckets")
    if not isinstance(buckets, list) or not buckets or buckets[-1] != OOV_BUCKET:
        raise ModelError(f"drift profile field '{where}.buckets': must list the categories then {OOV_BUCKET!r}")
    proportions = _array(raw, "proportions", where)
    _check_proportions(proportions, len(buckets), where)
    return CategoricalProfile(name=name, count=int(raw.get("count", 0)), buckets=tuple(buckets),
                              proportions=proportions)


def load_profile(raw: Mapping[str, Any]) -> DriftProfile:
    """Validate a :func:`build_profile` dict and return typed, numpy-backed profiles."""
    if not isinstance(raw, Mapping) or raw.get("format_version") != PROFILE_FORMAT:
        raise ModelError(f"drift profile field 'format_version': expected {PROFILE_FORMAT}")
    features = raw.get("features")
    if not isinstance(features, Mapping) or not features:
        raise ModelError("drift profile field 'features': missing or empty")
    loaded: dict[str, FeatureProfile] = {}
    for name, item in features.items():
        where = f"features[{name!r}]"
        kind = item.get("kind") if isinstance(item, Mapping) else None
        if kind == "numeric":
            loaded[name] = _load_numeric(name, item, where)
        elif kind == "categorical":
            loaded[name] = _load_categorical(name, item, where)
        else:
            raise ModelError(f"drift profile field '{where}.kind': {kind!r} is not numeric|categorical")
    return DriftProfile(rows=int(raw.get("rows", 0)), features=loaded)


SCORE_FEATURE = "prediction_score"


def score_profile(scores: np.ndarray) -> dict[str, Any]:
    """A reference profile of the model's prediction scores (a 1-D vector).

    The entry has the same layout as a numeric feature of :func:`build_profile`
    (deciles, proportions, 1001 quantiles, count and moments), so the drift
    detector watches the score distribution exactly like an input feature.
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 1:
        raise ModelError(f"score profile: scores must be a 1-D vector, got shape {values.shape}")
    return _numeric_summary(SCORE_FEATURE, values)


def load_score_profile(raw: Mapping[str, Any]) -> NumericProfile:
    """Validate a :func:`score_profile` entry and return it as a :class:`NumericProfile`."""
    if not isinstance(raw, Mapping) or raw.get("kind") != "numeric":
        raise ModelError("score profile field 'kind': expected 'numeric'")
    return _load_numeric(SCORE_FEATURE, raw, "score_profile")
