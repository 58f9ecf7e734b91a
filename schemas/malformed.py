"""Deliberately bad event payloads, one per way an input can break, with the dead letter each must become.

Used by the demo, the end-to-end tests and (later) the fuzz harness. Pure: no Kafka.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from schemas.serde import serde_for
from streamscore.foundation.vocabulary import DeadLetterStage, RejectCode


class MalformedPayload(NamedTuple):
    kind: str
    payload: bytes
    event_id: str | None  # None when the payload cannot be decoded to an event
    stage: DeadLetterStage  # the dead-letter stage it must land in
    reason_prefix: str  # how the dead letter's reason must start
    reason_code: RejectCode  # the code its dead letter must carry


def _with(event: dict, **changes) -> dict:
    copy = dict(event)
    copy.update(changes)
    return copy


def malformed_variant(kind: str, event: dict) -> MalformedPayload:
    """Turn a valid event into one malformed payload of the given ``kind`` (see :data:`MALFORMED_KINDS`)."""
    if kind in _CONTRACT_BREAKS:
        changes, prefix, code = _CONTRACT_BREAKS[kind]
        payload = serde_for("event").encode(_with(event, **changes))
        return MalformedPayload(kind, payload, event["event_id"], DeadLetterStage.CONTRACT, prefix, code)
    if kind in _DECODE_BREAKS:
        code = _DECODE_BREAKS[kind]
        return MalformedPayload(kind, _undecodable(kind, event), None, DeadLetterStage.DECODE, code.value, code)
    raise ValueError(f"unknown malformed kind {kind!r}; known: {MALFORMED_KINDS}")


_DECODE_BREAKS = {"truncated": RejectCode.TRUNCATED, "empty_body": RejectCode.TRUNCATED,
                  "garbage": RejectCode.BAD_MARKER, "foreign_fingerprint": RejectCode.UNKNOWN_FINGERPRINT,
                  "trailing_bytes": RejectCode.TRAILING_BYTES}
_CONTRACT_BREAKS = {  # kind -> (field changes, how the reason starts, its code)
    "nan": ({"amount": math.nan}, "contract: amount: NaN", RejectCode.NOT_FINITE),
    "infinite": ({"distance_from_home_km": math.inf}, "contract: distance_from_home_km: inf", RejectCode.NOT_FINITE),
    "out_of_range": ({"hour_of_day": 42}, "contract: hour_of_day: value 42 out of range", RejectCode.OUT_OF_RANGE),
    "unknown_category": ({"country": "ZZ"}, "contract: country: unknown category 'ZZ'", RejectCode.UNKNOWN_CATEGORY),
}


def _undecodable(kind: str, event: dict) -> bytes:
    events, eid = serde_for("event"), event["event_id"]
    good = events.encode(event)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "empty_body":
        return good[:10]
    if kind == "garbage":
        return b"not avro at all: " + eid.encode()
    if kind == "trailing_bytes":
        return good + b"\x00\x01"
    record = {"event_id": eid, "correlation_id": event["correlation_id"], "model_name": "x",  # foreign_fingerprint
              "model_version": "0", "score": 0.5, "label": 0, "threshold": 0.5, "batch_id": "b",
              "event_time": event["event_time"], "scored_time": event["event_time"]}
    return serde_for("scored").encode(record)


MALFORMED_KINDS = ("truncated", "empty_body", "garbage", "foreign_fingerprint", "trailing_bytes",
                   "nan", "infinite", "out_of_range", "unknown_category")


_CONFLUENT_BREAKS = {"truncated": RejectCode.TRUNCATED, "bad_magic": RejectCode.BAD_MAGIC,
                     "unknown_schema_id": RejectCode.UNKNOWN_SCHEMA_ID}
CONFLUENT_MALFORMED_KINDS = tuple(_CONFLUENT_BREAKS)
UNREGISTERED_SCHEMA_ID = 2**31 - 17  # no registry hands out an id this high in a test's life


def confluent_malformed_variant(kind: str, good: bytes) -> MalformedPayload:
    """Break a valid Confluent-framed payload ``good`` (``00`` + schema id + body) in the framing: cut
    inside its body, a wrong magic byte, or a schema id the registry never gave (one of
    :data:`CONFLUENT_MALFORMED_KINDS`); each a DECODE dead letter."""
    if kind not in _CONFLUENT_BREAKS:
        raise ValueError(f"unknown Confluent malformed kind {kind!r}; known: {CONFLUENT_MALFORMED_KINDS}")
    if kind == "truncated":
        payload = good[: max(6, len(good) // 2)]
    elif kind == "bad_magic":
        payload = b"\x01" + good[1:]
    else:
        payload = b"\x00" + UNREGISTERED_SCHEMA_ID.to_bytes(4, "big") + good[5:]
    code = _CONFLUENT_BREAKS[kind]
    return MalformedPayload(kind, payload, None, DeadLetterStage.DECODE, code.value, code)
