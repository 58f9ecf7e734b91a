"""Fuzzed bad input on the real stack: every bad payload dead-lettered with a reason, no restart, valid ones scored."""

from __future__ import annotations

import copy
import math
import uuid

import pytest
from hypothesis import HealthCheck, Phase, given, settings as hsettings, strategies as st

from connectors.kafka_clients import produce_transactionally, read_topic
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


@st.composite
def bad_payload(draw):
    """(kind, payload, expected dead-letter stage) for one certainly-bad input."""
    event = dict(draw(st.sampled_from(BASE)))
    event["event_id"] = f"fuzz-{draw(st.integers(0, 10**12))}"
    good = EVENT.encode(event)
    kind = draw(st.sampled_from(["truncated", "empty", "foreign_fingerprint", "missing_field", "wrong_type",
                                 "non_finite", "out_of_range", "unknown_category", "oversized"]))
    if kind == "truncated":
        return kind, good[: draw(st.integers(1, len(good) - 1))], "DECODE"
    if kind == "empty":
        return kind, b"", "DECODE"
    if kind == "foreign_fingerprint":
        return kind, good[:2] + draw(st.binary(min_size=8, max_size=8)) + good[10:], "DECODE"
    if kind == "missing_field":
        name = draw(st.sampled_from(NUMERIC + CATEGORICAL))
        event.pop(name)
        return kind, _variant_serde(lambda f: _drop_field(f, name)).encode(event), "DECODE"
    if kind == "wrong_type":
        name = draw(st.sampled_from(NUMERIC))
        event[name] = draw(st.text(max_size=8))
        return kind, _variant_serde(lambda f: _retype_field(f, name)).encode(event), "DECODE"
    if kind == "non_finite":
        event[draw(st.sampled_from(DOUBLES))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return kind, EVENT.encode(event), "CONTRACT"
    if kind == "out_of_range":
        event[draw(st.sampled_from(INTS))] = draw(st.integers(10**7, 2**31 - 1))
        return kind, EVENT.encode(event), "CONTRACT"
    if kind == "unknown_category":
        event[draw(st.sampled_from(CATEGORICAL))] = "zz-" + draw(st.text(max_size=6))
        return kind, EVENT.encode(event), "CONTRACT"
    return kind, good + draw(st.binary(min_size=1, max_size=64)) * 8000, "DECODE"  # up to ~500 KB


def _run(settings, fresh_topics, bad):
    events, scored, dead = fresh_topics("events", "scored", "dead")
    tag = uuid.uuid4().hex[:8]
    config = scoring_config_from_settings(settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead,
                                          job_name=f"it-fuzz-{tag}", startup_mode="earliest-offset")
    job_id = submit_scoring(settings, config)
    valid = generate_events(len(bad), seed=78, id_prefix=f"ok-{tag}-")
    items = []
    for (kind, payload, _), event in zip(bad, valid):  # each bad payload is followed by a valid event
        items.append((f"bad-{kind}".encode(), payload, None))
        items.append((event["event_id"].encode(), EVENT.encode(event), None))
    try:
        produce_transactionally(settings, events, items, transaction_size=50)
        scored_ids = [serde_for("scored").decode(r.value)["event_id"]
                      for r in read_topic(settings, scored, max_records=len(valid), idle_timeout_s=60)]
        dead_letters = [serde_for("dead_letter").decode(r.value)
                        for r in read_topic(settings, dead, max_records=len(bad), idle_timeout_s=30)]
        restarts = rest(settings, f"/jobs/{job_id}")  # the job still runs, never restarted by input
        metrics = rest(settings, f"/jobs/{job_id}/metrics?get=numRestarts")
    finally:
        cancel_job(settings, job_id)
    return valid, scored_ids, dead_letters, restarts["state"], metrics


def test_fuzzed_bad_input_is_dead_lettered_and_never_stops_the_stream(settings, fresh_topics):
    @hsettings(max_examples=1, derandomize=True, deadline=None, phases=[Phase.generate],
               suppress_health_check=list(HealthCheck))
    @given(st.lists(bad_payload(), min_size=150, max_size=150))
    def check(bad):
        valid, scored_ids, dead_letters, state, metrics = _run(settings, fresh_topics, bad)
        assert state == "RUNNING"
        assert metrics and float(metrics[0]["value"]) == 0, metrics
        assert sorted(scored_ids) == sorted(e["event_id"] for e in valid)
        assert len(dead_letters) == len(bad)
        by_offset = sorted(dead_letters, key=lambda d: (d["source_partition"], d["source_offset"]))
        assert [d["original_bytes"] for d in by_offset] == [payload for _, payload, _ in bad]
        for (kind, _, stage), dead in zip(bad, by_offset):
            assert dead["stage"] == stage, (kind, dead["reason"])
            assert dead["reason"], kind
        assert {kind for kind, _, _ in bad} >= {"truncated", "foreign_fingerprint", "missing_field", "non_finite"}

    check()
