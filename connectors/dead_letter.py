"""Dead-letter envelopes: the original bytes, where they came from, the stage and the reason.

Pure (no Kafka client): the scoring job builds envelopes here and its exactly-once sink writes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamscore.foundation.vocabulary import DeadLetterStage

MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class SourceCoordinates:
    topic: str
    partition: int
    offset: int


def dead_letter_record(original: bytes | None, source: SourceCoordinates, stage: str, reason: str, *,
                       job: str, failed_time_ms: int, event_id: str | None = None,
                       correlation_id: str | None = None) -> dict:
    stage = DeadLetterStage(stage)  # ValueError on an unknown stage
    return {
        "original_bytes": bytes(original) if original is not None else b"",  # None: a tombstone (no value)
        "source_topic": source.topic,
        "source_partition": int(source.partition),
        "source_offset": int(source.offset),
        "stage": str(stage),
        "reason": writable(reason)[:MAX_REASON_CHARS],
        "event_id": writable(event_id),
        "correlation_id": writable(correlation_id),
        "job": job,
        "failed_time": int(failed_time_ms),
    }


def dead_letter_key(source: SourceCoordinates, event_id: str | None) -> bytes:
    """Keyed by event id when known, else by the source coordinates (stable across replays)."""
    return writable(event_id or f"{source.topic}/{source.partition}/{source.offset}").encode()


def writable(text: str | None) -> str | None:
    """``text`` as UTF-8 can carry it: a lone surrogate (JSON input may hold ``"\\ud800"``, which no Avro
    string or Kafka key can) becomes its backslash escape, so a dead letter can always be written."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
