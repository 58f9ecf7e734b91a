"""JSON input: one JSON object a message, checked against the card's Avro schema; anything else is a
``bad_json`` DECODE dead letter with its bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.job_schemas import with_registry_wire
from jobs.job_wire import RegistryWire, build_wire, check_wire
from jobs.scoring_config import ScoringJobConfig
from models.registry import load_model
from schemas.confluent import RegisteredReader
from schemas.errors import BadJsonError
from schemas.json_events import JsonEvents
from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import ConfigError
from tests.unit.test_batch_scorer_confluent import DEAD_ID, SCORED_ID, _readings, _scorer, model, registry  # noqa: F401


@pytest.fixture(scope="module")
def events(model):  # noqa: F811
    return JsonEvents(model.card.event_schema.schema)


def test_a_reading_round_trips_defaults_fill_in_and_unknown_fields_are_ignored(events):
    reading = _readings(1)[0]
    assert events.decode(events.encode(reading)) == reading
    assert events.decode(events.encode(reading)[:-1] + b',"site":"north"}') == reading
    without_optional = events.encode(reading).replace(b',"firmware":null', b"")
    assert b"firmware" not in without_optional and events.decode(without_optional)["firmware"] is None


@pytest.mark.parametrize("payload, says", [
    (b"{", "not JSON"), (b"\xff\xfe", "not JSON"), (b"[1]", "a JSON list, not an object"),
    (b'{"reading_id": "r"}', "missing field"), (b"null", "a JSON NoneType, not an object"),
    (b"[" * 100_000, "nested too deeply"), (b'{"a":' * 100_000, "nested too deeply")])
def test_anything_else_is_bad_json(events, payload, says):
    with pytest.raises(BadJsonError, match=says) as err:
        events.decode(payload)
    assert err.value.reason == "bad_json"


def test_a_value_of_the_wrong_type_is_bad_json_too(events):
    reading = {**_readings(1)[0], "rpm": "fast"}
    with pytest.raises(BadJsonError, match="rpm"):
        events.decode(json.dumps(reading).encode())


def test_the_batch_scorer_reads_json_and_dead_letters_bad_messages(model, registry):  # noqa: F811
    scorer, _ = _scorer(model, registry)
    json_events = JsonEvents(model.card.event_schema.schema)
    scorer.wire = scorer.wire.__class__(json_events, scorer.wire.scored, scorer.wire.dead_letter, scorer.wire.shadow,
                                        id_field="reading_id", time_field="ts", bound=True)
    readings = _readings(20)
    payloads = [json_events.encode(r) for r in readings] + [b"oops"]
    result = scorer.score(payloads, [0] * 21, list(range(21)), [5] * 21)
    assert result.is_scored == [True] * 20 + [False]
    reader = RegisteredReader(registry)
    expected = scorer.predictor.predict_batch(model.contract.to_matrix(readings).matrix)
    np.testing.assert_allclose([reader.decode(b)[1]["score"] for b in result.bodies[:20]], expected, atol=1e-7)
    dead = reader.decode(result.bodies[20])[1]
    assert (dead["stage"], dead["reason"].split(":")[0], dead["original_bytes"]) == ("DECODE", "bad_json", b"oops")


def test_a_json_wire_builds_without_an_events_schema_id(model):  # noqa: F811
    wire = RegistryWire(url="http://registry:8080/apis/ccompat/v7", scored_schema_id=SCORED_ID,
                        dead_letter_schema_id=DEAD_ID, events_format="json")
    check_wire(wire, 600_000)
    assert isinstance(build_wire(wire, model.card).events, JsonEvents)
    with pytest.raises(ConfigError, match="events, scored and dead-letter schema ids"):
        check_wire(RegistryWire(url=wire.url, scored_schema_id=SCORED_ID, dead_letter_schema_id=DEAD_ID), 600_000)


def test_the_single_object_framing_is_for_the_demo_events_in_avro_only():
    for ref, wire in (("sensor:1.0.0", RegistryWire(framing="single-object")),
                      ("fraud:1.0.0", RegistryWire(framing="single-object", events_format="json"))):
        config = ScoringJobConfig(bootstrap="kafka:9092", model=ref, registry=wire)
        with pytest.raises(ConfigError, match="single-object framing is for the demo events in Avro"):
            with_registry_wire(load_settings({}), config, load_model(ref).card)


def test_a_value_fastavro_cannot_convert_is_bad_json_not_a_crash():
    """fastavro converts an ISO date string for an int/date field itself, and raises a bare ValueError for a date
    that does not exist; that is one bad message (a dead letter), not a job failure."""
    dated = JsonEvents({"type": "record", "name": "Visit", "fields": [
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "who", "type": "string"}]})
    with pytest.raises(BadJsonError, match="Visit: ValueError: day is out of range for month"):
        dated.decode(b'{"day": "2024-02-30", "who": "a"}')
    with pytest.raises(BadJsonError, match="not valid Unicode text"):
        dated.encode({"day": 3, "who": "a\ud800"})
