"""Dead-letter envelopes: the original bytes, where they came from, the stage and the reason.

Pure (no Kafka client): the scoring job builds envelopes here and its exactly-once sink writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas import serde_for

STAGES = ("DECODE", "CONTRACT", "INFERENCE", "ENCODE")
MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class SourceCoordinates:
    topic: str
    partition: int
    offset: int


def dead_letter_record(original: bytes, source: SourceCoordinates, stage: str, reason: str, *,
                       job: str, failed_time_ms: int, event_id: str | None = None,
                       correlation_id: str | None = None) -> dict:
    if stage not in STAGES:
        raise ValueError(f"unknown dead-letter stage {stage!r}")
    return {
        "original_bytes": bytes(original),
        "source_topic": source.topic,
        "source_partition": int(source.partition),
        "source_offset": int(source.offset),
        "stage": stage,
        "reason": reason[:MAX_REASON_CHARS],
        "event_id": event_id,
        "correlation_id": correlation_id,
        "job": job,
        "failed_time": int(failed_time_ms),
    }


# A reason's first diagnosis -> a code with bounded cardinality (metric labels, log fields).
_NOT_FINITE = ("NaN", "inf", "-inf")
_CONTRACT_PREFIXES = (("missing field", "missing_field"), ("wrong type", "wrong_type"),
                      ("value ", "out_of_range"), ("unknown category", "unknown_category"))
_DECODE_CODES = ("empty", "bad_marker", "truncated", "trailing_bytes", "bad_body", "unknown_fingerprint")


REASON_CODES = (*_DECODE_CODES, "undecodable", "not_finite", *(code for _, code in _CONTRACT_PREFIXES),
                "contract_other", "non_finite_score", "inference_failed", "encode_failed")


def reason_code(stage: str, reason: str) -> str:
    """A stable, low-cardinality code for a dead letter's free-text ``reason``.

    >>> reason_code("DECODE", "truncated: payload ends inside the body")
    'truncated'
    >>> reason_code("CONTRACT", "contract: amount: NaN; country: unknown category 'ZZ'")
    'not_finite'
    """
    if stage == "DECODE":
        head = reason.split(":", 1)[0].strip()
        return head if head in _DECODE_CODES else "undecodable"
    if stage == "CONTRACT":
        diagnosis = reason.removeprefix("contract: ").split(";", 1)[0].partition(": ")[2]
        if diagnosis in _NOT_FINITE:
            return "not_finite"
        return next((code for prefix, code in _CONTRACT_PREFIXES if diagnosis.startswith(prefix)), "contract_other")
    if stage == "INFERENCE":
        return "non_finite_score" if "non-finite score" in reason else "inference_failed"
    return "encode_failed"


def encode_dead_letter(record: dict) -> bytes:
    return serde_for("dead_letter").encode_trusted(record)


def dead_letter_key(source: SourceCoordinates, event_id: str | None) -> bytes:
    """Keyed by event id when known, else by the source coordinates (stable across replays)."""
    return (event_id or f"{source.topic}/{source.partition}/{source.offset}").encode()
