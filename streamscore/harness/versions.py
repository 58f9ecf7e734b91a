"""Model versions that really differ, for lifecycle runs (tests, the soak).

``register_distinct_versions`` registers a demo model (the fraud model, or the sensor model on the
Confluent wire) under another name as ``1.0.0`` and then challengers retrained from it
(``models.retrain``, each on its own labelled sample and seed) as ``1.1.0``, ``1.2.0``...: every
version scores differently, so a run can tell from a record's score which model scored it, not only
from the version label it carries. The other name keeps the demo's own Redis pointer untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models import demo_data
from models.register import register_card, register_model
from models.registry import DEFAULT_ROOT, load_model
from models.retrain import RetrainRequest, retrain
from models.runtime import OnnxScorer

SAMPLE_ROWS = 4000  # a retrained challenger's labelled sample: a few seconds to train
SMALL_MODEL = {"max_iter": 20}


def _sensor_labelled(count: int, seed: int) -> tuple[list[dict], np.ndarray]:
    from models.sensor_demo import generate_readings

    readings = generate_readings(count, seed=seed, prefix="train-")
    return readings, np.array([reading.pop("is_anomaly") for reading in readings])


LABELLED_SAMPLES: dict[str, Callable[[int, int], tuple[list[dict], np.ndarray]]] = {
    "fraud": demo_data.generate_labelled, "sensor": _sensor_labelled}  # demo model -> (events, labels)


def register_distinct_versions(root: Path, name: str, challengers: int = 2, base: str = "fraud") -> list[str]:
    """``name:1.0.0`` (the demo model ``base``:1.0.0) and ``challengers`` retrained versions in ``root``;
    returns the versions, oldest first."""
    source = DEFAULT_ROOT / base / "1.0.0"
    card = json.loads((source / "model.json").read_text())
    card_file = root / "card-1.0.0.json"
    card_file.write_text(json.dumps({**card, "name": name, "version": "1.0.0"}))
    register_model(source / "model.onnx", card_file, root)
    versions = ["1.0.0"]
    for number in range(1, challengers + 1):
        parent = load_model(f"{name}:{versions[-1]}", root=root)
        events, labels = LABELLED_SAMPLES[base](SAMPLE_ROWS, 1000 + number)
        request = RetrainRequest(seed=number, taken_versions=tuple(versions), model_params=SMALL_MODEL)
        result = retrain(parent, events, labels, request)
        versions.append(register_card(result.card, result.onnx_bytes, root).card.version)
    return versions


def version_scores(root: Path, name: str, version: str, events: list[dict]) -> list[float]:
    """``events`` scored by ``name:version`` from ``root`` with ONNX Runtime directly (no job): what a
    record scored by that version must carry."""
    model = load_model(f"{name}:{version}", root=root)
    matrix, _, _ = model.contract.to_matrix(events)
    return OnnxScorer(model).predict_batch(matrix).tolist()
