"""``produce --labels-input``: a file of your own ground truth read into labels records, or one error line."""

from __future__ import annotations

import json

import pytest

from schemas.label_records import read_label_file
from schemas.serde import serde_for
from streamscore.foundation.errors import InputError

NOW = 1_765_000_000_000


def _file(tmp_path, *rows) -> str:
    path = tmp_path / "labels.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return str(path)


def test_labels_are_read_with_the_label_time_defaulting_to_now_and_encode_as_label_records(tmp_path):
    path = _file(tmp_path, {"event_id": "r1", "label": 1, "event_time": 5},
                 {"event_id": "r2", "label": 0, "event_time": 6, "label_time": 9, "correlation_id": "c-2"})
    records = read_label_file(path, NOW)
    assert records == [
        {"event_id": "r1", "correlation_id": None, "label": 1, "event_time": 5, "label_time": NOW},
        {"event_id": "r2", "correlation_id": "c-2", "label": 0, "event_time": 6, "label_time": 9}]
    serde = serde_for("label")
    assert [serde.decode(serde.encode(r)) for r in records] == records  # valid against label.avsc


@pytest.mark.parametrize("row, message", [
    ({"label": 1, "event_time": 5}, "event_id must be a non-empty string"),
    ({"event_id": "r", "label": 2, "event_time": 5}, "label must be 0 or 1, got 2"),
    ({"event_id": "r", "label": True, "event_time": 5}, "label must be 0 or 1, got True"),
    ({"event_id": "r", "label": 1.0, "event_time": 5}, "label must be 0 or 1, got 1.0"),
    ({"event_id": "r", "label": 1, "event_time": "2025-12-01"}, "event_time must be epoch milliseconds"),
    ({"event_id": "r", "label": 1}, "event_time must be epoch milliseconds"),
    ({"event_id": "r", "label": 1, "event_time": 5, "label_time": -1}, "label_time must be epoch milliseconds"),
    ({"event_id": "r", "label": 1, "event_time": 5, "score": 0.4}, "unknown field"),
    ({"event_id": "r", "label": 1, "event_time": 2**63}, r"event_time must be epoch milliseconds \(an integer from 0"),
    ({"event_id": "r\ud800", "label": 1, "event_time": 5}, "event_id and correlation_id must be valid Unicode"),
    ({"event_id": "r", "correlation_id": "\udfff", "label": 1, "event_time": 5},
     "event_id and correlation_id must be valid"),
])
def test_a_bad_label_is_one_error_naming_its_line(tmp_path, row, message):
    path = _file(tmp_path, {"event_id": "ok", "label": 0, "event_time": 1}, row)
    with pytest.raises(InputError, match=rf"labels\.jsonl: label 2: {message}.*expected e\.g\."):
        read_label_file(path, NOW)
