"""The values one micro-batch carries through the scoring path, and the one builder of a scored record.

:class:`Batch` is what the Flink job hands over (payloads with their partitions and offsets) plus the
moment it is scored; :class:`ValidRows` the events that passed the contract; :class:`PrimaryScores`
what the champion (or canary) versions said of them; :class:`BatchResult` what a batch yields (per input
row, a scored record or a dead letter) and :class:`DeadLetterNote` what a log line may say of a dead
letter. ``jobs.batch_scorer`` and ``jobs.shadow_scoring`` pass these instead of a dozen loose arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from connectors.dead_letter import SourceCoordinates
from models.card import ModelCard
from streamscore.foundation.vocabulary import DeadLetterStage, Reason, RejectCode


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
    """The contract-valid events of a batch, as columns (no dict per record): valid row ``k`` is input row
    ``rows[k]``, its id ``ids[k]``, event time ``times[k]`` (epoch ms), correlation id ``correlations[k]``
    and features ``matrix[k]``."""

    ids: list[str]
    times: list[int]
    correlations: list[str]
    rows: list[int]
    matrix: np.ndarray

    @classmethod
    def of_events(cls, events: Sequence[dict], rows: Sequence[int], keep: list[int], matrix: np.ndarray) -> ValidRows:
        """The valid rows ``keep`` of decoded ``events`` (dicts with ``event_id``, ``event_time``, ``correlation_id``),
        ``events[j]`` being input row ``rows[j]``."""
        picked = [events[j] for j in keep]
        return cls([e["event_id"] for e in picked], [e["event_time"] for e in picked],
                   [e["correlation_id"] for e in picked], [rows[j] for j in keep], matrix)

    def __len__(self) -> int:
        return len(self.rows)

    def event(self, k: int) -> dict:
        """Valid row ``k``'s identity as a record (for the rare row that needs one: a dead letter, a shadow record)."""
        return {"event_id": self.ids[k], "event_time": self.times[k], "correlation_id": self.correlations[k]}

    def take(self, keep: list[int]) -> ValidRows:
        """Only the valid rows ``keep`` (positions in this one), in that order."""
        return ValidRows([self.ids[k] for k in keep], [self.times[k] for k in keep],
                         [self.correlations[k] for k in keep], [self.rows[k] for k in keep], self.matrix[keep])


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

    cards = primary.cards
    every = len(emit) == len(valid)
    ids = valid.ids if every else [valid.ids[k] for k in emit]
    correlation = valid.correlations if every else [valid.correlations[k] for k in emit]
    times = valid.times if every else [valid.times[k] for k in emit]
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
            "batch_id": Same(batch.batch_id), "event_time": np.array(times, dtype=np.int64),
            "scored_time": Same(batch.now_ms)}


@dataclass(frozen=True)
class DeadLetterNote:
    """What a log line may say about one dead letter: ids and codes, never the payload."""

    stage: DeadLetterStage
    reason_code: RejectCode
    event_id: str | None
    correlation_id: str | None
    partition: int
    offset: int


@dataclass
class BatchResult:
    """Per input row: whether it was scored, the Kafka key and the Avro payload to write."""

    is_scored: list[bool]
    keys: list[bytes]
    bodies: list[bytes]
    batch_id: str
    call_sizes: list[int] = field(default_factory=list)  # rows per model call
    inference_seconds: float = 0.0
    dead_by_stage: dict[str, int] = field(default_factory=dict)
    dead_letters: list[DeadLetterNote] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)  # of the scored rows
    latencies_ms: list[int] = field(default_factory=list)  # scored time - event time, of the scored rows
    cache_lookups: int = 0  # rows looked up in the prediction cache
    cache_hits: int = 0
    cache_errors: int = 0  # failed cache calls (the cache bypassed itself; scoring went on)
    shadow_bodies: list[bytes | None] = field(default_factory=list)  # per input row: the challenger's record
    version_call_us: dict[str, list[float]] = field(default_factory=dict)  # primary version -> us per model call
    version_scored: dict[str, int] = field(default_factory=dict)  # primary version -> rows scored
    shadow: dict = field(default_factory=dict)  # challenger version -> jobs.shadow_scoring.ShadowStats
    shadow_errors: int = 0  # shadow passes that failed as a whole (champion output unaffected)
    shadow_error: str | None = None

    @property
    def model_calls(self) -> int:
        return len(self.call_sizes)

    @property
    def scored(self) -> int:
        return sum(self.is_scored)
