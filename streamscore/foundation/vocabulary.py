"""The wire vocabulary: the closed sets of symbols that the Avro schemas declare, declared once for Python.

Each ``StrEnum`` mirrors one enum of ``schemas/avro/*.avsc`` symbol for symbol
(``tests/unit/test_vocabulary.py`` checks that they agree), so code compares and builds records
with ``ControlKind.MODEL_PROMOTED`` instead of a string spelled again in each module. Members are
strings, so records keep plain strings on the wire:

>>> ControlKind.MODEL_PROMOTED == "MODEL_PROMOTED"
True
>>> DeadLetterStage("CONTRACT") is DeadLetterStage.CONTRACT
True
>>> LifecycleAction.SHADOW_ATTACH.kind
<ControlKind.SHADOW_ATTACHED: 'SHADOW_ATTACHED'>
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class ControlKind(StrEnum):
    """``io.streamscore.v1.ControlKind``: what a control-topic message announces."""

    RETRAIN_TRIGGER = "RETRAIN_TRIGGER"
    MODEL_PROMOTED = "MODEL_PROMOTED"
    MODEL_ROLLED_BACK = "MODEL_ROLLED_BACK"
    SHADOW_ATTACHED = "SHADOW_ATTACHED"
    SHADOW_DETACHED = "SHADOW_DETACHED"
    CANARY_WEIGHT = "CANARY_WEIGHT"


class DeadLetterStage(StrEnum):
    """``io.streamscore.v1.DeadLetterStage``: the scoring step a dead letter failed in."""

    DECODE = "DECODE"
    CONTRACT = "CONTRACT"
    INFERENCE = "INFERENCE"
    ENCODE = "ENCODE"


class RejectCode(StrEnum):
    """Why a record was dead-lettered, in a few stable words (metric labels, log fields).

    Each is set where the failure is found (the serde error's class, the contract's diagnosis,
    the model call, the encoder) and travels with the reason's text as a :class:`Reason`.
    """

    EMPTY = "empty"
    BAD_MARKER = "bad_marker"
    TRUNCATED = "truncated"
    TRAILING_BYTES = "trailing_bytes"
    BAD_BODY = "bad_body"
    UNKNOWN_FINGERPRINT = "unknown_fingerprint"
    BAD_MAGIC = "bad_magic"  # a Confluent-framed topic's record does not start with magic byte 0
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"  # the registry knows no schema of that id
    WRONG_SCHEMA = "wrong_schema"  # a registered schema that is not (a version of) the topic's
    BAD_JSON = "bad_json"  # a JSON-input message that is not a JSON object of the event schema
    UNDECODABLE = "undecodable"  # a decode failure of no known kind
    NOT_FINITE = "not_finite"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    UNKNOWN_CATEGORY = "unknown_category"
    CONTRACT_OTHER = "contract_other"  # e.g. the event is not a mapping
    EVENT_TIME_AHEAD = "event_time_ahead"  # stamped further ahead of the clock than the model router waits
    NON_FINITE_SCORE = "non_finite_score"
    INFERENCE_FAILED = "inference_failed"
    ENCODE_FAILED = "encode_failed"


class Reason(str):
    """A reject reason: its text (what a dead letter's ``reason`` says) with its :class:`RejectCode`.

    A ``str``, so it reads and compares as its text; the code is set by whoever found the failure:

    >>> reason = Reason("amount: NaN", RejectCode.NOT_FINITE)
    >>> reason == "amount: NaN", reason.code
    (True, <RejectCode.NOT_FINITE: 'not_finite'>)
    >>> Reason("contract: " + reason, reason.code).code
    <RejectCode.NOT_FINITE: 'not_finite'>
    """

    code: RejectCode

    def __new__(cls, text: str, code: RejectCode | str) -> Reason:
        reason = super().__new__(cls, text)
        reason.code = RejectCode(code)
        return reason

    def __reduce__(self):  # pickles (Flink state, multiprocessing) with its code
        return Reason, (str(self), self.code.value)


class DriftStatistic(StrEnum):
    """``io.streamscore.v1.DriftStatistic``: the test behind a drift alert."""

    PSI = "PSI"
    KS = "KS"
    CHI2 = "CHI2"
    ACCURACY = "ACCURACY"
    AUC = "AUC"


class DriftTier(StrEnum):
    """``io.streamscore.v1.DriftTier``: a finding's severity on the wire (``drift.settings.Tier`` orders it)."""

    NONE = "NONE"
    SMALL = "SMALL"
    MODERATE = "MODERATE"
    SEVERE = "SEVERE"


class LifecycleAction(StrEnum):
    """The model-lifecycle changes a user asks for (``streamscore models ACTION``), each one control kind."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"
    SHADOW_ATTACH = "shadow-attach"
    SHADOW_DETACH = "shadow-detach"
    CANARY = "canary"

    @property
    def kind(self) -> ControlKind:
        return _KIND_OF_ACTION[self]


_KIND_OF_ACTION = {
    LifecycleAction.PROMOTE: ControlKind.MODEL_PROMOTED,
    LifecycleAction.ROLLBACK: ControlKind.MODEL_ROLLED_BACK,
    LifecycleAction.SHADOW_ATTACH: ControlKind.SHADOW_ATTACHED,
    LifecycleAction.SHADOW_DETACH: ControlKind.SHADOW_DETACHED,
    LifecycleAction.CANARY: ControlKind.CANARY_WEIGHT,
}
PRIMARY_KINDS = (ControlKind.MODEL_PROMOTED, ControlKind.MODEL_ROLLED_BACK)  # they set the champion
SHADOW_KINDS = (ControlKind.SHADOW_ATTACHED, ControlKind.SHADOW_DETACHED)


InputFormat = Literal["avro", "json"]  # how a model's input topic carries its events
# how an exactly-once sink names its Kafka transactions: reusing a few ids per subtask (the broker's state stays
# bounded; Kafka 3.0+, and READ on the output topics where ACLs apply), or a new id every checkpoint (the
# connector's default, which the broker keeps for 7 days; for clusters that cannot grant that READ)
TransactionNaming = Literal["pooling", "incrementing"]
# where a job keeps its keyed state: RocksDB on local disk with incremental checkpoints (a checkpoint writes only
# what changed: the drift sidecar's label join keeps every scored record for label_wait_ms), or Flink's heap
# (every checkpoint a full copy; the fastest per access, for small state)
StateBackend = Literal["rocksdb", "hashmap"]
# how a scoring job's Avro records are framed: the Schema Registry's wire (every tool reads it), or the
# single-object encoding of the demo events before the registry (kept for migration and as the benchmark's
# reference row)
Framing = Literal["confluent", "single-object"]
