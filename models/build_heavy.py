"""Train, convert, verify and register the heavier demo model (``fraud-mlp:1.0.0``).

``python -m models.build_heavy [--registry DIR]`` or ``streamscore models build-demo --heavy``

The same events, feature contract, split, threshold rule and drift profile as
``fraud:1.0.0`` (:mod:`models.build_demo`), but the model is a multi-layer
perceptron 25-512-512-256-1 (ReLU, about 410k weights, ~1.6 MB of float32) so that
inference cost, INT8/FP16 conversion and GPU providers show above the per-call overhead.

- Features are standardised with a ``StandardScaler`` fitted on the training
  split, and the scaling is *folded into the first layer* (``W' = W / s``,
  ``b' = b - (m / s) W``): the ONNX graph holds only MatMul/Add/Relu/Sigmoid, no
  ``ai.onnx.ml`` operator, so TensorRT can take all of it.
- Training is ``partial_fit`` epochs with a fixed seed; the epoch with the best
  validation AUC is kept (it overfits after about 5 epochs).
- The converted graph is pruned to the ``probabilities`` output (skl2onnx's
  ``label`` output needs ``ai.onnx.ml.ArrayFeatureExtractor``; the card's label
  rule is ``score >= threshold`` anyway).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from models import demo_data
from models.build_demo import (
    DEFAULT_ROWS,
    DEFAULT_SEED,
    _best_f1_threshold,
    _encode_events,
    _library_versions,
    _onnx_scores,
    _split,
    _to_onnx,
    write_demo_model,
)
from models.card import TrainingSummary
from models.drift_profile import build_profile, score_profile
from models.registry import DEFAULT_ROOT
from streamscore.foundation.errors import ModelError

MODEL_NAME, MODEL_VERSION = "fraud-mlp", "1.0.0"
HIDDEN_LAYERS = (512, 512, 256)
EPOCHS = 6
MLP_PARAMS = {"hidden_layer_sizes": HIDDEN_LAYERS, "alpha": 1e-2, "batch_size": 512, "learning_rate_init": 3e-4}
SCORE_TOLERANCE = 1e-4  # folding the scaler changes float32 rounding a little
# The deliberately expensive model of the prediction-cache benchmark: ~8x the MLP's arithmetic
# (3.2M multiply-adds a row, ~13 MB), so a model call costs more than the rest of the job's
# work per event. Built on demand (``streamscore bench`` builds it when a row needs it), not committed.
WIDE_NAME, WIDE_HIDDEN, WIDE_EPOCHS, WIDE_ROWS = "fraud-wide", (1536, 1536, 512), 2, 40_000


def _fit_best_epoch(x_train: np.ndarray, y_train: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray,
                    seed: int, epochs: int, params: dict[str, Any]) -> tuple[Any, int, float]:
    """``partial_fit`` epoch by epoch; returns (the best model on validation AUC, its epoch, that AUC)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(random_state=seed, **params)
    best: tuple[Any, int, float] = (None, -1, -1.0)
    for epoch in range(1, epochs + 1):
        model.partial_fit(x_train, y_train, classes=np.array([0, 1]))
        auc = float(roc_auc_score(y_valid, model.predict_proba(x_valid)[:, 1]))
        if auc > best[2]:
            best = (copy.deepcopy(model), epoch, auc)
    return best


def _fold_scaler(model: Any, mean: np.ndarray, scale: np.ndarray) -> Any:
    """A copy of ``model`` that takes raw features: the standardisation moves into layer 1."""
    folded = copy.deepcopy(model)
    weights, bias = model.coefs_[0], model.intercepts_[0]
    folded.coefs_[0] = weights / scale[:, None]
    folded.intercepts_[0] = bias - (mean / scale) @ weights
    return folded


def _prune_to_scores(onnx_bytes: bytes, keep_output: str = "probabilities") -> bytes:
    """Drop every graph output but ``keep_output`` and the nodes/initializers only they needed."""
    model = onnx.load_model_from_string(onnx_bytes)
    graph = model.graph
    kept_outputs = [o for o in graph.output if o.name == keep_output]
    del graph.output[:]
    graph.output.extend(kept_outputs)
    needed, kept_nodes = {keep_output}, []
    for node in reversed(list(graph.node)):
        if needed.intersection(node.output):
            kept_nodes.append(node)
            needed.update(name for name in node.input if name)
    del graph.node[:]
    graph.node.extend(reversed(kept_nodes))
    kept_inits = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def _check_scores(onnx_bytes: bytes, x_test: np.ndarray, expected: np.ndarray) -> float:
    worst = float(np.max(np.abs(_onnx_scores(onnx_bytes, x_test) - expected)))
    if worst > SCORE_TOLERANCE:
        raise ModelError(f"ONNX Runtime scores differ from sklearn's by {worst:.2e} (> {SCORE_TOLERANCE})")
    return worst


