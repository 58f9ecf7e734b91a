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
import shutil
import tempfile
from pathlib import Path

import numpy as np

from models.card import ModelCard, load_card
from models.card_builder import CardRequest
from models.contract import check_against_event_schema
from models.registry import (
    CARD_FILE,
    ONNX_FILE,
    LoadedModel,
    ModelRegistry,
    check_onnx_against_card,
    sha256_hex,
)
from schemas.json_lines import read_json_lines
from streamscore.foundation.errors import InputError, ModelError


def read_sample(path: str | Path) -> list[dict]:
    """The events of a JSON-lines training sample; a file or line that is not one raises ModelError naming it."""
    try:
        return read_json_lines(path)
    except InputError as exc:
        raise ModelError(f"training sample: {exc}") from exc


def read_training_sample(path: str | Path, card: ModelCard) -> np.ndarray:
    """The contract's feature matrix of a JSON-lines sample of events (rows the contract rejects are skipped)."""
    matrix, _rejects, valid = card.contract.to_matrix(read_sample(path))
    if len(valid) < 100:
        raise ModelError(f"training sample {path}: {len(valid)} usable events; a reference profile needs >= 100")
    return matrix


def _scores(card: ModelCard, onnx_bytes: bytes, matrix: np.ndarray) -> np.ndarray:
    from models.runtime import OnnxScorer

    scorer = OnnxScorer(LoadedModel(ref=None, card=card, onnx_bytes=onnx_bytes, directory=Path(".")))
    return np.asarray(scorer.predict_batch(matrix), dtype=np.float64)


def _with_profile(card: ModelCard, sample: np.ndarray, scores: np.ndarray) -> ModelCard:
    """The card with the drift reference profile of ``sample`` and the model's ``scores`` on it."""
    from models.drift_profile import build_profile, score_profile

    profile = {**build_profile(card.contract, sample), "score": score_profile(scores)}
    return dataclasses.replace(card, drift_profile=profile)


def _read_onnx(onnx_path: str | Path) -> bytes:
    try:
        return Path(onnx_path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read ONNX file {onnx_path}: {exc.strerror}") from exc


def register_model(onnx_path: str | Path, card_path: str | Path, registry_dir: str | Path | None = None,
                   training_sample: str | Path | None = None) -> LoadedModel:
    """Copy ``onnx_path`` + card into ``<registry>/<name>/<version>/``; returns the loaded, verified model."""
    card = load_card(card_path)
    onnx_bytes = _read_onnx(onnx_path)
    card = dataclasses.replace(card, onnx_sha256=sha256_hex(onnx_bytes))
    check_onnx_against_card(card, onnx_bytes)
    check_against_event_schema(card.contract, card.event_record_schema)
    if training_sample is not None:
        matrix = read_training_sample(training_sample, card)
        card = _with_profile(card, matrix, _scores(card, onnx_bytes, matrix))
    return _store(card, onnx_bytes, ModelRegistry(registry_dir))


def register_card(card: ModelCard, onnx_bytes: bytes, registry_dir: str | Path | None = None) -> LoadedModel:
    """Register a card built in memory (a retrained challenger) with its ONNX bytes, checked as
    :func:`register_model` checks a card read from a file."""
    card = dataclasses.replace(card, onnx_sha256=sha256_hex(onnx_bytes))
    check_onnx_against_card(card, onnx_bytes)
    check_against_event_schema(card.contract, card.event_record_schema)
    return _store(card, onnx_bytes, ModelRegistry(registry_dir))


def register_from_schema(onnx_path: str | Path, request: CardRequest, training_sample: str | Path,
                         registry_dir: str | Path | None = None) -> LoadedModel:
    """Write the card for the user (``models.card_builder``) from the event schema and a training sample,
    check it against the ONNX graph, add the drift profile and how the model does on the sample."""
    from models.card_builder import build_card, sample_training

    events = read_sample(training_sample)
    onnx_bytes = _read_onnx(onnx_path)
    card = build_card(request, onnx_bytes, events)
    card = dataclasses.replace(card, onnx_sha256=sha256_hex(onnx_bytes))
    check_onnx_against_card(card, onnx_bytes)
    check_against_event_schema(card.contract, card.event_record_schema)
    matrix, rejects, _valid = card.contract.to_matrix(events)
    if rejects:  # the ranges come from this sample, so only a type slip is rejected
        raise ModelError(f"training sample {training_sample}: event {rejects[0][0] + 1}: {rejects[0][1]}")
    scores = _scores(card, onnx_bytes, matrix)  # one session, one pass: the profile and the summary share it
    card = _with_profile(card, matrix, scores)
    labels = [event.get(request.label_field) for event in events] if request.label_field else None
    card = dataclasses.replace(card, training=sample_training(card, scores, labels))
    return _store(card, onnx_bytes, ModelRegistry(registry_dir))


def _store(card: ModelCard, onnx_bytes: bytes, registry: ModelRegistry) -> LoadedModel:
    """Write a new version atomically; an existing name/version is refused (a version never changes)."""
    target = registry.directory(card.name, card.version)
    if target.exists():
        raise ModelError(f"model {card.ref} is already registered at {target}; a version never changes: "
                         f"choose a new version")
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
