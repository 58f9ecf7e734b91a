"""Labelled windows: accuracy and AUC of the model on delayed ground truth, tiered like drift.

The sidecar joins ``labels`` to ``scored`` by event id; each joined row (score, predicted
label, true label) is counted into a fixed-length int64 vector, mergeable by addition across
micro-batches and subtasks, so a window's memory does not grow with its size::

    [n, correct, pos_hist[0..B), neg_hist[0..B)]     (B score bins over [0, 1])

AUC comes from the two score histograms (Mann-Whitney with ties within a bin counted half;
with 200 bins the binning error is well under the window's own standard error). Accuracy
is judged against the model card's held-out accuracy with :func:`drift.accuracy.judge_accuracy`
(a drop counts only when significant for the window's size), and the tiers of the design
guide's table: < 2 points SMALL, 2-5 MODERATE, > 5 SEVERE.

>>> counts = label_counts(np.array([0.9, 0.2, 0.7]), np.array([1, 0, 1]), np.array([1, 0, 0]))
>>> summary = summarize(counts)
>>> (summary.n, round(summary.accuracy, 3), summary.auc)
(3, 0.667, 1.0)
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from drift.accuracy import AccuracyVerdict, judge_accuracy
from drift.errors import DriftError
from drift.settings import Tier

SCORE_BINS = 200
HEADER = 2  # n, correct
VECTOR_LENGTH = HEADER + 2 * SCORE_BINS


def label_counts(scores: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """The count vector of one batch of joined rows."""
    scores = np.asarray(scores, dtype=np.float64)
    predicted, actual = np.asarray(predicted, dtype=np.int64), np.asarray(actual, dtype=np.int64)
    if not (len(scores) == len(predicted) == len(actual)):
        raise DriftError(f"label_counts: lengths differ ({len(scores)}, {len(predicted)}, {len(actual)})")
    bins = np.clip((np.nan_to_num(scores, nan=0.0) * SCORE_BINS).astype(np.int64), 0, SCORE_BINS - 1)
    vector = np.zeros(VECTOR_LENGTH, dtype=np.int64)
    vector[0] = len(scores)
    vector[1] = int(np.count_nonzero(predicted == actual))
    positive = actual == 1
    vector[HEADER:HEADER + SCORE_BINS] = np.bincount(bins[positive], minlength=SCORE_BINS)
    vector[HEADER + SCORE_BINS:] = np.bincount(bins[~positive], minlength=SCORE_BINS)
    return vector


def merge(current: np.ndarray | None, partial: np.ndarray) -> np.ndarray:
    if len(partial) != VECTOR_LENGTH or (current is not None and len(current) != VECTOR_LENGTH):
        raise DriftError(f"labelled counts must have length {VECTOR_LENGTH}")
    return partial.copy() if current is None else current + partial


def binned_auc(positives: np.ndarray, negatives: np.ndarray) -> float | None:
    """P(score of a positive > score of a negative), ties half; None without both classes."""
    n_pos, n_neg = int(positives.sum()), int(negatives.sum())
    if n_pos == 0 or n_neg == 0:
        return None
    negatives_below = np.cumsum(negatives) - negatives
    wins = float(np.sum(positives * negatives_below)) + 0.5 * float(np.sum(positives * negatives))
    return wins / (n_pos * n_neg)


@dataclass(frozen=True)
class LabelledSummary:
    n: int
    accuracy: float
    auc: float | None
    positives: int


def summarize(vector: np.ndarray) -> LabelledSummary:
    n = int(vector[0])
    if n < 1:
        raise DriftError("a labelled window needs at least one joined row")
    positives, negatives = vector[HEADER:HEADER + SCORE_BINS], vector[HEADER + SCORE_BINS:]
    return LabelledSummary(n, int(vector[1]) / n, binned_auc(positives, negatives), int(positives.sum()))


@dataclass(frozen=True)
class LabelledDecision:
    """One closed labelled window: its numbers, the accuracy verdict, and what to emit."""

    sequence: int
    summary: LabelledSummary
    verdict: AccuracyVerdict
    alert: bool  # the window starts an episode or raises its tier (never repeated within an episode)
    trigger: Tier | None  # the episode is confirmed (k of the last m windows): trigger once, at its worst tier


class LabelledEpisodes:
    """Tiers over consecutive labelled windows, without duplicates.

    An alert when a window starts an episode or raises its tier; a retraining trigger once per
    episode, when ``confirm_k`` of the last ``confirm_m`` windows have a significant drop (a single
    unlucky window does not retrain a model), at the episode's worst tier so far. A window with no
    significant drop ends the episode's alerting (a later drop alerts anew) and never triggers. A trigger
    re-arms only once none of the last ``confirm_m`` windows has a significant drop, so a lucky window
    inside a lasting drop (seen at parallelism 2, where windows mix partitions' labels) does not retrain
    twice. State round-trips through bytes for Flink state.
    """

    def __init__(self, reference_accuracy: float, reference_n: int | None = None, *, alpha: float = 0.01,
                 confirm_k: int = 2, confirm_m: int = 3):
        self.reference_accuracy, self.reference_n, self.alpha = reference_accuracy, reference_n, alpha
        self.confirm_k, self.confirm_m = confirm_k, confirm_m
        self.sequence, self.episode_tier, self.triggered, self.recent = 0, Tier.NONE, False, []

    def decide(self, vector: np.ndarray) -> LabelledDecision:
        summary = summarize(vector)
        verdict = judge_accuracy(self.reference_accuracy, summary.accuracy, summary.n, alpha=self.alpha,
                                 reference_n=self.reference_n)
        alert = verdict.tier > self.episode_tier
        self.recent = (self.recent + [int(verdict.tier)])[-self.confirm_m:]
        if verdict.tier == Tier.NONE:
            self.episode_tier = Tier.NONE
        else:
            self.episode_tier = max(self.episode_tier, verdict.tier)
        if not any(self.recent):  # the drop is gone from the last confirm_m windows: a trigger re-arms
            self.triggered = False
        trigger = None
        if verdict.tier != Tier.NONE and not self.triggered and sum(t > 0 for t in self.recent) >= self.confirm_k:
            trigger, self.triggered = self.episode_tier, True
        decision = LabelledDecision(self.sequence, summary, verdict, alert, trigger)
        self.sequence += 1
        return decision

    def snapshot(self) -> bytes:
        return json.dumps({"sequence": self.sequence, "episode_tier": int(self.episode_tier),
                           "triggered": self.triggered, "recent": self.recent}).encode()

    def restore(self, state: bytes | None) -> None:
        raw = json.loads(state) if state else {}
        self.sequence = int(raw.get("sequence", 0))
        self.episode_tier = Tier(int(raw.get("episode_tier", 0)))
        self.triggered = bool(raw.get("triggered", False))
        self.recent = [int(t) for t in raw.get("recent", [])]
