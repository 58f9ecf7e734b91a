"""Retrain a challenger on recent labelled events: the parent's algorithm and contract, a new version.

Pure (no Kafka, no Flink): :func:`retrain` takes recent events (dicts of the parent's event schema:
the demo's ``Event`` or the card's own), their true labels and the parent model, and returns the
challenger's ONNX bytes and card, plus the parent and the challenger measured on the same held-out
recent events.

* Data: the events the parent's contract accepts (others are dropped and counted), in event-time
  order. The latest ``holdout_fraction`` (default 30 %) is held out (it asks what a promotion
  would face next); the rest trains. The threshold maximises F1, as in ``models.build_demo``,
  on 4-fold out-of-fold scores of the training part (no rows spared for a validation split).
* Model: the parent's algorithm with the parent's hyper-parameters, read back from its card
  (``sklearn.HistGradientBoostingClassifier[...]``; other algorithms are refused; a parent registered
  from ONNX, whose card records none, is retrained with the hyper-parameters the request gives), converted
  with the demo build's skl2onnx settings and checked against sklearn's scores to 1e-5.
* Card: the parent's contract and ONNX interface, the next free minor version (1.0.0 -> 1.1.0),
  ``training`` on the recent data (``test_auc``/``test_accuracy`` on the held-out events, the
  reference for the sidecar's labelled windows) with a ``retraining`` block naming the parent, the
  triggers and windows it answers, the data it used and both models' held-out numbers; the drift
  profile of the recent training rows (the new reference) with the challenger's held-out scores.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.build_demo import (
    _best_f1_threshold,
    _check_onnx_scores,
    _library_versions,
    _onnx_scores,
    _to_onnx,
)
from models.card import REGISTERED_FROM_ONNX, ModelCard, OutputSpec, TensorSpec, TrainingSummary
from models.drift_profile import build_profile, score_profile
from models.registry import LoadedModel, sha256_hex
from models.runtime import OnnxScorer
from streamscore.foundation.errors import ModelError

MIN_LABELLED = 3000
HOLDOUT_FRACTION = 0.3
THRESHOLD_FOLDS = 4
ALGORITHM = "sklearn.HistGradientBoostingClassifier"
CHALLENGER_INPUT, CHALLENGER_SCORE_OUTPUT = "features", "probabilities"  # skl2onnx's names, zipmap off
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


class TooFewLabelsError(ModelError):
    """Not enough labelled recent events (or of one class) to train and judge a challenger."""


@dataclass(frozen=True)
class RetrainRequest:
    """What to answer and how: trigger ids and windows, where the data came from, the split."""

    answers: tuple[str, ...] = ()  # RETRAIN_TRIGGER message ids this challenger answers
    window_ids: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)  # topics, offsets: recorded in the card
    min_labelled: int = MIN_LABELLED
    holdout_fraction: float = HOLDOUT_FRACTION
    seed: int = 0
    taken_versions: tuple[str, ...] = ()  # versions of the model already registered
    model_params: Mapping[str, Any] | None = None  # override the parent's (tests use tiny models)

    def __post_init__(self) -> None:
        if self.min_labelled < 100 or not 0.05 <= self.holdout_fraction <= 0.5:
            raise ModelError(f"RetrainRequest: need min_labelled >= 100 and holdout_fraction in [0.05, 0.5] "
                             f"(got {self.min_labelled}, {self.holdout_fraction})")


@dataclass(frozen=True)
class Evaluation:
    """One model on the held-out recent events."""

    auc: float
    accuracy: float
    rows: int
    positives: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RetrainResult:
    card: ModelCard
    onnx_bytes: bytes
    parent: Evaluation
    challenger: Evaluation

    def summary(self) -> str:
        r = self.card.training.retraining
        return (f"{r['parent']} -> {self.card.ref}: trained on {r['data']['rows_train']} recent labelled events, "
                f"held-out {self.parent.rows} ({self.parent.positives} positive): AUC {self.parent.auc:.4f} -> "
                f"{self.challenger.auc:.4f}, accuracy {self.parent.accuracy:.4f} -> {self.challenger.accuracy:.4f}")


def next_version(version: str, taken: Sequence[str] = ()) -> str:
    """The next minor release after ``version`` that is not taken: 1.0.0 -> 1.1.0 (-> 1.2.0 if taken)."""
    match = _VERSION.match(version)
    if not match:
        raise ModelError(f"{version!r} is not a semantic version")
    major, minor = int(match.group(1)), int(match.group(2)) + 1
    taken_releases = {v for v in taken if "+" not in v and "-" not in v}
    while f"{major}.{minor}.0" in taken_releases:
        minor += 1
    return f"{major}.{minor}.0"


def challenger_params(card: ModelCard, request: RetrainRequest) -> dict[str, Any]:
    """The parent's hyper-parameters with the request's on top; a parent registered from an ONNX file
    (``models register --onnx``) records none, so its challenger is trained with the request's alone."""
    _check_params(request.model_params or {})
    if card.training.algorithm == REGISTERED_FROM_ONNX and request.model_params is not None:
        return dict(request.model_params)
    return {**parent_params(card), **(request.model_params or {})}


