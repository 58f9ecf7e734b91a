"""Measuring an optimized model against its parent: accuracy on a held-out sample, speed side by side.

Used by :mod:`models.optimize` (the numbers in an optimized card),
``benchmarks/model_variants.py`` and ``benchmarks/gpu_check.py``. No scikit-learn:
AUC is the Mann-Whitney rank statistic (scipy), so it runs wherever the runtime runs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from models import demo_data


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count one half), from ranks."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def held_out_sample(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [rows, 25] features, labels) freshly drawn from the demo generator: no training row."""
    return demo_data.generate_matrix(rows, seed)


def accuracy_delta(labels: np.ndarray, parent: np.ndarray, child: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUC of both, the drop, label agreement under the card's threshold and score differences."""
    parent_auc, child_auc = auc(labels, parent), auc(labels, child)
    return {
        "rows": len(labels), "positives": int(np.sum(labels)),
        "non_finite_scores": int(np.sum(~np.isfinite(child))),
        "parent_auc": round(parent_auc, 6), "auc": round(child_auc, 6),
        "auc_drop": round(parent_auc - child_auc, 6),
        "label_agreement": round(float(np.mean((parent >= threshold) == (child >= threshold))), 6),
        "max_abs_score_diff": float(np.max(np.abs(parent - child))),
        "score_correlation": round(float(np.corrcoef(parent, child)[0, 1]), 6),
    }


def rows_per_second(predict, matrix: np.ndarray, batch: int, seconds: float) -> float:
    """Rows/s of ``predict`` on consecutive slices of ``batch`` rows for about ``seconds``."""
    starts = range(0, max(len(matrix) - batch, 0) + 1, batch)
    slices = [matrix[start:start + batch] for start in starts] or [matrix[:batch]]
    calls, began = 0, time.perf_counter()
    while True:
        predict(slices[calls % len(slices)])
        calls += 1
        elapsed = time.perf_counter() - began
        if elapsed >= seconds and calls >= 3:
            return calls * len(slices[0]) / elapsed


def side_by_side(predictors: Mapping[str, Any], matrix: np.ndarray, batch_sizes: Sequence[int],
                 seconds: float, rounds: int = 3) -> dict[str, dict[int, float]]:
    """Median rows/s per predictor and batch size, interleaved (A B C, A B C, ...) so load hits all alike."""
    samples: dict[str, dict[int, list[float]]] = {name: {b: [] for b in batch_sizes} for name in predictors}
    for _ in range(rounds):
        for batch in batch_sizes:
            for name, predict in predictors.items():
                samples[name][batch].append(rows_per_second(predict, matrix, batch, seconds))
    return {name: {b: statistics.median(v) for b, v in per.items()} for name, per in samples.items()}


def speedup_summary(measured: dict[str, dict[int, float]], parent: str, child: str) -> dict[str, Any]:
    """``{"batch_1": {"parent_rows_per_s", "rows_per_s", "speedup"}, ...}`` from :func:`side_by_side`."""
    return {f"batch_{batch}": {"parent_rows_per_s": round(measured[parent][batch], 1),
                               "rows_per_s": round(measured[child][batch], 1),
                               "speedup": round(measured[child][batch] / measured[parent][batch], 3)}
            for batch in measured[parent]}
