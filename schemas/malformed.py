"""Deliberately bad event payloads, one per way an input can break, with the dead letter each must become.

Used by the demo, the end-to-end tests and (later) the fuzz harness. Pure: no Kafka.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from schemas.serde import serde_for


class MalformedPayload(NamedTuple):
    kind: str
    payload: bytes
    event_id: str | None  # None when the payload cannot be decoded to an event
    stage: str  # the dead-letter stage it must land in
    reason_prefix: str  # how the dead letter's reason must start


def _with(event: dict, **changes) -> dict:
    copy = dict(event)
    copy.update(changes)
    return copy


def malformed_variant(kind: str, event: dict) -> MalformedPayload:
    """Turn a valid event into one malformed payload of the given ``kind`` (see :data:`MALFORMED_KINDS`)."""
    events, scored = serde_for("event"), serde_for("scored")
    eid = event["event_id"]
    if kind == "truncated":
        good = events.encode(event)
        return MalformedPayload(kind, good[: len(good) // 2], None, "DECODE", "truncated")
    if kind == "empty_body":
        return MalformedPayload(kind, events.encode(event)[:10], None, "DECODE", "truncated")
    if kind == "garbage":
        return MalformedPayload(kind, b"not avro at all: " + eid.encode(), None, "DECODE", "bad_marker")
    if kind == "foreign_fingerprint":
        record = {"event_id": eid, "correlation_id": event["correlation_id"], "model_name": "x",
                  "model_version": "0", "score": 0.5, "label": 0, "threshold": 0.5, "batch_id": "b",
                  "event_time": event["event_time"], "scored_time": event["event_time"]}
        return MalformedPayload(kind, scored.encode(record), None, "DECODE", "unknown_fingerprint")
    if kind == "trailing_bytes":
        return MalformedPayload(kind, events.encode(event) + b"\x00\x01", None, "DECODE", "trailing_bytes")
    if kind == "nan":
        payload = events.encode(_with(event, amount=math.nan))
        return MalformedPayload(kind, payload, eid, "CONTRACT", "contract: amount: NaN")
    if kind == "infinite":
        payload = events.encode(_with(event, distance_from_home_km=math.inf))
        return MalformedPayload(kind, payload, eid, "CONTRACT", "contract: distance_from_home_km: inf")
    if kind == "out_of_range":
        payload = events.encode(_with(event, hour_of_day=42))
        return MalformedPayload(kind, payload, eid, "CONTRACT", "contract: hour_of_day: value 42 out of range")
    if kind == "unknown_category":
        payload = events.encode(_with(event, country="ZZ"))
        return MalformedPayload(kind, payload, eid, "CONTRACT", "contract: country: unknown category 'ZZ'")
    raise ValueError(f"unknown malformed kind {kind!r}; known: {MALFORMED_KINDS}")


MALFORMED_KINDS = ("truncated", "empty_body", "garbage", "foreign_fingerprint", "trailing_bytes",
                   "nan", "infinite", "out_of_range", "unknown_category")
