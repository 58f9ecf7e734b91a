"""The model's own limit: ONNX Runtime alone, rows/s at several batch sizes, one thread.

Same model file and session options as the scoring job (``OnnxScorer``: intra_op 1, inter_op 1,
all graph optimisations); the feature matrices are the contract's encoding of the benchmark's
own events, so the rows are the rows every system scores.
"""

from __future__ import annotations

import time

import numpy as np

from models.registry import load_model
from models.runtime import OnnxScorer
from schemas import serde_for


def feature_matrix(values: list[bytes]) -> np.ndarray:
    model = load_model("fraud:1.0.0")
    decode = serde_for("event").decode
    matrix, rejects, _ = model.contract.to_matrix([decode(v) for v in values])
    if rejects:
        raise ValueError(f"{len(rejects)} benchmark events fail the model contract")
    return np.ascontiguousarray(matrix, dtype=np.float32)


def onnx_rows_per_s(matrix: np.ndarray, batch_size: int, seconds: float, scorer: OnnxScorer | None = None) -> float:
    """Rows/s of ``predict_batch`` over ``seconds``, cycling through ``matrix`` in batches."""
    scorer = scorer or OnnxScorer(load_model("fraud:1.0.0"))
    batches = [matrix[i:i + batch_size] for i in range(0, len(matrix) - batch_size + 1, batch_size)]
    if not batches:
        raise ValueError(f"need at least {batch_size} rows, have {len(matrix)}")
    for batch in batches[:3]:  # warm-up
        scorer.predict_batch(batch)
    rows, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        for batch in batches:
            scorer.predict_batch(batch)
            rows += len(batch)
    return rows / (time.perf_counter() - began)


def onnx_rows(matrix: np.ndarray, batch_sizes: tuple[int, ...], seconds: float) -> dict[int, float]:
    scorer = OnnxScorer(load_model("fraud:1.0.0"))
    return {size: onnx_rows_per_s(matrix, size, seconds, scorer) for size in batch_sizes}
