"""The model card (``model.json``): everything needed to trust and call a model.

Layout (``format_version`` 1)::

    {"format_version": 1, "name": "fraud", "version": "1.0.0", "description": "...",
     "features": [{"name", "field", "kind", "dtype", "range" | "categories",
                   "encoding", "unknown_category"}, ...],          # model column order
     "onnx_input": {"name": "features", "dtype": "float32", "shape": [null, 25]},
     "outputs": {"score_output": "probabilities", "score_column": 1,
                 "label_rule": "score >= threshold", "threshold": 0.5},
     "onnx_sha256": "<hex>",
     "training": {"algorithm", "rows_train", "rows_test", "seed", "positive_rate",
                  "test_auc", "test_accuracy" (at the threshold; optional), "library_versions": {...}},
     "drift_profile": {...},                                        # models.drift_profile
     "optimization": {"parent", "transformation", ...},             # only on optimized versions
     "event_schema": {...}}                                         # models.event_binding (optional)

Every malformed or inconsistent field raises :class:`ModelError` naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.contract import FeatureContract, FeatureSpec
from models.event_binding import EventBinding
from streamscore.foundation.errors import ModelError

FORMAT_VERSION = 1
LABEL_RULE = "score >= threshold"
REGISTERED_FROM_ONNX = "registered from ONNX"  # training.algorithm of a card written from an ONNX file
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_TENSOR_DTYPES = ("float32",)


def _fail(where: str, problem: str) -> ModelError:
    return ModelError(f"model card field '{where}': {problem}")


@dataclass(frozen=True)
class TensorSpec:
    """The ONNX input tensor: name, element dtype, shape (None = any batch size)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise _fail("onnx_input.name", "must be non-empty")
        if self.dtype not in _TENSOR_DTYPES:
            raise _fail("onnx_input.dtype", f"{self.dtype!r} is not one of {_TENSOR_DTYPES}")
        if len(self.shape) != 2 or self.shape[0] is not None or not isinstance(self.shape[1], int):
            raise _fail("onnx_input.shape", f"{list(self.shape)} is not [null, d]")


@dataclass(frozen=True)
class OutputSpec:
    """Where the score is in the ONNX outputs, and how a label follows from it."""

    score_output: str
    score_column: int | None  # column of a [n, k] output; None for a [n] output
    threshold: float
    label_rule: str = LABEL_RULE

    def __post_init__(self) -> None:
        if not self.score_output:
            raise _fail("outputs.score_output", "must be non-empty")
        if self.score_column is not None and (not isinstance(self.score_column, int) or self.score_column < 0):
            raise _fail("outputs.score_column", f"{self.score_column!r} is not a column index")
        if not isinstance(self.threshold, (int, float)) or not 0.0 <= self.threshold <= 1.0:
            raise _fail("outputs.threshold", f"{self.threshold!r} is not in [0, 1]")
        if self.label_rule != LABEL_RULE:
            raise _fail("outputs.label_rule", f"{self.label_rule!r} is not {LABEL_RULE!r}")


