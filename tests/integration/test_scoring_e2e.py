"""The scoring job on the real stack: exactly once, right scores, right dead letters, batch-size invariant."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import numpy as np
import pytest

from jobs.flink_cluster import cancel_job
from jobs.submit import scoring_config_from_settings, submit_scoring
from models.registry import load_model
from models.runtime import OnnxScorer
from schemas.malformed import CONFLUENT_MALFORMED_KINDS
from streamscore.harness.traffic import TrafficPlan, TrafficTopics, run_traffic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference_scorer():
    return OnnxScorer(load_model("fraud:1.0.0"))


def _run_job(settings, fresh_topics, count, *, max_batch_size=512, rate=0.0, seed=11, malformed_every=100):
    events, scored, dead = fresh_topics("events", "scored", "dead", partitions=2)
    tag = uuid.uuid4().hex[:8]
    config = scoring_config_from_settings(
        settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead,
        job_name=f"it-scoring-{tag}", max_batch_size=max_batch_size, startup_mode="earliest-offset")
    job_id = submit_scoring(settings, config)
    try:
        plan = TrafficPlan(count, f"it-{tag}-", seed=seed, rate=rate, malformed_every=malformed_every,
                           transaction_size=500, timeout_s=240)
        return run_traffic(settings, plan, TrafficTopics(events, scored, dead)), events
    finally:
        cancel_job(settings, job_id)


def test_50k_events_are_each_scored_or_dead_lettered_exactly_once(settings, fresh_topics, reference_scorer):
    report, events_topic = _run_job(settings, fresh_topics, 50_000)
    assert report.produced == 50_000
    assert len(report.malformed) == 500 and len(report.valid_ids) == 49_500

    # every valid id exactly once in scored, nothing else there
    assert report.scored_duplicates == 0
    assert sorted(report.scored) == sorted(report.valid_ids)

    # the score equals ONNX Runtime run directly on the same features
    from models.demo_data import generate_events

    contract = load_model("fraud:1.0.0").contract
    prefix = report.valid_ids[0].rsplit("-", 1)[0] + "-"
    events = {e["event_id"]: e for e in generate_events(50_000, seed=11, id_prefix=prefix)}
    matrix, rejects, _ = contract.to_matrix([events[i] for i in report.valid_ids])
    assert not rejects
    expected = reference_scorer.predict_batch(matrix)
    got = np.array([report.scored[i]["score"] for i in report.valid_ids])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    threshold = load_model("fraud:1.0.0").card.outputs.threshold
    assert all(report.scored[i]["label"] == int(report.scored[i]["score"] >= threshold) for i in report.valid_ids)

    # every malformed one exactly once in dead-letter, with the right stage and reason and its bytes
    # (header-only payloads are byte-identical, so compare as multisets and by source offset)
    assert Counter(d["original_bytes"] for d in report.dead_letters) == Counter(m.payload for m in report.malformed)
    coordinates = {(d["source_partition"], d["source_offset"]) for d in report.dead_letters}
    assert len(coordinates) == len(report.dead_letters), "a malformed record was dead-lettered twice"
    kind_of = {m.payload: m for m in report.malformed}
    for dead in report.dead_letters:
        bad = kind_of[dead["original_bytes"]]
        assert dead["stage"] == bad.stage, (bad.kind, dead["reason"])
        assert dead["reason"].startswith(bad.reason_prefix), (bad.kind, dead["reason"])
        assert dead["event_id"] == bad.event_id
        assert dead["source_topic"] == events_topic
    # the Confluent framing's breaks and the contract's (NaN in a double, an int beyond its training range)
    assert {m.kind for m in report.malformed} == {*CONFLUENT_MALFORMED_KINDS, "nan", "out_of_range"}


def test_batch_size_1_and_512_give_the_same_scores(settings, fresh_topics):
    one, _ = _run_job(settings, fresh_topics, 2_000, max_batch_size=1, seed=5, malformed_every=0)
    many, _ = _run_job(settings, fresh_topics, 2_000, max_batch_size=512, seed=5, malformed_every=0)
    assert len(one.scored) == len(many.scored) == 2_000
    sizes_one = {int(r["batch_id"].rsplit(":", 1)[1]) for r in one.scored.values()}
    assert sizes_one == {1}, "max batch size 1 must give one-record model calls"
    def suffix(report):
        return {i.split("-", 2)[2]: r["score"] for i, r in report.scored.items()}
    a, b = suffix(one), suffix(many)
    assert a.keys() == b.keys()
    assert max(abs(a[k] - b[k]) for k in a) <= 1e-6


def test_a_stalled_collector_is_recounted_from_a_fresh_read(settings, fresh_topics, monkeypatch):
    """The accounting harness itself: when its live consumer stops delivering (as seen once after
    a broker restart), a fresh read_committed read of the topics finishes the count, without
    counting any record twice."""
    from streamscore.harness import traffic

    def stalling_run(self):  # delivers the first 200 scored records, then hangs until stopped
        try:
            while not self.stop_event.is_set() and len(self.report.scored) < 200:
                for msg in self.consumer.consume(num_messages=50, timeout=0.2):
                    if msg.error() is None:
                        self._take(msg.topic(), msg.value(), time.time() * 1000.0)
            self.stop_event.wait()
        finally:
            self.consumer.close()

    monkeypatch.setattr(traffic._Collector, "run", stalling_run)
    monkeypatch.setattr(traffic, "STALL_S", 3.0)
    report, _ = _run_job(settings, fresh_topics, 3000)
    assert report.recounted >= 1
    assert sorted(report.scored) == sorted(report.valid_ids) and report.scored_duplicates == 0
    assert len(report.dead_letters) == len(report.malformed) == 30
