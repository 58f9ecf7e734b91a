"""Two models on two schemas scored at the same time on one stack: the sensor model on the Confluent wire
(schemas from the registry) beside the fraud model; each id exactly once, scores equal to ONNX Runtime's,
every bad record a dead letter with its bytes and reason, the output readable by confluent-kafka."""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections import Counter

import numpy as np
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from topic_reads import read_until, read_with_flink_sql

from connectors.kafka_transactions import produce_transactionally
from connectors.schema_registry import SchemaRegistry, subject_for, topic_reader
from jobs.flink_cluster import cancel_job, cancel_jobs
from jobs.submit import scoring_config_from_settings, submit_scoring, submit_together
from models.registry import load_model
from models.runtime import OnnxScorer
from models.sensor_demo import generate_readings
from schemas import serde_for
from schemas.confluent import schema_id_key
from streamscore.cli.produce import ProduceLimits, model_wire, produce_events
from streamscore.harness.traffic import TrafficPlan, TrafficTopics, run_traffic

pytestmark = pytest.mark.integration
READINGS = 3000
OUTAGE_S = 12.0  # the registry outage the job must score through here; the 30-s one is test_faults' sensor run


def _bad_records(good: bytes, settings, other_topic: str) -> dict[str, tuple[bytes, str, str]]:
    """kind -> (payload, dead-letter stage, reason prefix) of records the job must dead-letter."""
    registry = SchemaRegistry(settings.schema_registry)
    other_id = registry.register(subject_for(other_topic), {"type": "record", "name": "Other",
                                                             "fields": [{"name": "x", "type": "int"}]})
    framed_v1 = serde_for("event").encode  # the demo's single-object wire: not this topic's
    return {
        "empty": (b"", "DECODE", "empty"),
        "bad_magic": (b"\x01" + good[1:], "DECODE", "bad_magic"),
        "single_object": (framed_v1(_fraud_event()), "DECODE", "bad_magic"),
        "unknown_id": (b"\x00" + schema_id_key(2_000_000_000) + good[5:], "DECODE", "unknown_schema_id"),
        "other_subject": (b"\x00" + schema_id_key(other_id) + b"\x02", "DECODE", "wrong_schema"),
        "truncated": (good[:-4], "DECODE", "truncated"),
        "trailing": (good + b"\x00", "DECODE", "trailing_bytes"),
    }


def _fraud_event() -> dict:
    from models.demo_data import generate_events

    return generate_events(1, seed=3, id_prefix="x-")[0]


