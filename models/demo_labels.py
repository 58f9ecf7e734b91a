"""Delayed ground truth for demo events: the ``labels`` topic's records, optionally with concept drift.

The demo generator knows each event's true class (the known fraud mechanism, see
``models.demo_data``). A label becomes known ``delay_ms`` after its event (a chargeback
arrives later than the payment). ``flip_rate`` after ``flip_after`` events models concept
drift: the world stops agreeing with the model although the features look the same, which
only labelled windows (accuracy, AUC) can see. Pure: no Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from streamscore.foundation.errors import ModelError


@dataclass(frozen=True)
class LabelPlan:
    delay_ms: int = 5_000
    flip_rate: float = 0.0  # fraction of labels flipped from ``flip_after`` on (concept drift)
    flip_after: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.delay_ms < 0 or not 0.0 <= self.flip_rate <= 1.0 or self.flip_after < 0:
            raise ModelError(f"LabelPlan: need delay_ms >= 0, flip_rate in [0, 1], flip_after >= 0 (got {self})")


def label_records(events: Sequence[dict], labels: Sequence[int] | np.ndarray, plan: LabelPlan) -> list[dict]:
    """One ``labels`` record per event: its id, true class (flipped per ``plan``), event and label times."""
    if len(events) != len(labels):
        raise ModelError(f"label_records: {len(events)} events but {len(labels)} labels")
    return [label_record(event, label, plan) for event, label in zip(events, observed_classes(labels, plan).tolist())]


def observed_classes(labels: Sequence[int] | np.ndarray, plan: LabelPlan) -> np.ndarray:
    """The true classes as the labels will report them: ``plan.flip_rate`` of them flipped from
    ``plan.flip_after`` on (the same draws whether the labels are made at once or one by one)."""
    truth = np.asarray(labels, dtype=np.int64).copy()
    if plan.flip_rate and len(truth) > plan.flip_after:
        draws = np.random.default_rng(plan.seed).random(len(truth))
        flip = (draws < plan.flip_rate) & (np.arange(len(truth)) >= plan.flip_after)
        truth[flip] = 1 - truth[flip]
    return truth


def label_record(event: dict, label: int, plan: LabelPlan) -> dict:
    """The ``labels`` record of one event: known ``plan.delay_ms`` after the event's time."""
    return {"event_id": event["event_id"], "correlation_id": event.get("correlation_id"), "label": int(label),
            "event_time": int(event["event_time"]), "label_time": int(event["event_time"]) + plan.delay_ms}
