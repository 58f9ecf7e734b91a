"""JSON-lines event files: one clear error naming the file (and line), its cause kept."""

from __future__ import annotations

import pytest

from models.register import read_sample
from schemas.json_lines import read_json_lines
from streamscore.foundation.errors import InputError, ModelError


def test_objects_in_order_blank_lines_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_id": "a"}\n\n  \n{"event_id": "b", "n": 2}\n', encoding="utf-8")
    assert read_json_lines(path) == [{"event_id": "a"}, {"event_id": "b", "n": 2}]


def test_a_missing_file_is_named(tmp_path):
    missing = tmp_path / "absent.jsonl"
    with pytest.raises(InputError) as info:
        read_json_lines(missing)
    assert str(info.value) == f"cannot read {missing}: No such file or directory"
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_the_bad_line_is_named(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_id": "a"}\n\n{not json\n', encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_json_lines(path)
    assert str(info.value).startswith(f"{path}:3: not valid JSON (")
    path.write_text('{"event_id": "a"}\n' + "[" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"{path}:2: JSON nested too deeply to read"):
        read_json_lines(path)


def test_each_line_must_be_an_object(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('[1, 2]\n', encoding="utf-8")
    with pytest.raises(InputError, match=r":1: expected a JSON object, got list$"):
        read_json_lines(path)


def test_a_file_not_in_utf8_is_one_clear_error(tmp_path):
    path = tmp_path / "events.jsonl"  # what a PowerShell redirect writes: UTF-16 with a byte-order mark
    path.write_bytes('{"event_id": "a"}\n'.encode("utf-16"))
    with pytest.raises(InputError) as info:
        read_json_lines(path)
    assert str(info.value).startswith(f"cannot read {path}: not UTF-8 text (byte 0")
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_a_training_sample_error_is_a_model_error_naming_the_sample(tmp_path):
    path = tmp_path / "sample.jsonl"
    path.write_text('{"a": 1}\nnope\n', encoding="utf-8")
    with pytest.raises(ModelError, match=rf"^training sample: {path}:2: not valid JSON") as info:
        read_sample(path)
    assert isinstance(info.value.__cause__, InputError)


def test_line_separators_inside_json_strings_are_text_not_line_breaks(tmp_path):
    """JSON allows U+2028, U+2029 and U+0085 raw in a string (str.splitlines would break the line there)."""
    path = tmp_path / "events.jsonl"
    path.write_text('{"note": "a\u2028b\u2029c\u0085d"}\n\n{"note": "e"}\n', encoding="utf-8")
    assert read_json_lines(path) == [{"note": "a\u2028b\u2029c\u0085d"}, {"note": "e"}]