def test_sensor_and_fraud_models_score_at_the_same_time(settings, fresh_topics):
    """Three jobs on one stack: the sensor model (Confluent wire, decoded in the JVM), the fraud model
    (the Confluent wire too, its own schema: io.streamscore.v1.Event) and the sensor model again on JSON input."""
    readings_topic, scored, dead, other = fresh_topics("readings", "scored", "dead", "other", partitions=2)
    events, fraud_scored, fraud_dead = fresh_topics("events", "scored", "dead", partitions=2)
    tag = uuid.uuid4().hex[:8]
    json_config, json_topics = _json_job(settings, fresh_topics, tag)
    jobs = submit_together(settings, [scoring_config_from_settings(
        settings, model="sensor:1.0.0", events_topic=readings_topic, scored_topic=scored, dead_letter_topic=dead,
        job_name=f"it-sensor-{tag}", startup_mode="earliest-offset"), scoring_config_from_settings(
        settings, events_topic=events, scored_topic=fraud_scored, dead_letter_topic=fraud_dead,
        job_name=f"it-fraud-{tag}", startup_mode="earliest-offset"), json_config])
    try:
        json_readings = _produce_json(settings, json_topics[0], tag)
        readings = [{k: v for k, v in r.items() if k != "is_anomaly"}
                    for r in generate_readings(READINGS, seed=31, prefix=f"it-{tag}-")]
        readings[7]["temperature_c"] = 900.0  # out of the contract's range: a CONTRACT dead letter
        wire = model_wire(settings, "sensor:1.0.0", readings_topic)
        produce_events(settings, readings_topic, readings, wire=wire)
        bad = _bad_records(wire.encode(readings[0]), settings, other)
        produce_transactionally(settings, readings_topic, [(k.encode(), p, None) for k, (p, _, _) in bad.items()])
        fraud = run_traffic(settings, TrafficPlan(2000, f"it-{tag}-f-", seed=5, malformed_every=100,
                                                  transaction_size=500, timeout_s=240),
                            TrafficTopics(events, fraud_scored, fraud_dead))
        scored_raw = read_until(settings, scored, READINGS - 1, bytes)
        dead_raw = read_until(settings, dead, len(bad) + 1, bytes)
        _check_json_output(settings, json_topics, json_readings)  # the JSON-input job, at the same time
    finally:
        cancel_jobs(settings, jobs)

    # the fraud model, on its own topics, at the same time
    assert fraud.scored_duplicates == 0 and sorted(fraud.scored) == sorted(fraud.valid_ids)
    assert len(fraud.dead_letters) == len(fraud.malformed) == 20

    # the sensor model's output, read as any Kafka tool reads it: confluent-kafka's deserializer + registry
    client = SchemaRegistryClient({"url": settings.schema_registry.url})
    scored_records = [AvroDeserializer(client)(p, SerializationContext(scored, MessageField.VALUE))
                      for p in scored_raw]
    ids = [r["event_id"] for r in scored_records]
    valid = [r for i, r in enumerate(readings) if i != 7]
    assert len(ids) == len(set(ids)) == READINGS - 1 and set(ids) == {r["reading_id"] for r in valid}
    model = load_model("sensor:1.0.0")
    matrix, rejects, _ = model.contract.to_matrix(valid)
    assert not rejects
    expected = dict(zip((r["reading_id"] for r in valid), OnnxScorer(model).predict_batch(matrix)))
    got = {r["event_id"]: r for r in scored_records}
    np.testing.assert_allclose([got[i]["score"] for i in expected], list(expected.values()), rtol=0, atol=1e-6)
    # the card's time field (confluent-kafka reads timestamp-millis as an aware datetime)
    assert all(round(got[r["reading_id"]]["event_time"].timestamp() * 1000) == r["ts"] for r in valid)
    assert {r["model_name"] for r in scored_records} == {"sensor"}

    dead_records = [AvroDeserializer(client)(p, SerializationContext(dead, MessageField.VALUE)) for p in dead_raw]
    assert len(dead_records) == len(bad) + 1
    by_bytes = Counter(d["original_bytes"] for d in dead_records)
    assert by_bytes == Counter([*(p for p, _, _ in bad.values()), wire.encode(readings[7])])
    coordinates = {(d["source_partition"], d["source_offset"]) for d in dead_records}
    assert len(coordinates) == len(dead_records)
    for payload, stage, reason in bad.values():
        (record,) = [d for d in dead_records if d["original_bytes"] == payload]
        assert (record["stage"], record["reason"].split(":")[0]) == (stage, reason), record["reason"]
        assert record["source_topic"] == readings_topic
    (contract,) = [d for d in dead_records if d["stage"] == "CONTRACT"]
    assert contract["event_id"] == readings[7]["reading_id"] and "temperature_c" in contract["reason"]

    # ... and as Flink SQL reads it: a table in Flink's own avro-confluent format on the scored topic
    rows = read_with_flink_sql(settings, scored, "event_id STRING NOT NULL, score DOUBLE NOT NULL, label INT NOT NULL, "
                               "model_name STRING NOT NULL, event_time TIMESTAMP(3) NOT NULL",
                               "event_id, score, label, model_name, event_time", expected=len(got))
    assert sorted(r[0] for r in rows) == sorted(got)
    assert all((score, label, name) == (got[i]["score"], got[i]["label"], "sensor")
               for i, score, label, name, _ in rows)
    epoch = datetime.datetime(1970, 1, 1)
    ts = {r["reading_id"]: r["ts"] for r in valid}
    assert all(round((when - epoch).total_seconds() * 1000) == ts[i] for i, *_, when in rows)


def _scored_ids(settings, topic: str, count: int) -> list[str]:
    from schemas.confluent import RegisteredReader

    reader = RegisteredReader(SchemaRegistry(settings.schema_registry))
    return [reader.decode(p)[1]["event_id"] for p in read_until(settings, topic, count, bytes)]


def _restarts(settings, job_id: str) -> str:
    """The job's failures as Flink's REST API reports them (for an assertion message)."""
    from jobs.flink_cluster import job_failures

    failures = job_failures(settings, job_id)
    return f"{len(failures)} failure(s): " + " | ".join(failures[:3])


