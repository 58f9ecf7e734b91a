"""The Schema Registry on the real stack: topic schemas registered, the Confluent wire format read and
written both by streamscore and by confluent-kafka's own Avro serde (what other Kafka tools do),
compatibility rules enforced, and ``streamscore consume`` decoding through the registry."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from topic_reads import read_until

from connectors.kafka_transactions import produce_transactionally
from connectors.schema_registry import (
    IncompatibleSchema,
    SchemaRegistry,
    register_topic_schemas,
    subject_for,
)
from schemas import load_schema
from schemas.confluent import RegistryAvroSerde, schema_id_of
from streamscore.cli.main import main

pytestmark = pytest.mark.integration

READING = {"type": "record", "name": "Reading", "namespace": "io.example.sensors",
           "fields": [{"name": "sensor_id", "type": "string"}, {"name": "temperature", "type": "double"},
                      {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
READING_V2 = {**READING, "fields": [*READING["fields"], {"name": "site", "type": ["null", "string"], "default": None}]}
READING_BROKEN = {**READING, "fields": [{"name": "sensor_id", "type": "long"}, *READING["fields"][1:]]}


@pytest.fixture
def registry(settings, stack):
    return SchemaRegistry(settings.schema_registry)


def test_topic_schemas_are_registered_once_per_subject_with_the_backward_rule(registry, fresh_topics):
    scored, dead = fresh_topics("scored", "dead_letter")
    ids = register_topic_schemas(registry, {"scored": scored, "dead_letter": dead})
    assert set(ids) == {subject_for(scored), subject_for(dead)}
    assert register_topic_schemas(registry, {"scored": scored, "dead_letter": dead}) == ids  # idempotent
    assert registry.compatibility(subject_for(scored)) == "BACKWARD"
    registry.set_compatibility(subject_for(dead), "FULL")  # a rule someone set on purpose is kept
    register_topic_schemas(registry, {"dead_letter": dead})
    assert registry.compatibility(subject_for(dead)) == "FULL"
    latest = registry.version(subject_for(scored))
    assert latest.version == 1 and latest.id == ids[subject_for(scored)]
    assert latest.schema["name"] == "ScoredEvent"
    assert registry.schema(latest.id)["fields"] == json.loads(json.dumps(latest.schema["fields"]))


def _client(settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": settings.schema_registry.url})


def test_confluent_kafka_reads_what_streamscore_writes_and_the_other_way(settings, registry, fresh_topics):
    (topic,) = fresh_topics("readings")
    schema_id = registry.register(subject_for(topic), READING)
    ours = RegistryAvroSerde(READING, schema_id, registry)
    theirs_out = AvroSerializer(_client(settings), json.dumps(READING), conf={"auto.register.schemas": False,
                                                                              "use.latest.version": True})
    context = SerializationContext(topic, MessageField.VALUE)
    records = [{"sensor_id": f"s{i}", "temperature": 20.0 + i / 4, "ts": 1_764_000_000_000 + i} for i in range(40)]
    payloads = [ours.encode(r) for r in records[:20]] + [theirs_out(r, context) for r in records[20:]]
    produce_transactionally(settings, topic, [(r["sensor_id"].encode(), p, None) for r, p in zip(records, payloads)])

    raw = read_until(settings, topic, len(records), bytes)
    assert {schema_id_of(p) for p in raw} == {schema_id}  # both write the same registered id
    theirs_in = AvroDeserializer(_client(settings))
    by_them = [theirs_in(p, context) for p in raw]
    by_us = [ours.decode(p) for p in raw]
    assert sorted((r["sensor_id"], r["temperature"]) for r in by_them) == sorted(
        (r["sensor_id"], r["temperature"]) for r in records)
    assert sorted(by_us, key=lambda r: r["sensor_id"]) == sorted(records, key=lambda r: r["sensor_id"])


def test_a_compatible_v2_is_accepted_and_read_as_v1_an_incompatible_one_is_refused(registry, fresh_topics):
    (topic,) = fresh_topics("evolve")
    subject = subject_for(topic)
    v1 = registry.register(subject, READING)
    registry.set_compatibility(subject, "BACKWARD")
    with pytest.raises(IncompatibleSchema) as refused:
        registry.register(subject, READING_BROKEN)
    assert "409" in str(refused.value) and "\n" not in str(refused.value)
    assert not registry.is_compatible(subject, READING_BROKEN)
    v2 = registry.register(subject, READING_V2)
    assert v2 != v1 and registry.version(subject).version == 2
    payload = RegistryAvroSerde(READING_V2, v2, registry).encode(
        {"sensor_id": "s1", "temperature": 21.5, "ts": 1_764_000_000_000, "site": "north"})
    fresh_reader = RegistryAvroSerde(READING, v1, SchemaRegistry(registry.settings))  # v2 fetched by id
    assert fresh_reader.decode(payload) == {"sensor_id": "s1", "temperature": 21.5, "ts": 1_764_000_000_000}


def test_consume_prints_any_registered_topic_through_the_registry(settings, registry, fresh_topics, capsys):
    (topic,) = fresh_topics("labels")
    schema_id = register_topic_schemas(registry, {"labels": topic})[subject_for(topic)]
    serde = RegistryAvroSerde(load_schema("label"), schema_id, registry)
    label = {"event_id": "e-1", "correlation_id": None, "label": 1, "event_time": 1_764_000_000_000,
             "label_time": 1_764_000_000_500}
    unknown_id = b"\x00\x7f\x7f\x7f\x7f"
    produce_transactionally(settings, topic, [(b"e-1", serde.encode(label), None), (b"bad", unknown_id, None)])
    read_until(settings, topic, 2, bytes)
    assert main(["consume", topic, "--from-beginning", "--max", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert lines[0] == {"_schema": "io.streamscore.v1.GroundTruthLabel", **label}
    assert "schema id 2139062143 is not in the registry" in lines[1]["_error"]