def _check_params(params: Mapping[str, Any]) -> None:
    """Hyper-parameters the algorithm has (one line naming the others, not a TypeError in training)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    known = set(HistGradientBoostingClassifier().get_params())
    unknown = sorted(set(params) - known - {"random_state"})
    if unknown or "random_state" in params:
        raise ModelError(f"{ALGORITHM} has no hyper-parameter {', '.join(unknown)}" if unknown else
                         "random_state comes from the retraining seed, not the hyper-parameters")
    try:
        HistGradientBoostingClassifier(**params)._validate_params()
    except (ValueError, TypeError) as exc:  # sklearn's InvalidParameterError is a ValueError
        raise ModelError(f"{ALGORITHM}: {str(exc).splitlines()[0]}") from exc


def check_retrainable(card: ModelCard, request: RetrainRequest = RetrainRequest()) -> None:
    """Refuse, before any data is read, a parent whose algorithm or hyper-parameters this retrainer cannot
    reproduce (a parent registered from ONNX: unless the request gives its hyper-parameters)."""
    challenger_params(card, request)


def parent_params(card: ModelCard) -> dict[str, Any]:
    """The parent's hyper-parameters, read back from ``training.algorithm``."""
    algorithm = card.training.algorithm
    if not algorithm.startswith(ALGORITHM + "["):
        raise ModelError(f"{card.ref} was trained with {algorithm.split('[')[0]!r}: retraining supports "
                         f"{ALGORITHM} only (a model registered from ONNX: with its hyper-parameters given, "
                         "retrain --model-params JSON)")
    try:
        return dict(ast.literal_eval(algorithm[len(ALGORITHM):]))
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ModelError(f"{card.ref}: cannot read hyper-parameters from {algorithm!r}") from exc