def test_scoring_goes_on_through_a_registry_outage_and_a_compatible_v2(settings, stack, fresh_topics):
    from connectors.schema_registry import IncompatibleSchema, RegistryUnavailable
    from models.sensor_demo import READING_SCHEMA
    from schemas.confluent import RegistryAvroSerde
    from streamscore.stack import _specs
    from streamscore.stack.process import stop_process

    readings_topic, scored, dead = fresh_topics("readings", "scored", "dead")
    tag = uuid.uuid4().hex[:8]
    job = submit_scoring(settings, scoring_config_from_settings(
        settings, model="sensor:1.0.0", events_topic=readings_topic, scored_topic=scored, dead_letter_topic=dead,
        job_name=f"it-evolve-{tag}", startup_mode="earliest-offset"))
    readings = [{k: v for k, v in r.items() if k != "is_anomaly"}
                for r in generate_readings(1500, seed=41, prefix=f"ev-{tag}-")]
    registry_service = stack.service("registry")
    try:
        wire = model_wire(settings, "sensor:1.0.0", readings_topic)
        produce_events(settings, readings_topic, readings[:500], wire=wire)
        assert len(_scored_ids(settings, scored, 500)) == 500
        for spec in _specs(registry_service):  # the registry goes away for 12 s; the job's known id keeps flowing
            stop_process(spec)
        down_since = time.monotonic()
        produce_events(settings, readings_topic, readings[500:750], wire=wire)  # the producer's id is cached too
        assert len(read_until(settings, scored, 750, bytes, timeout_s=25)) == 750, \
            f"scoring stopped while the registry was down; {_restarts(settings, job)}"
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_since)))
        with pytest.raises(RegistryUnavailable):  # still down, 12 s on, as the rest of the outage's readings go
            SchemaRegistry(settings.schema_registry, timeout_s=2).subjects()
        produce_events(settings, readings_topic, readings[750:1000], wire=wire)
        during = read_until(settings, scored, 1000, bytes, timeout_s=90)
        assert len(during) == 1000, f"scoring stopped while the registry was down; {_restarts(settings, job)}"
        stack.up(only=["registry"])
        registry = SchemaRegistry(settings.schema_registry)
        v2 = {**READING_SCHEMA, "fields": [*READING_SCHEMA["fields"],
                                           {"name": "site", "type": ["null", "string"], "default": None}]}
        v2_id = registry.register(subject_for(readings_topic), v2)
        v2_serde = RegistryAvroSerde(v2, v2_id, registry)
        produce_transactionally(settings, readings_topic, [(r["reading_id"].encode(), v2_serde.encode(
            {**r, "site": "north"}), r["ts"]) for r in readings[1000:]])
        ids = _scored_ids(settings, scored, 1500)
        broken = {**READING_SCHEMA, "fields": [{**f, "type": "string"} if f["name"] == "rpm" else f
                                               for f in READING_SCHEMA["fields"]]}
        with pytest.raises(IncompatibleSchema, match="409"):
            registry.register(subject_for(readings_topic), broken)
    finally:
        stack.up(only=["registry"])
        cancel_job(settings, job)
    assert sorted(ids) == sorted(r["reading_id"] for r in readings)  # each once: v1, during the outage, v2
    assert read_until(settings, dead, 1, bytes, timeout_s=5) == []


def test_the_sensor_models_drift_sidecar_alerts_on_its_own_shifted_feature(settings, fresh_topics):
    """Its own events (Confluent wire) against its own reference profile: quiet on 4000 normal readings,
    an alert on temperature_c once the machines run 15 C hotter."""
    import time

    from connectors.kafka_reads import read_topic
    from jobs.submit import drift_config_from_settings, submit_together

    readings_topic, scored, dead, alerts_topic, control_topic = fresh_topics(
        "readings", "scored", "dead", "alerts", "control")
    tag = uuid.uuid4().hex[:8]
    jobs = submit_together(settings, [scoring_config_from_settings(
        settings, model="sensor:1.0.0", events_topic=readings_topic, scored_topic=scored, dead_letter_topic=dead,
        job_name=f"it-sensor-{tag}", startup_mode="earliest-offset"),
        drift_config_from_settings(
            settings, model="sensor:1.0.0", events_topic=readings_topic, scored_topic=scored,
            alerts_topic=alerts_topic, control_topic=control_topic, job_name=f"it-sensor-drift-{tag}",
            startup_mode="earliest-offset", window_events=1000)])
    try:
        readings = [{k: v for k, v in r.items() if k != "is_anomaly"}
                    for r in generate_readings(8000, seed=51, prefix=f"dr-{tag}-")]
        now = int(time.time() * 1000)
        for i, reading in enumerate(readings):
            reading["ts"] = now + i
            if i >= 4000:
                reading["temperature_c"] = round(reading["temperature_c"] + 15.0, 3)
        produce_events(settings, readings_topic, readings, ProduceLimits(transaction_size=250),
                       wire=model_wire(settings, "sensor:1.0.0", readings_topic))
        alerts_serde = topic_reader(SchemaRegistry(settings.schema_registry), "drift_alert")
        deadline, alerts = time.monotonic() + 120, []
        while time.monotonic() < deadline and not any(a["feature"] == "temperature_c" for a in alerts):
            time.sleep(2)
            alerts = [alerts_serde.decode(r.value) for r in read_topic(settings, alerts_topic, idle_timeout_s=2)]
    finally:
        cancel_jobs(settings, jobs)
    assert any(a["feature"] == "temperature_c" for a in alerts), alerts
    assert all(a["model_name"] == "sensor" for a in alerts)
    assert all(a["window_end"] > now + 4000 for a in alerts), \
        [(a["feature"], a["window_start"], a["window_end"]) for a in alerts]  # nothing before the shift