@dataclass(frozen=True)
class TrainingSummary:
    """How the model was trained and how well it did on held-out data."""

    algorithm: str
    rows_train: int
    rows_test: int
    seed: int
    positive_rate: float
    test_auc: float | None  # None: registered from a sample without labels (models register --schema)
    library_versions: Mapping[str, str] = field(default_factory=dict)
    test_accuracy: float | None = None  # label accuracy at the threshold: the reference for labelled windows
    retraining: Mapping[str, Any] = field(default_factory=dict)  # models.retrain: parent, answered triggers, data

    def __post_init__(self) -> None:
        for name in ("rows_train", "rows_test", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise _fail(f"training.{name}", "must be a non-negative integer")
        for name in ("positive_rate", "test_auc", "test_accuracy"):
            value = getattr(self, name)
            if name in ("test_accuracy", "test_auc") and value is None:
                continue
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise _fail(f"training.{name}", f"{value!r} is not in [0, 1]")


@dataclass(frozen=True)
class ModelCard:
    """A model's identity, contract, ONNX interface, checksum, training and drift reference."""

    name: str
    version: str
    features: tuple[FeatureSpec, ...]
    onnx_input: TensorSpec
    outputs: OutputSpec
    onnx_sha256: str
    training: TrainingSummary
    drift_profile: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    optimization: Mapping[str, Any] = field(default_factory=dict)  # models.optimize: parent, deltas, speed-ups
    event_schema: EventBinding | None = None  # None: the demo's io.streamscore.v1.Event

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise _fail("name", f"{self.name!r} is not a lowercase model name")
        if not isinstance(self.version, str) or not _SEMVER.match(self.version):
            raise _fail("version", f"{self.version!r} is not a semantic version")
        if not isinstance(self.onnx_sha256, str) or not _SHA256.match(self.onnx_sha256):
            raise _fail("onnx_sha256", "is not 64 lowercase hex digits")
        contract = FeatureContract(self.features)  # validates names
        if self.onnx_input.shape[1] != contract.width:
            raise _fail("onnx_input.shape", f"width {self.onnx_input.shape[1]} != {contract.width} features")
        if not isinstance(self.drift_profile, Mapping):
            raise _fail("drift_profile", "is not an object")
        profiled = self.drift_profile.get("features") if self.drift_profile else None
        if profiled is not None and sorted(profiled) != sorted(contract.names):
            raise _fail("drift_profile.features", "does not cover exactly the contract's features")
        if not isinstance(self.optimization, Mapping) or (
                self.optimization and not {"parent", "transformation"} <= set(self.optimization)):
            raise _fail("optimization", "is not an object with 'parent' and 'transformation'")

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def contract(self) -> FeatureContract:
        return FeatureContract(self.features)

    @property
    def binding(self) -> EventBinding:
        """The event schema this model scores and its id and time fields: the card's own, else the
        demo's ``io.streamscore.v1.Event`` (``event_id``, ``event_time``)."""
        if self.event_schema is not None:
            return self.event_schema
        from schemas.serde import schema_document

        return EventBinding(schema_document("event"))

    @property
    def event_record_schema(self) -> Mapping[str, Any]:
        """The Avro schema of the events this model scores (the demo's Event unless the card binds one)."""
        return self.binding.schema

    def to_dict(self) -> dict[str, Any]:
        t = self.training
        return {
            "format_version": FORMAT_VERSION, "name": self.name, "version": self.version,
            "description": self.description,
            "features": [_feature_to_dict(f) for f in self.features],
            "onnx_input": {"name": self.onnx_input.name, "dtype": self.onnx_input.dtype,
                           "shape": list(self.onnx_input.shape)},
            "outputs": {"score_output": self.outputs.score_output, "score_column": self.outputs.score_column,
                        "label_rule": self.outputs.label_rule, "threshold": self.outputs.threshold},
            "onnx_sha256": self.onnx_sha256,
            "training": {"algorithm": t.algorithm, "rows_train": t.rows_train, "rows_test": t.rows_test,
                         "seed": t.seed, "positive_rate": t.positive_rate, "test_auc": t.test_auc,
                         **({} if t.test_accuracy is None else {"test_accuracy": t.test_accuracy}),
                         "library_versions": dict(t.library_versions),
                         **({"retraining": dict(t.retraining)} if t.retraining else {})},
            "drift_profile": self.drift_profile,
            **({"optimization": self.optimization} if self.optimization else {}),
            **({"event_schema": self.event_schema.to_dict()} if self.event_schema else {}),
        }

    def to_json(self) -> str:
        """Deterministic, readable JSON (number lists kept on one line)."""
        return _dumps(self.to_dict(), 0) + "\n"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelCard:
        if not isinstance(raw, Mapping):
            raise _fail("<root>", "is not a JSON object")
        if _get(raw, "format_version", int, "format_version") != FORMAT_VERSION:
            raise _fail("format_version", f"{raw['format_version']!r} is not {FORMAT_VERSION}")
        features = _get(raw, "features", list, "features")
        return cls(
            name=_get(raw, "name", str, "name"), version=_get(raw, "version", str, "version"),
            features=tuple(_feature_from_dict(item, i) for i, item in enumerate(features)),
            onnx_input=_tensor_from_dict(_get(raw, "onnx_input", Mapping, "onnx_input")),
            outputs=_outputs_from_dict(_get(raw, "outputs", Mapping, "outputs")),
            onnx_sha256=_get(raw, "onnx_sha256", str, "onnx_sha256"),
            training=_training_from_dict(_get(raw, "training", Mapping, "training")),
            drift_profile=raw.get("drift_profile") or {}, description=raw.get("description", ""),
            optimization=raw.get("optimization") or {},
            event_schema=EventBinding.from_dict(raw["event_schema"]) if raw.get("event_schema") else None,
        )


def load_card(path: str | Path) -> ModelCard:
    """Read and validate a ``model.json``; any problem raises ModelError."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"model card {path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"model card {path}: malformed JSON: {exc}") from exc
    return ModelCard.from_dict(raw)


def _get(raw: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in raw:
        raise _fail(where, "is missing")
    value = raw[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in kinds):  # JSON true is no number
        raise _fail(where, f"{value!r} is not a {getattr(kind, '__name__', kind)}")
    return value


def _feature_from_dict(raw: Any, index: int) -> FeatureSpec:
    where = f"features[{index}]"
    if not isinstance(raw, Mapping):
        raise _fail(where, "is not an object")
    value_range = raw.get("range")
    if value_range is not None and (not isinstance(value_range, list) or
                                    not all(isinstance(v, (int, float)) for v in value_range)):
        raise _fail(f"{where}.range", f"{value_range!r} is not [min, max]")
    categories = raw.get("categories")
    if categories is not None and not isinstance(categories, list):
        raise _fail(f"{where}.categories", "is not a list")
    return FeatureSpec(
        name=_get(raw, "name", str, f"{where}.name"), field=_get(raw, "field", str, f"{where}.field"),
        kind=_get(raw, "kind", str, f"{where}.kind"), dtype=_get(raw, "dtype", str, f"{where}.dtype"),
        range=tuple(value_range) if value_range is not None else None,
        categories=tuple(categories) if categories is not None else None,
        encoding=raw.get("encoding"), unknown_category=raw.get("unknown_category"),
    )


def _feature_to_dict(spec: FeatureSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": spec.name, "field": spec.field, "kind": spec.kind, "dtype": spec.dtype}
    if spec.kind == "numeric":
        out["range"] = list(spec.range)
    else:
        out.update(categories=list(spec.categories), encoding=spec.encoding,
                   unknown_category=spec.unknown_category)
    return out


def _tensor_from_dict(raw: Mapping[str, Any]) -> TensorSpec:
    shape = _get(raw, "shape", list, "onnx_input.shape")
    return TensorSpec(name=_get(raw, "name", str, "onnx_input.name"),
                      dtype=_get(raw, "dtype", str, "onnx_input.dtype"), shape=tuple(shape))


def _outputs_from_dict(raw: Mapping[str, Any]) -> OutputSpec:
    column = raw.get("score_column")
    if column is not None and (not isinstance(column, int) or isinstance(column, bool)):
        raise _fail("outputs.score_column", f"{column!r} is not an integer")
    return OutputSpec(score_output=_get(raw, "score_output", str, "outputs.score_output"), score_column=column,
                      threshold=_get(raw, "threshold", (int, float), "outputs.threshold"),
                      label_rule=raw.get("label_rule", LABEL_RULE))


def _training_from_dict(raw: Mapping[str, Any]) -> TrainingSummary:
    def number(key: str) -> Any:
        return _get(raw, key, (int, float), f"training.{key}")

    versions = raw.get("library_versions", {})
    if not isinstance(versions, Mapping):
        raise _fail("training.library_versions", "is not an object")
    return TrainingSummary(algorithm=_get(raw, "algorithm", str, "training.algorithm"),
                           rows_train=_get(raw, "rows_train", int, "training.rows_train"),
                           rows_test=_get(raw, "rows_test", int, "training.rows_test"),
                           seed=_get(raw, "seed", int, "training.seed"),
                           positive_rate=number("positive_rate"),
                           test_auc=None if raw.get("test_auc", "missing") is None else number("test_auc"),
                           test_accuracy=number("test_accuracy") if "test_accuracy" in raw else None,
                           library_versions=dict(versions), retraining=dict(raw.get("retraining") or {}))


def _dumps(value: Any, level: int) -> str:
    """JSON with 2-space indentation, but lists of scalars on one line."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(value, Mapping) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in value):
        return "[\n" + ",\n".join(inner + _dumps(v, level + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False, allow_nan=False)
