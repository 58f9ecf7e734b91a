"""Train, convert, verify and register the demo fraud model (``fraud:1.0.0``).

``python -m models.build_demo [--registry DIR] [--seed N] [--rows N]``

Steps: draw labelled events from :mod:`models.demo_data`, encode them through
the demo feature contract (every event must pass), split 70/10/20 (stratified,
seeded) into train/validation/test, fit a seeded
``HistGradientBoostingClassifier`` on the float32 ordinal-encoded matrix, pick
the threshold that maximises F1 on the validation split, measure test AUC,
convert with skl2onnx (one input ``features`` float32 [None, 25]; outputs
``label`` and ``probabilities``; fixed opsets and producer fields so the bytes
are reproducible), check that ONNX Runtime's scores equal sklearn's
``predict_proba`` to 1e-5 on the test split, profile the training split for
drift, write ``model.onnx`` + ``model.json`` and load them back through the
registry. scikit-learn and skl2onnx are imported only inside this module's
functions: runtime code never needs them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np

import streamscore
from models import demo_data
from models.card import ModelCard, OutputSpec, TensorSpec, TrainingSummary
from models.drift_profile import build_profile, score_profile
from models.registry import CARD_FILE, DEFAULT_ROOT, ONNX_FILE, ModelRegistry, sha256_hex
from streamscore.foundation.errors import ModelError

MODEL_NAME, MODEL_VERSION = "fraud", "1.0.0"
DEFAULT_SEED, DEFAULT_ROWS = 20_240_601, 120_000
ONNX_OPSETS = {"": 17, "ai.onnx.ml": 3}
MODEL_PARAMS = {"max_iter": 150, "learning_rate": 0.1, "max_leaf_nodes": 15, "min_samples_leaf": 50,
                "l2_regularization": 1.0, "early_stopping": False}
SCORE_TOLERANCE = 1e-5
_LIBRARIES = ("numpy", "scikit-learn", "skl2onnx", "onnx", "onnxruntime")


def _split(matrix: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    x_rest, x_test, y_rest, y_test = train_test_split(matrix, labels, test_size=0.2, random_state=seed,
                                                      stratify=labels)
    x_train, x_valid, y_train, y_valid = train_test_split(x_rest, y_rest, test_size=0.125, random_state=seed + 1,
                                                          stratify=y_rest)
    return x_train, y_train, x_valid, y_valid, x_test, y_test


def _best_f1_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
    return round(float(thresholds[int(np.argmax(f1))]), 4)


def _to_onnx(model: Any, width: int, name: str, version: str) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(model, name=name, initial_types=[("features", FloatTensorType([None, width]))],
                          options={id(model): {"zipmap": False}}, target_opset=ONNX_OPSETS)
    onx.producer_name, onx.producer_version = "streamscore.models.build_demo", streamscore.__version__
    onx.doc_string, onx.graph.doc_string, onx.model_version = "", "", 1
    del onx.metadata_props[:]
    for key, value in (("streamscore.model", name), ("streamscore.version", version)):
        onx.metadata_props.add(key=key, value=value)
    return onx.SerializeToString(deterministic=True)


def _check_onnx_scores(onnx_bytes: bytes, x_test: np.ndarray, expected: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    scores = session.run(["probabilities"], {"features": x_test})[0][:, 1]
    worst = float(np.max(np.abs(scores.astype(np.float64) - expected)))
    if worst > SCORE_TOLERANCE:
        raise ModelError(f"ONNX Runtime scores differ from sklearn's by {worst:.2e} (> {SCORE_TOLERANCE})")
    return worst


def _onnx_scores(onnx_bytes: bytes, matrix: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"features": matrix.astype(np.float32)})[0][:, 1].astype(np.float64)


def _encode_events(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    events, labels = demo_data.generate_labelled(rows, seed)
    matrix, rejects, _ = demo_data.demo_contract().to_matrix(events)
    if rejects:
        raise ModelError(f"demo events break the demo contract, e.g. {rejects[:3]}")
    return matrix, labels


def _library_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in _LIBRARIES}


def train_demo(seed: int = DEFAULT_SEED, rows: int = DEFAULT_ROWS,
               model_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and convert; returns the ONNX bytes, the card fields and the checks' numbers.

    ``model_params`` override :data:`MODEL_PARAMS` (tests use a tiny model)."""
    params = {**MODEL_PARAMS, **(model_params or {})}
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    matrix, labels = _encode_events(rows, seed)
    x_train, y_train, x_valid, y_valid, x_test, y_test = _split(matrix, labels, seed)
    model = HistGradientBoostingClassifier(random_state=seed, **params).fit(x_train, y_train)
    test_scores = model.predict_proba(x_test)[:, 1]
    onnx_bytes = _to_onnx(model, matrix.shape[1], MODEL_NAME, MODEL_VERSION)
    threshold = _best_f1_threshold(y_valid, model.predict_proba(x_valid)[:, 1])
    return {
        "onnx_bytes": onnx_bytes,
        "threshold": threshold,
        "training": TrainingSummary(
            algorithm=f"sklearn.HistGradientBoostingClassifier{sorted(params.items())}",
            rows_train=len(y_train), rows_test=len(y_test), seed=seed,
            positive_rate=round(float(labels.mean()), 6),
            test_auc=round(float(roc_auc_score(y_test, test_scores)), 6),
            test_accuracy=round(float(np.mean((test_scores >= threshold) == y_test)), 6),
            library_versions=_library_versions()),
        "max_score_diff": _check_onnx_scores(onnx_bytes, x_test, test_scores),
        "drift_profile": {**build_profile(demo_data.demo_contract(), x_train),
                          # held-out scores: what the model says on data it has not seen
                          "score": score_profile(_onnx_scores(onnx_bytes, x_test))},
    }


