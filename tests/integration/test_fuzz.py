"""Fuzzed bad input on the real stack: every bad payload dead-lettered with a reason, no restart, valid ones scored.

The events are the demo fraud transactions on the Confluent wire (the registry's id of their schema
under ``<events>-value``). The job scores with ``fraud-poison`` (``poison_model.py``): the demo
contract and a model that returns NaN for one amount the contract accepts, so one kind of input fails
in the model itself (INFERENCE)."""

from __future__ import annotations

import copy
import math
import random
import time
import uuid
from pathlib import Path

import pytest
from poison_model import POISON_AMOUNT, register_poison_model
from topic_reads import read_until

from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from connectors.schema_registry import SchemaRegistry, subject_for, topic_reader, topic_writer
from jobs.flink_cluster import cancel_job, job_failures, rest
from jobs.submit import scoring_config_from_settings, submit_scoring
from models.demo_data import FEATURES, generate_events
from schemas import load_schema, serde_for
from schemas.confluent import RegistryAvroSerde, schema_id_key
from schemas.serde import schema_document

pytestmark = pytest.mark.integration

NUMERIC = [f.name for f in FEATURES if f.categories is None]
DOUBLES = [f.name for f in FEATURES if f.dtype == "double"]
INTS = [f.name for f in FEATURES if f.dtype == "int" and f.categories is None]
CATEGORICAL = [f.name for f in FEATURES if f.categories is not None]
BASE = generate_events(50, seed=77, id_prefix="fuzz-base-")


class Writers:
    """The events' own writer, and writers of registered variants of their schema (under another subject,
    so the events' own subject keeps its compatibility rule): ids the job can look up, bodies it cannot read."""

    def __init__(self, settings, events_topic: str):
        self.registry = SchemaRegistry(settings.schema_registry)
        self.events = topic_writer(self.registry, events_topic, schema_document("event"))
        self._variants = f"{events_topic}-variant"
        self._count = 0

    def variant(self, mutate) -> RegistryAvroSerde:
        schema = copy.deepcopy(load_schema("event"))
        mutate(schema["fields"])
        self._count += 1  # a subject each: no compatibility rule between two variants
        schema_id = self.registry.register(f"{self._variants}-{self._count}-value", schema)
        return RegistryAvroSerde(schema, schema_id, self.registry)


def _drop_field(fields, name):
    fields[:] = [f for f in fields if f["name"] != name]


def _retype_field(fields, name):
    for f in fields:
        if f["name"] == name:
            f["type"] = "string"


KINDS = ("truncated", "empty", "tombstone", "bad_magic", "single_object", "unknown_schema_id", "other_subject",
         "missing_field", "wrong_type", "non_finite", "out_of_range", "unknown_category", "oversized",
         "model_fails", "far_ahead")


def bad_payload(rng: random.Random, kind: str, writers: Writers):
    """(kind, payload, expected dead-letter stage) for one certainly-bad input, parameters drawn at random."""
    event = dict(rng.choice(BASE))
    event["event_id"] = f"fuzz-{rng.randrange(10**12)}"
    encode = writers.events.encode
    good = encode(event)
    if kind == "tombstone":  # a record without a value: nothing to decode, nothing to keep but where it was
        return kind, None, "DECODE"
    if kind in ("truncated", "empty", "bad_magic", "single_object", "unknown_schema_id", "oversized"):
        return kind, _broken_frame(rng, kind, good, event), "DECODE"
    if kind == "other_subject":  # a valid id, of the scored records' schema: not an event
        scored_id = writers.registry.register(subject_for(f"{rng.randrange(10**9)}-scored"), load_schema("scored"))
        return kind, b"\x00" + schema_id_key(scored_id) + good[5:], "DECODE"
    if kind == "missing_field":
        name = rng.choice(NUMERIC + CATEGORICAL)
        event.pop(name)
        return kind, writers.variant(lambda f: _drop_field(f, name)).encode(event), "DECODE"
    if kind == "wrong_type":
        name = rng.choice(NUMERIC)
        event[name] = str(rng.random())
        return kind, writers.variant(lambda f: _retype_field(f, name)).encode(event), "DECODE"
    return kind, encode(_breaks_contract(rng, kind, event)), "INFERENCE" if kind == "model_fails" else "CONTRACT"


