"""Fuzzed bad input on the real stack: every bad payload dead-lettered with a reason, no restart, valid ones scored.

The job scores with ``fraud-poison`` (``poison_model.py``): the demo contract and a model that returns
NaN for one amount the contract accepts, so one kind of input fails in the model itself (INFERENCE)."""

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

from connectors.kafka_clients import produce_transactionally
from jobs.flink_cluster import cancel_job, rest
from jobs.submit import scoring_config_from_settings, submit_scoring
from models.demo_data import FEATURES, generate_events
from schemas import load_schema, serde_for
from schemas.serde import AvroSerde

pytestmark = pytest.mark.integration

EVENT = serde_for("event")
NUMERIC = [f.name for f in FEATURES if f.categories is None]
DOUBLES = [f.name for f in FEATURES if f.dtype == "double"]
INTS = [f.name for f in FEATURES if f.dtype == "int" and f.categories is None]
CATEGORICAL = [f.name for f in FEATURES if f.categories is not None]
BASE = generate_events(50, seed=77, id_prefix="fuzz-base-")


def _variant_serde(mutate) -> AvroSerde:
    schema = copy.deepcopy(load_schema("event"))
    mutate(schema["fields"])
    return AvroSerde(schema)


def _drop_field(fields, name):
    fields[:] = [f for f in fields if f["name"] != name]


def _retype_field(fields, name):
    for f in fields:
        if f["name"] == name:
            f["type"] = "string"


KINDS = ("truncated", "empty", "foreign_fingerprint", "missing_field", "wrong_type", "non_finite",
         "out_of_range", "unknown_category", "oversized", "model_fails", "far_ahead")


def bad_payload(rng: random.Random, kind: str):
    """(kind, payload, expected dead-letter stage) for one certainly-bad input, parameters drawn at random."""
    event = dict(rng.choice(BASE))
    event["event_id"] = f"fuzz-{rng.randrange(10**12)}"
    good = EVENT.encode(event)
    if kind == "truncated":
        return kind, good[: rng.randrange(1, len(good))], "DECODE"
    if kind == "empty":
        return kind, b"", "DECODE"
    if kind == "foreign_fingerprint":
        return kind, good[:2] + rng.randbytes(8) + good[10:], "DECODE"
    if kind == "missing_field":
        name = rng.choice(NUMERIC + CATEGORICAL)
        event.pop(name)
        return kind, _variant_serde(lambda f: _drop_field(f, name)).encode(event), "DECODE"
    if kind == "wrong_type":
        name = rng.choice(NUMERIC)
        event[name] = str(rng.random())
        return kind, _variant_serde(lambda f: _retype_field(f, name)).encode(event), "DECODE"
    if kind == "non_finite":
        event[rng.choice(DOUBLES)] = rng.choice([math.nan, math.inf, -math.inf])
        return kind, EVENT.encode(event), "CONTRACT"
    if kind == "out_of_range":
        event[rng.choice(INTS)] = rng.randrange(10**7, 2**31 - 1)
        return kind, EVENT.encode(event), "CONTRACT"
    if kind == "model_fails":
        event["amount"] = POISON_AMOUNT
        return kind, EVENT.encode(event), "INFERENCE"
    if kind == "far_ahead":  # a producer clock hours ahead: no control view can route it (it failed the task)
        event["event_time"] = int(time.time() * 1000) + rng.randrange(3_600_000, 10**9)
        return kind, EVENT.encode(event), "CONTRACT"
    if kind == "unknown_category":
        event[rng.choice(CATEGORICAL)] = f"zz-{rng.randrange(10**6)}"
        return kind, EVENT.encode(event), "CONTRACT"
    return kind, good + rng.randbytes(rng.randrange(1, 64)) * 8000, "DECODE"  # up to ~500 KB


def _run(settings, fresh_topics, bad, registry: Path):
    events, scored, dead, control, shadow = fresh_topics("events", "scored", "dead", "control", "shadow")
    tag = uuid.uuid4().hex[:8]
    config = scoring_config_from_settings(settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead,
                                          control_topic=control, shadow_topic=shadow,  # routed by event time
                                          job_name=f"it-fuzz-{tag}", startup_mode="earliest-offset",
                                          model=register_poison_model(registry), registry_dir=str(registry))
    job_id = submit_scoring(settings, config)
    valid = generate_events(len(bad), seed=78, id_prefix=f"ok-{tag}-")
    items = []
    for (kind, payload, _), event in zip(bad, valid):  # each bad payload is followed by a valid event
        items.append((f"bad-{kind}".encode(), payload, None))
        items.append((event["event_id"].encode(), EVENT.encode(event), None))
    try:
        produce_transactionally(settings, events, items, transaction_size=50)
        scored_ids = [r["event_id"] for r in read_until(settings, scored, len(valid), serde_for("scored").decode)]
        dead_letters = read_until(settings, dead, len(bad), serde_for("dead_letter").decode)
        restarts = rest(settings, f"/jobs/{job_id}")  # the job still runs, never restarted by input
        metrics = rest(settings, f"/jobs/{job_id}/metrics?get=numRestarts")
    finally:
        cancel_job(settings, job_id)
    return valid, scored_ids, dead_letters, restarts["state"], metrics


def test_fuzzed_bad_input_is_dead_lettered_and_never_stops_the_stream(settings, fresh_topics, tmp_path):
    """165 bad payloads of eleven kinds, random parameters (seeded), each followed by a valid event.

    (Property-based fuzzing of the same decode/contract path with hypothesis runs in
    tests/unit/test_batch_scorer.py and test_serde.py; here the real job, broker and sinks.)
    """
    rng = random.Random(20261129)
    bad = [bad_payload(rng, KINDS[i % len(KINDS)]) for i in range(15 * len(KINDS))]
    valid, scored_ids, dead_letters, state, metrics = _run(settings, fresh_topics, bad, tmp_path)
    assert state == "RUNNING"
    assert metrics and float(metrics[0]["value"]) == 0, metrics  # input never restarted the job
    assert sorted(scored_ids) == sorted(e["event_id"] for e in valid)  # the next valid event is scored
    assert len(dead_letters) == len(bad)
    by_offset = sorted(dead_letters, key=lambda d: (d["source_partition"], d["source_offset"]))
    assert [d["original_bytes"] for d in by_offset] == [payload for _, payload, _ in bad]
    for (kind, _, stage), dead in zip(bad, by_offset):
        assert dead["stage"] == stage, (kind, dead["reason"])
        assert dead["reason"], kind
        assert dead["reason"].startswith("event_time_ahead") == (kind == "far_ahead"), (kind, dead["reason"])
