"""The second demo model, on another schema and domain: machine sensor readings -> anomaly score.

Everything is reproducible from a seed. The generator: machines of three types (pump, fan,
compressor), each with its own normal operating point; a reading is that point plus Gaussian
noise (temperature, vibration, pressure, current, rpm). About 3 % of readings are anomalies,
of three kinds: overheating (temperature +4..12 C, current +5 %), bearing wear (vibration
x1.4..2.5, rpm -2 %) and pressure loss (pressure -10..30 %), some of them within the noise. The model is scikit-learn's
HistGradientBoostingClassifier, exported with skl2onnx (``probabilities`` column 1 is the
anomaly score), and it is registered the way a user registers their own: through
``models.register.register_from_schema`` with the schema, the feature list and a training
sample, so no card is written by hand. ``streamscore models build-demo --sensor`` runs it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

READING_SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Reading", "namespace": "io.example.sensors",
    "doc": "One reading of a machine's sensors (the sensor demo's events).",
    "fields": [
        {"name": "reading_id", "type": "string"},
        {"name": "machine_id", "type": "string"},
        {"name": "machine_type", "type": {"type": "enum", "name": "MachineType",
                                          "symbols": ["pump", "fan", "compressor"]}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "temperature_c", "type": "double"},
        {"name": "vibration_mm_s", "type": "double"},
        {"name": "pressure_bar", "type": "double"},
        {"name": "current_a", "type": "double"},
        {"name": "rpm", "type": "int"},
        {"name": "firmware", "type": ["null", "string"], "default": None},
    ],
}
FEATURES = ("machine_type", "temperature_c", "vibration_mm_s", "pressure_bar", "current_a", "rpm")
CATEGORICAL = ("machine_type",)
MACHINE_TYPES = ("pump", "fan", "compressor")
# normal operating point per machine type: temperature C, vibration mm/s, pressure bar, current A, rpm
_NORMAL = {"pump": (55.0, 2.0, 6.0, 12.0, 1750), "fan": (40.0, 1.2, 1.1, 4.0, 1200),
           "compressor": (70.0, 3.0, 9.0, 22.0, 3000)}
_NOISE = (3.0, 0.3, 0.25, 0.8, 25)
ANOMALY_RATE = 0.03
DEFAULT_SEED = 11
START_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z


READING_SPACING_MS = 50


def live_start_ms(count: int) -> int:
    """The ``start_ms`` that stamps ``count`` readings up to now: recent, so a broker's time retention
    (which reads record timestamps) keeps them, and none in the future, which a scoring job routes only
    once its clock reaches it (``jobs.model_router``)."""
    return int(time.time() * 1000) - READING_SPACING_MS * count


def generate_readings(count: int, seed: int = DEFAULT_SEED, prefix: str = "r",
                      start_ms: int = START_MS, first: int = 0) -> list[dict[str, Any]]:
    """``count`` readings with an ``is_anomaly`` field (0/1) beside the schema's fields, ``READING_SPACING_MS``
    apart from ``start_ms`` (a live stream: :func:`live_start_ms`); ids ``prefix`` + n from n = ``first``
    (a long stream drawn a chunk at a time, each chunk with its own seed)."""
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, len(MACHINE_TYPES), count)
    base = np.array([_NORMAL[MACHINE_TYPES[k]] for k in kinds], dtype=np.float64)
    values = base + rng.normal(0.0, 1.0, (count, 5)) * np.array(_NOISE)
    anomaly = rng.random(count) < ANOMALY_RATE
    which = rng.integers(0, 3, count)
    _inject(values, anomaly & (which == 0), anomaly & (which == 1), anomaly & (which == 2), rng)
    return [{"reading_id": f"{prefix}{first + i:07d}", "machine_id": f"m{int(rng.integers(0, 200)):03d}",
             "machine_type": MACHINE_TYPES[kinds[i]], "ts": start_ms + i * READING_SPACING_MS,
             "temperature_c": round(float(values[i, 0]), 3), "vibration_mm_s": round(float(abs(values[i, 1])), 4),
             "pressure_bar": round(float(values[i, 2]), 4), "current_a": round(float(values[i, 3]), 3),
             "rpm": int(values[i, 4]), "firmware": None, "is_anomaly": int(anomaly[i])} for i in range(count)]


def _inject(values: np.ndarray, overheat: np.ndarray, wear: np.ndarray, leak: np.ndarray, rng) -> None:
    values[overheat, 0] += rng.uniform(4, 12, int(overheat.sum()))
    values[overheat, 3] *= 1.05
    values[wear, 1] *= rng.uniform(1.4, 2.5, int(wear.sum()))
    values[wear, 4] *= 0.98
    values[leak, 2] *= rng.uniform(0.7, 0.9, int(leak.sum()))


def feature_matrix(readings: list[dict[str, Any]]) -> np.ndarray:
    """The model's input: FEATURES in order, machine_type as its enum index (the contract's ordinal code)."""
    index = {name: float(i) for i, name in enumerate(MACHINE_TYPES)}
    return np.array([[index[r["machine_type"]], *(float(r[f]) for f in FEATURES[1:])] for r in readings],
                    dtype=np.float32)


def train_sensor_model(readings: list[dict[str, Any]], seed: int = DEFAULT_SEED) -> bytes:
    """A HistGradientBoostingClassifier on the readings, as ONNX bytes (input ``features``)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import HistGradientBoostingClassifier

    labels = np.array([r["is_anomaly"] for r in readings])
    model = HistGradientBoostingClassifier(max_iter=120, learning_rate=0.1, random_state=seed)
    model.fit(feature_matrix(readings), labels)
    onx = convert_sklearn(model, name="sensor-anomaly", initial_types=[("features", FloatTensorType([None, 6]))],
                          options={id(model): {"zipmap": False}}, target_opset=17)
    return onx.SerializeToString()


def write_example(out_dir: str | Path, rows: int = 20_000, seed: int = DEFAULT_SEED) -> dict[str, Path]:
    """readings.avsc, model.onnx (trained on ``rows`` readings) and sample.jsonl (5,000 held-out readings
    of the same machines, with is_anomaly: the card's ranges, drift profile and test AUC) under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"schema": out / "readings.avsc", "sample": out / "sample.jsonl", "onnx": out / "model.onnx"}
    paths["schema"].write_text(json.dumps(READING_SCHEMA, indent=2) + "\n", encoding="utf-8")
    held_out = generate_readings(5_000, seed + 1, prefix="h")
    paths["sample"].write_text("".join(json.dumps(r) + "\n" for r in held_out), encoding="utf-8")
    paths["onnx"].write_bytes(train_sensor_model(generate_readings(rows, seed), seed))
    return paths


def build_sensor(registry_dir: str | Path | None = None, work_dir: str | Path | None = None) -> Any:
    """Train the sensor model and register it as ``sensor:1.0.0`` the way a user would (from its schema)."""
    import tempfile

    from models.card_builder import CardRequest
    from models.event_binding import EventBinding
    from models.register import register_from_schema

    paths = write_example(work_dir or tempfile.mkdtemp(prefix="streamscore-sensor-"))
    request = CardRequest(name="sensor", version="1.0.0", features=FEATURES, categorical=CATEGORICAL,
                          binding=EventBinding(READING_SCHEMA, id_field="reading_id", time_field="ts"),
                          label_field="is_anomaly", threshold=0.5,
                          description="Machine sensor readings -> anomaly score (models/sensor_demo.py)")
    return register_from_schema(paths["onnx"], request, paths["sample"], registry_dir)