# the last: JSON nested deeper than a decoder goes (a dead letter, never a failed task)
BAD_JSON = [b"not json", b"[1, 2]", b'{"reading_id": "js-missing"}', b'{"reading_id": 5}', b"[" * 5000]
# valid JSON of the schema's types, but its id holds a lone surrogate: no Avro string (nor Kafka key) can
# carry it, so the scored record cannot be encoded -- an ENCODE dead letter, and the stream goes on
UNENCODABLE_ID = "js-\\ud800"


def _json_job(settings, fresh_topics, tag: str):
    """A third job beside the two: the sensor model reading JSON (``--input-format json``) from its own topic."""
    from jobs.job_wire import RegistryWire

    topics = fresh_topics("json-readings", "scored", "dead")
    config = scoring_config_from_settings(
        settings, model="sensor:1.0.0", events_topic=topics[0], scored_topic=topics[1], dead_letter_topic=topics[2],
        job_name=f"it-json-{tag}", startup_mode="earliest-offset", registry=RegistryWire(events_format="json"))
    return config, topics


def _produce_json(settings, topic: str, tag: str) -> list[dict]:
    readings = [{k: v for k, v in r.items() if k != "is_anomaly"}
                for r in generate_readings(400, seed=43, prefix=f"js-{tag}-")]
    produce_events(settings, topic, readings, wire=model_wire(settings, "sensor:1.0.0", topic, "json"))
    produce_transactionally(settings, topic, [(b"bad", p, None) for p in [*BAD_JSON, _unencodable(readings[0])]])
    return readings


def _unencodable(reading: dict) -> bytes:
    return json.dumps({**reading, "reading_id": "ID"}).replace('"ID"', f'"{UNENCODABLE_ID}"').encode()


def _check_json_output(settings, topics, readings) -> None:
    """Every JSON reading scored once, as ONNX Runtime scores it; every bad message a bad_json dead letter."""
    from schemas.confluent import RegisteredReader

    reader = RegisteredReader(SchemaRegistry(settings.schema_registry))
    scored_records = [reader.decode(p)[1] for p in read_until(settings, topics[1], len(readings), bytes)]
    dead_records = [reader.decode(p)[1] for p in read_until(settings, topics[2], len(BAD_JSON) + 1, bytes)]
    model = load_model("sensor:1.0.0")
    matrix, rejects, _ = model.contract.to_matrix(readings)
    assert not rejects  # every generated reading meets the contract: only the bad messages are dead letters
    expected = dict(zip((r["reading_id"] for r in readings), OnnxScorer(model).predict_batch(matrix)))
    got = {r["event_id"]: r["score"] for r in scored_records}
    assert len(scored_records) == len(got) == len(readings) and set(got) == set(expected)
    np.testing.assert_allclose([got[i] for i in expected], list(expected.values()), rtol=0, atol=1e-6)
    encode_failed = [d for d in dead_records if d["stage"] == "ENCODE"]
    assert [d["original_bytes"] for d in encode_failed] == [_unencodable(readings[0])]
    assert encode_failed[0]["event_id"] == UNENCODABLE_ID  # escaped: the dead letter itself stays writable
    assert "surrogates not allowed" in encode_failed[0]["reason"]
    decode_failed = [d for d in dead_records if d["stage"] != "ENCODE"]
    assert sorted(d["original_bytes"] for d in decode_failed) == sorted(BAD_JSON)
    assert {(d["stage"], d["reason"].split(":")[0]) for d in decode_failed} == {("DECODE", "bad_json")}