def train_heavy(seed: int = DEFAULT_SEED, rows: int = DEFAULT_ROWS, epochs: int = EPOCHS,
                model_params: dict[str, Any] | None = None, name: str = MODEL_NAME) -> dict[str, Any]:
    """Train and convert; returns the ONNX bytes, the card fields and the checks' numbers."""
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    params = {**MLP_PARAMS, **(model_params or {})}
    matrix, labels = _encode_events(rows, seed)
    x_train, y_train, x_valid, y_valid, x_test, y_test = _split(matrix, labels, seed)
    scaler = StandardScaler().fit(x_train)
    scaled, best_epoch, valid_auc = _fit_best_epoch(scaler.transform(x_train), y_train, scaler.transform(x_valid),
                                                    y_valid, seed, epochs, params)
    model = _fold_scaler(scaled, scaler.mean_, scaler.scale_)
    test_scores = scaled.predict_proba(scaler.transform(x_test))[:, 1]
    onnx_bytes = _prune_to_scores(_to_onnx(model, matrix.shape[1], name, MODEL_VERSION))
    algorithm = (f"sklearn.MLPClassifier{sorted(params.items())} + StandardScaler folded into layer 1; "
                 f"epoch {best_epoch} of {epochs} (best validation AUC {valid_auc:.4f})")
    return {
        "onnx_bytes": onnx_bytes,
        "threshold": _best_f1_threshold(y_valid, _onnx_scores(onnx_bytes, x_valid)),
        "training": TrainingSummary(
            algorithm=algorithm, rows_train=len(y_train), rows_test=len(y_test), seed=seed,
            positive_rate=round(float(labels.mean()), 6),
            test_auc=round(float(roc_auc_score(y_test, test_scores)), 6), library_versions=_library_versions()),
        "max_score_diff": _check_scores(onnx_bytes, x_test, test_scores),
        "drift_profile": {**build_profile(demo_data.demo_contract(), x_train),
                          "score": score_profile(_onnx_scores(onnx_bytes, x_test))},
    }


def build_heavy(registry_dir: str | Path | None = None, seed: int = DEFAULT_SEED, rows: int = DEFAULT_ROWS,
                epochs: int = EPOCHS, model_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the heavy demo model and write ``<registry_dir>/fraud-mlp/1.0.0/model.{onnx,json}``."""
    trained = train_heavy(seed, rows, epochs, model_params)
    card, directory = write_demo_model(
        registry_dir, MODEL_NAME, MODEL_VERSION,
        ("Heavier demo card-fraud classifier: an MLP 25-512-512-256-1 on the same features and "
         "contract as fraud:1.0.0, for INT8/FP16 optimization and GPU checks."), trained)
    return {"directory": str(directory), "test_auc": card.training.test_auc, "threshold": card.outputs.threshold,
            "algorithm": card.training.algorithm, "onnx_bytes": len(trained["onnx_bytes"]),
            "max_score_diff": trained["max_score_diff"], "sha256": card.onnx_sha256}


def build_wide(registry_dir: str | Path | None = None, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Train the deliberately expensive ``fraud-wide:1.0.0`` (25-1536-1536-512-1) into ``registry_dir``."""
    params = {"hidden_layer_sizes": WIDE_HIDDEN}
    trained = train_heavy(seed, WIDE_ROWS, WIDE_EPOCHS, params, name=WIDE_NAME)
    card, directory = write_demo_model(
        registry_dir, WIDE_NAME, MODEL_VERSION,
        ("Deliberately expensive demo card-fraud classifier: an MLP 25-1536-1536-512-1 (3.2M multiply-adds "
         "a row) on the contract of fraud:1.0.0, for the prediction-cache benchmark."), trained)
    return {"directory": str(directory), "test_auc": card.training.test_auc, "onnx_bytes": len(trained["onnx_bytes"])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.build_heavy", description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=DEFAULT_ROOT, help="registry root (default: models/)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--wide", action="store_true", help="build fraud-wide:1.0.0 (the cache benchmark's) instead")
    args = parser.parse_args(argv)
    built = build_wide(args.registry, seed=args.seed) if args.wide else build_heavy(
        args.registry, seed=args.seed, rows=args.rows, epochs=args.epochs)
    for key, value in built.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