def write_demo_model(registry_dir: str | Path | None, name: str, version: str, description: str,
                     trained: dict[str, Any]) -> tuple[ModelCard, Path]:
    """Card + ONNX of a trained demo model (the demo contract) into the registry, then loaded back
    (checksum and graph checks). ``trained`` holds onnx_bytes, threshold, training, drift_profile."""
    contract = demo_data.demo_contract()
    card = ModelCard(
        name=name, version=version, description=description, features=contract.features,
        onnx_input=TensorSpec(name="features", dtype="float32", shape=(None, contract.width)),
        outputs=OutputSpec(score_output="probabilities", score_column=1, threshold=trained["threshold"]),
        onnx_sha256=sha256_hex(trained["onnx_bytes"]), training=trained["training"],
        drift_profile=trained["drift_profile"])
    registry = ModelRegistry(registry_dir if registry_dir is not None else DEFAULT_ROOT)
    directory = registry.directory(name, version)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ONNX_FILE).write_bytes(trained["onnx_bytes"])
    (directory / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
    registry.load(name, version)
    return card, directory


def build_demo(registry_dir: str | Path | None = None, seed: int = DEFAULT_SEED,
               rows: int = DEFAULT_ROWS, model_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the demo model and write ``<registry_dir>/fraud/1.0.0/model.{onnx,json}``."""
    trained = train_demo(seed, rows, model_params)
    card, directory = write_demo_model(registry_dir, MODEL_NAME, MODEL_VERSION,
                                       "Demo card-fraud classifier trained on models.demo_data synthetic transactions.",
                                       trained)
    return {"directory": str(directory), "test_auc": card.training.test_auc, "threshold": card.outputs.threshold,
            "positive_rate": card.training.positive_rate, "onnx_bytes": len(trained["onnx_bytes"]),
            "max_score_diff": trained["max_score_diff"], "sha256": card.onnx_sha256}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.build_demo", description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=DEFAULT_ROOT, help="registry root (default: models/)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    args = parser.parse_args(argv)
    summary = build_demo(args.registry, seed=args.seed, rows=args.rows)
    for key, value in summary.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
