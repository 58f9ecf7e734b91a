"""The batch scorer on the Confluent wire with a model bound to its own schema (the sensor model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.batch_scorer import BatchScorer, ScorerSetup
from jobs.job_wire import JobWire, PatientLookup
from models.registry import load_model
from models.runtime import OnnxScorer
from models.sensor_demo import generate_readings
from schemas import load_schema
from schemas.confluent import RegisteredReader, RegistryAvroSerde, schema_id_key
from streamscore.foundation.errors import RegistryUnavailable, SchemaNotFound

EVENTS_ID, SCORED_ID, DEAD_ID, OTHER_ID = 11, 12, 13, 14


class Registry:
    """In memory: the unit tests' stand-in for the Schema Registry."""

    def __init__(self, schemas):
        self.schemas = schemas

    def schema(self, schema_id):
        if schema_id not in self.schemas:
            raise SchemaNotFound(str(schema_id))
        return self.schemas[schema_id]


def _plain(schema):
    return {k: v for k, v in schema.items() if not k.startswith("__")}


@pytest.fixture(scope="module")
def model():
    return load_model("sensor:1.0.0")


@pytest.fixture(scope="module")
def registry(model):
    return Registry({EVENTS_ID: dict(model.card.event_schema.schema), SCORED_ID: _plain(load_schema("scored")),
                     DEAD_ID: _plain(load_schema("dead_letter")), OTHER_ID: _plain(load_schema("label"))})


def _scorer(model, registry, time_field="ts") -> tuple[BatchScorer, RegistryAvroSerde]:
    events = RegistryAvroSerde(model.card.event_schema.schema, EVENTS_ID, registry)
    scored = RegistryAvroSerde(load_schema("scored"), SCORED_ID, registry)
    wire = JobWire(events, scored, RegistryAvroSerde(load_schema("dead_letter"), DEAD_ID, registry), scored,
                   id_field="reading_id", time_field=time_field, bound=True)
    setup = ScorerSetup(job="unit", source_topic="readings", wire=wire, clock_ms=lambda: 1_800_000_000_000)
    return BatchScorer(model, OnnxScorer(model), setup), events


def _readings(n):
    return [{k: v for k, v in r.items() if k != "is_anomaly"} for r in generate_readings(n, seed=4, prefix="u")]


def test_bound_events_are_scored_and_bad_frames_dead_lettered(model, registry):
    scorer, events = _scorer(model, registry)
    readings = _readings(50)
    good = [events.encode(r) for r in readings]
    bad = {"bad_magic": b"\x05" + good[0][1:], "unknown_schema_id": b"\x00" + schema_id_key(999) + good[0][5:],
           "wrong_schema": b"\x00" + schema_id_key(OTHER_ID) + good[0][5:], "truncated": good[1][:-3]}
    payloads = good + list(bad.values())
    result = scorer.score(payloads, [0] * len(payloads), list(range(len(payloads))), [5] * len(payloads))
    assert result.is_scored == [True] * 50 + [False] * len(bad)
    reader = RegisteredReader(registry)
    scored = [reader.decode(body)[1] for body in result.bodies[:50]]
    expected = OnnxScorer(model).predict_batch(model.contract.to_matrix(readings).matrix)
    np.testing.assert_allclose([r["score"] for r in scored], expected, rtol=0, atol=1e-7)
    assert [r["event_id"] for r in scored] == [r["reading_id"] for r in readings]
    assert [r["event_time"] for r in scored] == [r["ts"] for r in readings]
    assert all(r["correlation_id"] == r["event_id"] for r in scored)  # the schema has none: the id traces it
    assert all(body[:5] == b"\x00" + schema_id_key(SCORED_ID) for body in result.bodies[:50])
    for body, (code, payload) in zip(result.bodies[50:], bad.items()):
        name, dead = reader.decode(body)
        assert name == "io.streamscore.v1.DeadLetter"
        assert (dead["stage"], dead["reason"].split(":")[0], dead["original_bytes"]) == ("DECODE", code, payload)


