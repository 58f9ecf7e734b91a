"""The ids a machine remembers from its Schema Registry, and what a command does with them when the
registry does not answer (nothing listens on the URL these tests name)."""

from __future__ import annotations

import json
import socket

import pytest

from connectors.schema_memory import SchemaMemory
from connectors.schema_registry import (
    RegistryUnavailable,
    SchemaRegistry,
    register_subject,
    schema_text,
    topic_reader,
    writer_of,
)
from schemas.serde import schema_document
from streamscore.foundation.registry_settings import RegistrySettings
from streamscore.foundation.vocabulary import ControlKind
from streamscore.lifecycle.control import lifecycle_message

SUBJECT = "it-control-value"


def _dead_url() -> str:
    with socket.socket() as free:  # a port nothing listens on once it is closed
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    return f"http://127.0.0.1:{port}/apis/ccompat/v7"


@pytest.fixture
def offline(tmp_path) -> RegistrySettings:
    return RegistrySettings(_dead_url(), "external", ids_file=tmp_path / "registry-ids.json")


def test_the_memory_keeps_ids_per_registry_subject_and_schema(tmp_path):
    path = tmp_path / "ids.json"
    one, other = SchemaMemory(path, "http://a/ccompat"), SchemaMemory(path, "http://b/ccompat")
    text = schema_text(schema_document("control"))
    one.keep_id(SUBJECT, text, 7)
    assert one.id_of(SUBJECT, text) == 7 and one.schema_of(7) == json.loads(text)
    assert one.id_of("other-value", text) is None and one.id_of(SUBJECT, text + " ") is None
    assert other.id_of(SUBJECT, text) is None and other.schema_of(7) is None  # another registry's ids differ
    other.keep_schema(3, text)
    assert SchemaMemory(path, "http://b/ccompat").schema_of(3) == json.loads(text) and one.schema_of(3) is None
    path.write_text("{not json")
    assert one.id_of(SUBJECT, text) is None  # an unreadable file remembers nothing; the registry is asked
    path.write_text(json.dumps({"http://a/ccompat": []}))
    assert one.id_of(SUBJECT, text) is None and one.schema_of(7) is None  # nor does one of another shape
    one.keep_id(SUBJECT, text, 8)
    assert one.id_of(SUBJECT, text) == 8


def test_a_home_that_cannot_be_written_remembers_nothing_and_breaks_nothing(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    memory = SchemaMemory(blocked / "ids.json", "http://a/ccompat")  # its folder is a file: every write fails
    memory.keep_id(SUBJECT, "{}", 1)
    assert memory.id_of(SUBJECT, "{}") is None


def test_a_writer_takes_the_remembered_id_when_the_registry_is_away(offline):
    SchemaMemory(offline.ids_file, offline.url).keep_id(SUBJECT, schema_text(schema_document("control")), 42)
    writer = writer_of(offline, "it-control", "control")
    assert writer.schema_id == 42
    message = lifecycle_message(ControlKind.MODEL_ROLLED_BACK, "m", "1.0.0", now_ms=1, delay_ms=5000,
                                previous="1.1.0")
    framed = writer.encode(message)
    assert framed[:5] == b"\x00" + (42).to_bytes(4, "big")
    fresh = topic_reader(SchemaRegistry(offline), "control")  # another process: it knows id 42 from the file
    assert fresh.decode(framed)["model_version"] == "1.0.0"


def test_with_nothing_remembered_the_registrys_error_says_so(offline):
    with pytest.raises(RegistryUnavailable, match="no id of it-other-value is remembered here"):
        writer_of(offline, "it-other", "control")
    with pytest.raises(RegistryUnavailable):  # a read of an id never seen waits for the registry
        SchemaRegistry(offline).schema(99)


def test_submitting_never_falls_back_to_the_memory(offline):
    text = schema_text(schema_document("control"))
    SchemaMemory(offline.ids_file, offline.url).keep_id(SUBJECT, text, 42)
    with pytest.raises(RegistryUnavailable):  # a job's ids are registered at submit: it refuses, clearly
        register_subject(SchemaRegistry(offline), SUBJECT, schema_document("control"))
