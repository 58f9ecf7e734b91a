"""``streamscore models register``: bring an ONNX file and its card into the registry as a new version.

The card names the model and its semantic version; an existing name/version is refused (a
registered version never changes, so a version in a scored record identifies its model). The
card's ``onnx_sha256`` is set from the file being registered, then the card is checked against
the ONNX graph (input name/dtype/width, score output) and the contract against the event schema.
With a training sample (JSON lines of events), the drift reference profile is computed from it:
feature distributions, and the model's own scores on the sample.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from models.card import ModelCard, load_card
from models.contract import check_against_event_schema
from models.registry import (
    CARD_FILE,
    ONNX_FILE,
    LoadedModel,
    ModelRegistry,
    check_onnx_against_card,
    sha256_hex,
)
from schemas import load_schema
from streamscore.foundation.errors import ModelError


def read_training_sample(path: str | Path, card: ModelCard) -> np.ndarray:
    """The contract's feature matrix of a JSON-lines sample of events (rows the contract rejects are skipped)."""
    events = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ModelError(f"training sample {path} line {number}: not JSON: {exc.msg}") from exc
    matrix, _rejects, valid = card.contract.to_matrix(events)
    if len(valid) < 100:
        raise ModelError(f"training sample {path}: {len(valid)} usable events; a reference profile needs >= 100")
    return matrix


def _with_profile(card: ModelCard, onnx_bytes: bytes, sample: np.ndarray) -> ModelCard:
    from models.drift_profile import build_profile, score_profile
    from models.runtime import OnnxScorer

    scorer = OnnxScorer(LoadedModel(ref=None, card=card, onnx_bytes=onnx_bytes, directory=Path(".")))
    profile = {**build_profile(card.contract, sample), "score": score_profile(scorer.predict_batch(sample))}
    return dataclasses.replace(card, drift_profile=profile)


def register_model(onnx_path: str | Path, card_path: str | Path, registry_dir: str | Path | None = None,
                   training_sample: str | Path | None = None) -> LoadedModel:
    """Copy ``onnx_path`` + card into ``<registry>/<name>/<version>/``; returns the loaded, verified model."""
    card = load_card(card_path)
    registry = ModelRegistry(registry_dir)
    target = registry.directory(card.name, card.version)
    if target.exists():
        raise ModelError(f"model {card.ref} is already registered at {target}; a version never changes: "
                         f"choose a new version")
    try:
        onnx_bytes = Path(onnx_path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read ONNX file {onnx_path}: {exc.strerror}") from exc
    card = dataclasses.replace(card, onnx_sha256=sha256_hex(onnx_bytes))
    check_onnx_against_card(card, onnx_bytes)
    check_against_event_schema(card.contract, load_schema("event"))
    if training_sample is not None:
        card = _with_profile(card, onnx_bytes, read_training_sample(training_sample, card))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{card.version}-", dir=target.parent))
    try:
        (staging / ONNX_FILE).write_bytes(onnx_bytes)
        (staging / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        staging.rename(target)  # atomic: a reader sees the whole version or none of it
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise ModelError(f"cannot write {target}: {exc}") from exc
    return registry.load(card.name, card.version)