def labelled_matrix(card: ModelCard, events: Sequence[Mapping[str, Any]],
                    labels: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(matrix, labels, event times) of the events the contract accepts, in event-time order (the card's
    time field; a card binding none keeps the events' order)."""
    if len(events) != len(labels):
        raise ModelError(f"retrain: {len(events)} events but {len(labels)} labels")
    matrix, _rejects, valid = card.contract.to_matrix(events)
    valid = np.asarray(valid, dtype=np.int64)
    truth = np.asarray(labels, dtype=np.int64)[valid]
    if truth.size and not np.isin(truth, (0, 1)).all():
        raise ModelError("retrain: labels must be 0 or 1")
    time_field = card.binding.time_field
    times = np.asarray([int(events[i].get(time_field) or 0) if time_field else 0 for i in valid], dtype=np.int64)
    order = np.argsort(times, kind="stable")
    return matrix[order], truth[order], times[order]


def _source_note(source: Mapping[str, Any]) -> str:
    """What was read, where the events came from: a wrong topic or schema shows as undecodable events."""
    if "events_read" not in source:
        return ""
    bad = source.get("events_undecodable") or {}
    undecodable = f", {sum(bad.values())} undecodable ({', '.join(sorted(bad))}: another topic or schema?)" \
        if bad else ""
    return (f" ({source['events_read']} events read from {source['events_topic']}{undecodable}, "
            f"{source['labels_read']} labels, {source['joined']} joined by id)")


def _split(matrix: np.ndarray, labels: np.ndarray, request: RetrainRequest) -> dict[str, np.ndarray]:
    """The latest events held out; the rest trains (and picks the threshold out of fold)."""
    cut = len(labels) - round(len(labels) * request.holdout_fraction)
    fit_y, hold_y = labels[:cut], labels[cut:]
    for part, values in (("training", fit_y), ("held-out", hold_y)):
        if min(int(values.sum()), int(len(values) - values.sum())) < 10:
            raise TooFewLabelsError(f"the {part} part of the recent events has {int(values.sum())} positive and "
                                    f"{int(len(values) - values.sum())} negative labels; need >= 10 of each")
    return {"x_fit": matrix[:cut], "y_fit": fit_y, "x_hold": matrix[cut:], "y_hold": hold_y}


def evaluate(labels: np.ndarray, scores: np.ndarray, threshold: float) -> Evaluation:
    from sklearn.metrics import roc_auc_score

    return Evaluation(auc=round(float(roc_auc_score(labels, scores)), 6),
                      accuracy=round(float(np.mean((scores >= threshold) == labels)), 6),
                      rows=len(labels), positives=int(labels.sum()))


@dataclass(frozen=True)
class _Challenger:
    """A challenger fitted on the training part: its ONNX bytes, threshold and held-out scores and judgement."""

    version: str
    params: dict[str, Any]
    seed: int
    onnx_bytes: bytes
    threshold: float
    scores: np.ndarray
    held_out: Evaluation


def _fit(parts: dict[str, np.ndarray], params: dict[str, Any], seed: int, card: ModelCard,
         version: str) -> _Challenger:
    """A challenger fitted on the training part and judged on the held-out part; the threshold
    maximises F1 on out-of-fold scores (a few hundred recent positives are too few to spare a
    validation split)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    def model():
        return HistGradientBoostingClassifier(random_state=seed, **params)

    folds = StratifiedKFold(n_splits=THRESHOLD_FOLDS, shuffle=True, random_state=seed)
    out_of_fold = cross_val_predict(model(), parts["x_fit"], parts["y_fit"], cv=folds, method="predict_proba")
    threshold = _best_f1_threshold(parts["y_fit"], out_of_fold[:, 1])
    fitted = model().fit(parts["x_fit"], parts["y_fit"])
    onnx_bytes = _to_onnx(fitted, card.contract.width, card.name, version)
    _check_onnx_scores(onnx_bytes, parts["x_hold"], fitted.predict_proba(parts["x_hold"])[:, 1])
    scores = _onnx_scores(onnx_bytes, parts["x_hold"])
    return _Challenger(version, params, seed, onnx_bytes, threshold, scores,
                       evaluate(parts["y_hold"], scores, threshold))


def retrain(parent: LoadedModel, events: Sequence[Mapping[str, Any]], labels: Sequence[int] | np.ndarray,
            request: RetrainRequest = RetrainRequest()) -> RetrainResult:
    """Train, convert, evaluate against the parent and card a challenger (see the module docstring)."""
    matrix, truth, times = labelled_matrix(parent.card, events, labels)
    if len(truth) < request.min_labelled:
        raise TooFewLabelsError(f"{len(truth)} labelled recent events for {parent.card.ref}; retraining needs "
                                f">= {request.min_labelled}{_source_note(request.source)}")
    params = challenger_params(parent.card, request)
    version = next_version(parent.card.version, (parent.card.version, *request.taken_versions))
    parts = _split(matrix, truth, request)
    challenger = _fit(parts, params, request.seed, parent.card, version)
    parent_eval = evaluate(parts["y_hold"], OnnxScorer(parent).predict_batch(parts["x_hold"]),
                           parent.card.outputs.threshold)
    timed = parent.card.binding.time_field is not None
    data = {**request.source, "rows": len(truth), "rows_dropped": int(len(events) - len(truth)),
            "rows_train": len(parts["y_fit"]), "threshold": f"best F1, {THRESHOLD_FOLDS}-fold out of fold",
            "rows_holdout": len(parts["y_hold"]),
            "holdout": "latest by event time" if timed else "the last read (no time field: the topic's order)",
            "event_time_from": int(times[0]) if timed else None, "event_time_to": int(times[-1]) if timed else None}
    retraining = {"parent": parent.card.ref, "answers": list(request.answers),
                  "window_ids": list(request.window_ids), "data": data,
                  "holdout_parent": parent_eval.as_dict(), "holdout_challenger": challenger.held_out.as_dict()}
    card = _challenger_card(parent.card, challenger, parts, retraining)
    return RetrainResult(card=card, onnx_bytes=challenger.onnx_bytes, parent=parent_eval,
                         challenger=challenger.held_out)


def _challenger_card(parent: ModelCard, challenger: _Challenger, parts: dict[str, np.ndarray],
                     retraining: dict[str, Any]) -> ModelCard:
    truth = np.concatenate([parts["y_fit"], parts["y_hold"]])
    params = challenger.params
    training = TrainingSummary(
        algorithm=f"{ALGORITHM}{sorted(params.items())}", rows_train=len(parts["y_fit"]),
        rows_test=challenger.held_out.rows, seed=challenger.seed, positive_rate=round(float(truth.mean()), 6),
        test_auc=challenger.held_out.auc, test_accuracy=challenger.held_out.accuracy,
        library_versions=_library_versions(), retraining=retraining)
    # the challenger's graph is the retrainer's export (models.build_demo._to_onnx), whatever the parent's was
    # (a model of your own may name its input X and its score output anything)
    outputs = OutputSpec(score_output=CHALLENGER_SCORE_OUTPUT, score_column=1, threshold=challenger.threshold)
    onnx_input = TensorSpec(name=CHALLENGER_INPUT, dtype="float32", shape=(None, parent.contract.width))
    profile = {**build_profile(parent.contract, parts["x_fit"]), "score": score_profile(challenger.scores)}
    return dataclasses.replace(
        parent, version=challenger.version, onnx_sha256=sha256_hex(challenger.onnx_bytes), outputs=outputs,
        onnx_input=onnx_input,
        training=training, drift_profile=profile, optimization={},
        description=f"Challenger retrained from {parent.ref} on {len(truth)} recent labelled events.")