def _broken_frame(rng: random.Random, kind: str, good: bytes, event: dict) -> bytes:
    if kind == "truncated":
        return good[: rng.randrange(1, len(good))]
    if kind == "empty":
        return b""
    if kind == "bad_magic":
        return bytes([rng.randrange(1, 256)]) + good[1:]
    if kind == "single_object":  # the demo events' framing before the registry
        return serde_for("event").encode(event)
    if kind == "unknown_schema_id":  # an id no registry gave
        return b"\x00" + schema_id_key(rng.randrange(10**9, 2**31)) + good[5:]
    return good + rng.randbytes(rng.randrange(1, 64)) * 8000  # oversized: up to ~500 KB after the record


def _breaks_contract(rng: random.Random, kind: str, event: dict) -> dict:
    if kind == "non_finite":
        event[rng.choice(DOUBLES)] = rng.choice([math.nan, math.inf, -math.inf])
    elif kind == "out_of_range":
        event[rng.choice(INTS)] = rng.randrange(10**7, 2**31 - 1)
    elif kind == "model_fails":
        event["amount"] = POISON_AMOUNT
    elif kind == "far_ahead":  # a producer clock hours ahead: no control view can route it (it failed the task)
        event["event_time"] = int(time.time() * 1000) + rng.randrange(3_600_000, 10**9)
    else:  # unknown_category
        event[rng.choice(CATEGORICAL)] = f"zz-{rng.randrange(10**6)}"
    return event


def _run(settings, fresh_topics, registry: Path):
    events, scored, dead, control, shadow = fresh_topics("events", "scored", "dead", "control", "shadow")
    tag = uuid.uuid4().hex[:8]
    writers = Writers(settings, events)
    rng = random.Random(20261129)
    bad = [bad_payload(rng, KINDS[i % len(KINDS)], writers) for i in range(12 * len(KINDS))]
    config = scoring_config_from_settings(settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead,
                                          control_topic=control, shadow_topic=shadow,  # routed by event time
                                          job_name=f"it-fuzz-{tag}", startup_mode="earliest-offset",
                                          model=register_poison_model(registry), registry_dir=str(registry))
    job_id = submit_scoring(settings, config)
    valid = generate_events(len(bad), seed=78, id_prefix=f"ok-{tag}-")
    items = []
    for (kind, payload, _), event in zip(bad, valid):  # each bad payload is followed by a valid event
        items.append((f"bad-{kind}".encode(), payload, None))
        items.append((event["event_id"].encode(), writers.events.encode(event), None))
    try:
        produce_transactionally(settings, events, items, TransactionPlan(transaction_size=50))
        scored_ids = [r["event_id"] for r in read_until(settings, scored, len(valid),
                                                        topic_reader(writers.registry, "scored").decode)]
        dead_letters = read_until(settings, dead, len(bad), topic_reader(writers.registry, "dead_letter").decode)
        state = rest(settings, f"/jobs/{job_id}")["state"]  # the job still runs, never restarted by input
        restarts = _num_restarts(settings, job_id)
        failures = job_failures(settings, job_id)
    finally:
        cancel_job(settings, job_id)
    return bad, valid, scored_ids, dead_letters, state, (restarts, failures)


def _num_restarts(settings, job_id: str, timeout_s: float = 30.0) -> float | None:
    """The job's numRestarts gauge; Flink's REST metric fetcher may not have it yet right after a short run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        metrics = rest(settings, f"/jobs/{job_id}/metrics?get=numRestarts")
        if metrics:
            return float(metrics[0]["value"])
        time.sleep(1.0)
    return None


def test_fuzzed_bad_input_is_dead_lettered_and_never_stops_the_stream(settings, fresh_topics, tmp_path):
    """180 bad payloads of fifteen kinds (a tombstone among them), random parameters (seeded), each followed
    by a valid event.

    (Property-based fuzzing of the same decode/contract path with hypothesis runs in
    tests/unit/test_batch_scorer.py and test_serde.py; here the real job, broker and sinks.)
    """
    bad, valid, scored_ids, dead_letters, state, (restarts, failures) = _run(settings, fresh_topics, tmp_path)
    assert state == "RUNNING"
    assert failures == [], failures  # input never failed the job ...
    assert restarts == 0, restarts  # ... nor restarted it
    assert sorted(scored_ids) == sorted(e["event_id"] for e in valid)  # the next valid event is scored
    assert len(dead_letters) == len(bad)
    by_offset = sorted(dead_letters, key=lambda d: (d["source_partition"], d["source_offset"]))
    assert [d["original_bytes"] for d in by_offset] == [payload or b"" for _, payload, _ in bad]
    for (kind, _, stage), dead in zip(bad, by_offset):
        assert dead["stage"] == stage, (kind, dead["reason"])
        assert dead["reason"], kind
        assert dead["reason"].startswith("event_time_ahead") == (kind == "far_ahead"), (kind, dead["reason"])