def test_without_a_time_field_the_kafka_timestamp_is_the_event_time(model, registry):
    scorer, events = _scorer(model, registry, time_field=None)
    readings = _readings(3)
    result = scorer.score([events.encode(r) for r in readings], [0, 0, 0], [0, 1, 2], [111, 222, 333])
    assert [RegisteredReader(registry).decode(b)[1]["event_time"] for b in result.bodies] == [111, 222, 333]


def test_a_registry_outage_is_waited_out_then_raised(registry):
    calls = []

    class Flaky:
        def schema(self, schema_id):
            calls.append(schema_id)
            if len(calls) < 3:
                raise RegistryUnavailable("down")
            return registry.schema(schema_id)

    slept = []
    found = PatientLookup(Flaky(), wait_ms=10_000, sleep=slept.append).schema(SCORED_ID)
    assert found["name"] == "io.streamscore.v1.ScoredEvent" and slept == [0.2, 0.4]

    class Down:
        def schema(self, schema_id):
            raise RegistryUnavailable("down")

    slept.clear()
    with pytest.raises(RegistryUnavailable):
        PatientLookup(Down(), wait_ms=1000, sleep=slept.append).schema(1)
    assert sum(slept) >= 1.0


def test_a_json_id_no_avro_string_can_carry_is_an_encode_dead_letter(model, registry):
    """JSON may escape a lone surrogate (``"\\ud800"``): the event decodes, its scored record cannot be
    encoded, and the dead letter (id escaped, so it is writable) keeps the bytes; the others are scored."""
    from schemas.json_events import JsonEvents

    schema = model.card.event_schema.schema
    scored = RegistryAvroSerde(load_schema("scored"), SCORED_ID, registry)
    wire = JobWire(JsonEvents(schema), scored, RegistryAvroSerde(load_schema("dead_letter"), DEAD_ID, registry),
                   scored, id_field="reading_id", time_field="ts", bound=True)
    setup = ScorerSetup(job="unit", source_topic="readings", wire=wire, clock_ms=lambda: 1_800_000_000_000)
    scorer = BatchScorer(model, OnnxScorer(model), setup)
    readings = _readings(3)
    payloads = [json.dumps(r).encode() for r in readings]
    payloads[1] = json.dumps({**readings[1], "reading_id": "ID"}).replace('"ID"', '"u-\\ud800"').encode()
    result = scorer.score(payloads, [0, 0, 0], [7, 8, 9], [5, 5, 5])
    assert result.is_scored == [True, False, True]
    _, dead = RegisteredReader(registry).decode(result.bodies[1])
    assert (dead["stage"], dead["original_bytes"], dead["source_offset"]) == ("ENCODE", payloads[1], 8)
    assert dead["event_id"] == "u-\\ud800" and "surrogates not allowed" in dead["reason"]
    assert result.keys[1] == b"u-\\ud800"
    assert result.version_scored == {model.card.version: 2}  # the ENCODE dead letter is not counted as scored


def test_a_correlation_id_that_is_no_text_gives_way_to_the_event_id_as_in_the_jvm():
    """The JVM decoder traces an event by its correlation_id only where that is a non-empty string; the Python
    decoder now does the same (a long there made every scored record fail to encode)."""
    from types import SimpleNamespace

    from jobs.batch_scorer import BatchScorer

    fake = SimpleNamespace(wire=SimpleNamespace(id_field="reading_id", time_field="ts"))
    events = [{"reading_id": f"r{k}", "ts": 5, "correlation_id": value} for k, value in
              enumerate(["trace-1", "", None, 42])]
    BatchScorer._name_id_and_time(fake, SimpleNamespace(timestamps=[0] * 4), events, [0, 1, 2, 3])
    assert [e["correlation_id"] for e in events] == ["trace-1", "r1", "r2", "r3"]
