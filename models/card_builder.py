"""A model card written for the user: the contract from the event schema, its ranges and categories from a
training sample, the ONNX interface read off the graph, the drift profile from the sample.

``streamscore models register --onnx model.onnx --schema events.avsc --features a,b,c [--categorical x]
--training-sample sample.jsonl`` calls :func:`build_card`, so no one hand-writes a card:

- a feature is numeric when its schema type is int, long, float, double or boolean; a string or enum
  field must be named in ``--categorical`` (its categories: an enum's symbols, else the sample's
  distinct values, sorted); nullable fields are refused (the contract needs a value);
- a numeric range is the sample's [min, max] widened by :data:`RANGE_MARGIN` of its span on each
  side (booleans: [0, 1]); a value outside it is a CONTRACT dead letter, so the margin leaves room
  for live data a little beyond the sample's;
- the ONNX input is the graph's one float32 input of width len(features); the score is the
  ``probabilities`` output's column 1 (a binary classifier, as skl2onnx writes it with
  ``zipmap=False``), else the one float output of shape [n] or [n, 1];
- with ``label_field`` set (0 or 1 in every event), the sample is the test set: the card's AUC,
  accuracy, test rows and positive rate are the model's on it; without labels the AUC is unknown
  (null) and the positive rate is the share the model labels positive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.card import LABEL_RULE, REGISTERED_FROM_ONNX, ModelCard, OutputSpec, TensorSpec, TrainingSummary
from models.contract import FeatureSpec
from models.event_binding import EventBinding, record_fields
from streamscore.foundation.errors import ModelError

RANGE_MARGIN = 0.1
NUMERIC_TYPES = ("int", "long", "float", "double", "boolean")
MIN_SAMPLE = 100


@dataclass(frozen=True)
class CardRequest:
    """What the user says about a model; everything else is derived."""

    name: str
    version: str
    binding: EventBinding
    features: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    label_field: str | None = None
    threshold: float = 0.5
    description: str = ""


def _type_name(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return "null" if "null" in avro_type else "|".join(map(_type_name, avro_type))
    if isinstance(avro_type, Mapping):
        return "enum" if avro_type.get("type") == "enum" else _type_name(avro_type.get("type"))
    return str(avro_type)


def _column(sample: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    values = [event.get(name) for event in sample]
    if any(v is None for v in values):
        raise ModelError(f"training sample: {sum(v is None for v in values)} event(s) lack feature '{name}'")
    return values


def _numeric(name: str, dtype: str, values: list[Any]) -> FeatureSpec:
    if dtype == "boolean":
        return FeatureSpec(name, name, "numeric", dtype, range=(0.0, 1.0))
    try:
        numbers = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an int beyond any float (10**400)
        slip = next((v for v in values if not isinstance(v, (int, float)) or isinstance(v, bool)
                     or (isinstance(v, int) and abs(v) > 2**1023)), None)
        raise ModelError(f"training sample: feature '{name}' ({dtype}) has a value that is not a number a "
                         f"float64 holds: {repr(slip)[:40]}") from exc
    if not np.isfinite(numbers).all():
        raise ModelError(f"training sample: feature '{name}' has NaN or infinite values")
    low, high = float(numbers.min()), float(numbers.max())
    margin = RANGE_MARGIN * (high - low) if high > low else max(abs(high), 1.0) * RANGE_MARGIN
    low, high = low - margin, high + margin
    if dtype in ("int", "long"):
        low, high = float(math.floor(low)), float(math.ceil(high))
    return FeatureSpec(name, name, "numeric", dtype, range=(round(low, 9), round(high, 9)))


def _categorical(name: str, avro_type: Any, values: list[Any]) -> FeatureSpec:
    if isinstance(avro_type, Mapping) and avro_type.get("type") == "enum":
        categories = tuple(avro_type["symbols"])
    else:
        categories = tuple(sorted({str(v) for v in values}))
    return FeatureSpec(name, name, "categorical", "string", categories=categories, encoding="ordinal",
                       unknown_category="reject")


def contract_from_schema(schema: Mapping[str, Any], request: CardRequest,
                         sample: Sequence[Mapping[str, Any]]) -> tuple[FeatureSpec, ...]:
    """The feature specs of ``request.features``, in that order, typed by ``schema`` and sized by ``sample``."""
    fields = record_fields(schema)
    unknown = [c for c in request.categorical if c not in request.features]
    if unknown:
        raise ModelError(f"--categorical {', '.join(unknown)}: not among --features")
    specs = []
    for name in request.features:
        if name not in fields:
            raise ModelError(f"feature '{name}' is not a field of {schema.get('name')} "
                             f"(fields: {', '.join(fields)})")
        kind = _type_name(fields[name])
        if kind == "null":
            raise ModelError(f"feature '{name}' is nullable in the schema; the contract needs a value")
        if name in request.categorical:
            if kind not in ("string", "enum"):
                raise ModelError(f"feature '{name}' is {kind}; --categorical takes string or enum fields")
            specs.append(_categorical(name, fields[name], _column(sample, name)))
        elif kind in NUMERIC_TYPES:
            specs.append(_numeric(name, kind, _column(sample, name)))
        else:
            raise ModelError(f"feature '{name}' is {kind}: list it in --categorical, or leave it out")
    return tuple(specs)


def onnx_interface(onnx_bytes: bytes, width: int) -> tuple[TensorSpec, str, int | None]:
    """(the input spec, the score output's name, its column or None) read off the ONNX graph."""
    import onnx

    try:
        graph = onnx.load_model_from_string(onnx_bytes).graph
    except Exception as exc:  # protobuf raises its own DecodeError family
        raise ModelError(f"not a valid ONNX model: {exc}") from exc
    initializers = {init.name for init in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelError(f"the ONNX graph has inputs {inputs}; streamscore feeds one [n, {width}] float32 matrix")
    outputs = {o.name: [d.dim_value or None for d in o.type.tensor_type.shape.dim] for o in graph.output}
    tensor = TensorSpec(inputs[0], "float32", (None, width))
    if "probabilities" in outputs:
        if outputs["probabilities"][1:] not in ([2], [None]):
            raise ModelError(f"the 'probabilities' output has shape {outputs['probabilities']}: streamscore scores "
                             f"binary classifiers (column 1: the positive class)")
        return tensor, "probabilities", 1
    floats = [o.name for o in graph.output if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    if len(floats) != 1 or outputs[floats[0]][1:] not in ([], [1]):
        raise ModelError(f"cannot tell the score among the ONNX outputs {outputs}: export a binary classifier "
                         f"with a 'probabilities' output (skl2onnx: options={{'zipmap': False}}), or one float "
                         f"output of shape [n] or [n, 1]")
    return tensor, floats[0], (0 if len(outputs[floats[0]]) == 2 else None)


def build_card(request: CardRequest, onnx_bytes: bytes, sample: Sequence[Mapping[str, Any]]) -> ModelCard:
    """A complete card (drift profile and sha256 are added by ``models.register``)."""
    if len(sample) < MIN_SAMPLE:
        raise ModelError(f"training sample: {len(sample)} events; the card needs >= {MIN_SAMPLE}")
    features = contract_from_schema(request.binding.schema, request, sample)
    tensor, score_output, column = onnx_interface(onnx_bytes, len(features))
    outputs = OutputSpec(score_output, column, request.threshold, LABEL_RULE)
    training = TrainingSummary(algorithm=REGISTERED_FROM_ONNX, rows_train=len(sample), rows_test=0, seed=0,
                               positive_rate=0.0, test_auc=None)
    return ModelCard(name=request.name, version=request.version, features=features, onnx_input=tensor,
                     outputs=outputs, onnx_sha256="0" * 64, training=training, description=request.description,
                     event_schema=request.binding)


def _auc(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney with tied ranks); None when one class is absent."""
    from scipy.stats import rankdata

    positives = int(truth.sum())
    negatives = len(truth) - positives
    if not positives or not negatives:
        return None
    ranks = rankdata(scores)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def sample_training(card: ModelCard, scores: np.ndarray, labels: Sequence[Any] | None) -> TrainingSummary:
    """The card's training summary from the model's scores on the sample (and its labels, 0/1, if any)."""
    threshold = card.outputs.threshold
    predicted = scores >= threshold
    auc = accuracy = None
    if labels is not None:
        if any(label not in (0, 1, True, False) for label in labels):
            raise ModelError("training sample: the label field must be 0 or 1 in every event")
        truth = np.asarray(labels, dtype=bool)
        auc = _auc(scores, truth)
        accuracy = round(float((predicted == truth).mean()), 6)
        return TrainingSummary(algorithm=REGISTERED_FROM_ONNX, rows_train=0, rows_test=len(scores), seed=0,
                               positive_rate=round(float(truth.mean()), 6),
                               test_auc=None if auc is None else round(auc, 6), test_accuracy=accuracy)
    return TrainingSummary(algorithm=REGISTERED_FROM_ONNX, rows_train=0, rows_test=0, seed=0,
                           positive_rate=round(float(predicted.mean()), 6), test_auc=None)
