"""ONNX Runtime scoring for one streaming worker.

:class:`OnnxScorer` owns one ``InferenceSession``. Execution providers default
to the best available of TensorRT, CUDA, CPU (in that order); an explicit list
is used as given and must be available. Threads default to ``intra_op=1`` and
``inter_op=1``: a Flink task slot is one worker, parallelism comes from slots.
The session is warmed up at load with batches of several sizes so the first
real records do not pay for lazy initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnxruntime as ort

from models.registry import LoadedModel
from streamscore.errors import ModelError

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
WARMUP_BATCH_SIZES = (1, 7, 64, 256)


def choose_providers(requested: Sequence[str] | None = None,
                     available: Sequence[str] | None = None) -> list[str]:
    """The requested providers (all must be available), or the best available ones."""
    available = list(ort.get_available_providers() if available is None else available)
    if requested is None:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
        if not chosen:
            raise ModelError(f"none of {list(PREFERRED_PROVIDERS)} is available (have {available})")
        return chosen
    missing = [p for p in requested if p not in available]
    if missing or not requested:
        raise ModelError(f"execution providers {missing or list(requested)} not available (have {available})")
    return list(requested)


def labels_from_scores(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The card's label rule: ``score >= threshold``."""
    return np.asarray(scores) >= threshold


def _session_options(intra_op_threads: int, inter_op_threads: int,
                     graph_optimization: str) -> ort.SessionOptions:
    if graph_optimization not in GRAPH_OPTIMIZATION:
        raise ModelError(f"graph_optimization {graph_optimization!r} is not one of {list(GRAPH_OPTIMIZATION)}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = GRAPH_OPTIMIZATION[graph_optimization]
    options.log_severity_level = 3
    return options


class OnnxScorer:
    """Scores float32 feature matrices with one ``session.run`` per batch."""

    def __init__(self, model: LoadedModel, *, providers: Sequence[str] | None = None,
                 intra_op_threads: int = 1, inter_op_threads: int = 1, graph_optimization: str = "all",
                 warmup_batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES) -> None:
        self.model = model
        card = model.card
        self.input_name = card.onnx_input.name
        self.width = card.onnx_input.shape[1]
        self.score_output = card.outputs.score_output
        self.score_column = card.outputs.score_column
        self.threshold = float(card.outputs.threshold)
        options = _session_options(intra_op_threads, inter_op_threads, graph_optimization)
        chosen = choose_providers(providers)
        try:
            self.session = ort.InferenceSession(model.onnx_bytes, sess_options=options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{card.ref}: ONNX Runtime could not load the model: {exc}") from exc
        self.warm_up(warmup_batch_sizes)

    @property
    def providers(self) -> list[str]:
        """Execution providers the session actually uses, in priority order."""
        return self.session.get_providers()

    def warm_up(self, batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES) -> None:
        for size in batch_sizes:
            self.predict_batch(np.zeros((size, self.width), dtype=np.float32))

    def predict_batch(self, features: np.ndarray) -> np.ndarray:
        """Scores (float64, shape (n,)) for a float32 [n, d] matrix, in row order."""
        if not isinstance(features, np.ndarray) or features.dtype != np.float32:
            raise ModelError(f"predict_batch needs a float32 ndarray, got {getattr(features, 'dtype', type(features))}")
        if features.ndim != 2 or features.shape[1] != self.width:
            raise ModelError(f"predict_batch needs shape (n, {self.width}), got {features.shape}")
        if features.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        output = self.session.run([self.score_output], {self.input_name: np.ascontiguousarray(features)})[0]
        scores = output if self.score_column is None else output[:, self.score_column]
        return scores.astype(np.float64)

    def labels(self, scores: np.ndarray) -> np.ndarray:
        return labels_from_scores(scores, self.threshold)
