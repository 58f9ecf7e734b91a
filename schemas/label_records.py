"""Ground truth from a file (``streamscore produce --labels-input FILE``): one JSON object a line with the
scored record's id, its true class and its event time, for a model of your own whose labels the demo
generator cannot draw. Each becomes a ``labels`` record (``schemas/avro/label.avsc``)."""

from __future__ import annotations

from pathlib import Path

from schemas.json_lines import read_json_lines
from streamscore.foundation.errors import InputError

EXAMPLE = '{"event_id": "r0000042", "label": 1, "event_time": 1764547200000}'


def read_label_file(path: str | Path, now_ms: int) -> list[dict]:
    """The label records of ``path``: ``event_id`` (the id the model's events carry, as its scored records
    do), ``label`` 0 or 1, ``event_time`` (epoch ms), and optional ``label_time`` (default ``now_ms``: the
    label is known now) and ``correlation_id``. Any other shape is one error naming the file and line."""
    records = []
    for lineno, row in enumerate(read_json_lines(path), 1):
        unknown = sorted(set(row) - {"event_id", "label", "event_time", "label_time", "correlation_id"})
        record = {"event_id": row.get("event_id"), "correlation_id": row.get("correlation_id"),
                  "label": row.get("label"), "event_time": row.get("event_time"),
                  "label_time": row.get("label_time", now_ms)}
        problem = _problem(record, unknown)
        if problem:
            raise InputError(f"{path}: label {lineno}: {problem}; expected e.g. {EXAMPLE}")
        records.append(record)
    return records


def _problem(record: dict, unknown: list[str]) -> str | None:
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    if not isinstance(record["event_id"], str) or not record["event_id"]:
        return "event_id must be a non-empty string"
    if not all(_utf8(record[name]) for name in ("event_id", "correlation_id")):
        return "event_id and correlation_id must be valid Unicode text (a lone surrogate such as \\ud800 is not)"
    if type(record["label"]) is not int or record["label"] not in (0, 1):  # not 1.0, not true
        return f"label must be 0 or 1, got {record['label']!r}"
    for name in ("event_time", "label_time"):
        value = record[name]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _MAX_LONG:
            return f"{name} must be epoch milliseconds (an integer from 0 to 2^63 - 1), got {repr(value)[:40]}"
    if record["correlation_id"] is not None and not isinstance(record["correlation_id"], str):
        return "correlation_id must be a string"
    return None


_MAX_LONG = 2**63 - 1  # an Avro long


def _utf8(text: str | None) -> bool:
    if not isinstance(text, str):
        return True  # absent (correlation_id), or the type check's to report
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
