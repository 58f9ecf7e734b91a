"""The values one micro-batch carries through the scoring path, and the one builder of a scored record.

:class:`Batch` is what the Flink job hands over (payloads with their partitions and offsets) plus the
moment it is scored; :class:`ValidRows` the events that passed the contract; :class:`PrimaryScores`
what the champion (or canary) versions said of them. ``jobs.batch_scorer`` and
``jobs.shadow_scoring`` pass these instead of a dozen loose arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from connectors.dead_letter import SourceCoordinates
from models.card import ModelCard
from streamscore.foundation.vocabulary import Reason


@dataclass(frozen=True)
class Batch:
    """One micro-batch's inputs: row ``i`` is ``payloads[i]`` read at ``partitions[i]``/``offsets[i]``."""

    payloads: Sequence[bytes]
    partitions: Sequence[int]
    offsets: Sequence[int]
    source_topic: str
    now_ms: int  # the batch's scored time
    batch_id: str
    timestamps: Sequence[int] | None = None  # the Kafka records' timestamps (epoch ms), where known

    def __len__(self) -> int:
        return len(self.payloads)

    def source(self, i: int) -> SourceCoordinates:
        return SourceCoordinates(self.source_topic, int(self.partitions[i]), int(self.offsets[i]))


@dataclass(frozen=True)
class ValidRows:
    """The contract-valid events of a batch: ``events[k]`` is input row ``rows[k]``, ``matrix[k]`` its features."""

    events: list[dict]
    rows: list[int]
    matrix: np.ndarray


@dataclass(frozen=True)
class PrimaryScores:
    """Per valid row ``k``: ``scores[k]`` from the model card ``cards[k]``, unless ``failed[k]`` says why not."""

    scores: np.ndarray
    failed: dict[int, Reason]
    cards: list[ModelCard]


def scored_record(event: dict, card: ModelCard, score: float, batch: Batch) -> dict:
    """The ``scored`` record of ``event``: ``score`` by the model of ``card``, labelled at its threshold."""
    threshold = float(card.outputs.threshold)
    return {
        "event_id": event["event_id"], "correlation_id": event["correlation_id"],
        "model_name": card.name, "model_version": card.version, "score": score,
        "label": int(score >= threshold), "threshold": threshold, "batch_id": batch.batch_id,
        "event_time": event["event_time"], "scored_time": batch.now_ms,
    }


def scored_columns(valid: ValidRows, primary: PrimaryScores, emit: list[int], scores: np.ndarray,
                   batch: Batch) -> dict:
    """The ``scored`` records of valid rows ``emit`` as columns (``schemas.column_encoder``): what
    :func:`scored_record` builds row by row, without a dict per record."""
    from schemas.column_encoder import Same

    events, cards = valid.events, primary.cards
    ids = [events[k]["event_id"] for k in emit]
    correlation = [events[k]["correlation_id"] for k in emit]
    if len({id(cards[k]) for k in emit}) == 1:  # one version scored the whole batch (the usual case)
        card = cards[emit[0]]
        name, version, threshold = Same(card.name), Same(card.version), Same(float(card.outputs.threshold))
        labels = (scores >= threshold.value).astype(np.int64)
    else:
        name, version = [cards[k].name for k in emit], [cards[k].version for k in emit]
        threshold = np.array([float(cards[k].outputs.threshold) for k in emit])
        labels = (scores >= threshold).astype(np.int64)
    return {"event_id": ids, "correlation_id": correlation, "model_name": name,
            "model_version": version, "score": scores, "label": labels, "threshold": threshold,
            "batch_id": Same(batch.batch_id), "event_time": np.array([events[k]["event_time"] for k in emit],
                                                                     dtype=np.int64),
            "scored_time": Same(batch.now_ms)}
