"""Unit tests of jobs/batch_scorer.py: one micro-batch through decode -> contract -> ONNX -> output.

Runs the real demo model (``fraud:1.0.0``) with the real :class:`OnnxScorer` on CPU, one thread.
The only stand-ins are tiny predictor classes that fail (or return NaN) on purpose.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.dead_letter import MAX_REASON_CHARS
from jobs.batch_scorer import BatchResult, BatchScorer, ScorerSetup
from models.demo_data import generate_events
from models.registry import load_model
from models.runtime import OnnxScorer
from schemas import decode_any, serde_for
from schemas.malformed import MALFORMED_KINDS, malformed_variant

JOB = "unit-job"
TOPIC = "events-unit"
NOW_MS = 1_700_000_123_456
POISON_AMOUNT = 123_456.5  # exactly representable in float32; within the contract's amount range
AMOUNT_COLUMN = 0  # "amount" is the first feature of the demo contract

EVENT_SERDE = serde_for("event")


@pytest.fixture(scope="module")
def model():
    return load_model("fraud:1.0.0")


@pytest.fixture(scope="module")
def onnx_scorer(model):
    return OnnxScorer(model, providers=["CPUExecutionProvider"], intra_op_threads=1, inter_op_threads=1)


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return generate_events(600, seed=23, id_prefix="bs-")


@pytest.fixture(scope="module")
def payloads(events) -> list[bytes]:
    return [EVENT_SERDE.encode(e) for e in events]


def make_scorer(model, predictor) -> BatchScorer:
    return BatchScorer(model, predictor, ScorerSetup(job=JOB, source_topic=TOPIC, clock_ms=lambda: NOW_MS))


def decode_scored(body: bytes) -> dict:
    decoded = decode_any(body)
    assert decoded.schema_name == "scored"
    return decoded.record


def decode_dead(body: bytes) -> dict:
    decoded = decode_any(body)
    assert decoded.schema_name == "dead_letter"
    return decoded.record


def reference_scores(model, onnx_scorer, events) -> np.ndarray:
    matrix, rejects, valid = model.contract.to_matrix(events)
    assert rejects == [] and len(valid) == len(events)
    return onnx_scorer.predict_batch(matrix)


class PoisonablePredictor:
    """Delegates to the real scorer, but any batch containing a poisoned row raises."""

    def __init__(self, inner: OnnxScorer):
        self.inner = inner
        self.calls: list[int] = []  # batch size of every call

    def predict_batch(self, features: np.ndarray) -> np.ndarray:
        self.calls.append(len(features))
        if np.any(features[:, AMOUNT_COLUMN] == np.float32(POISON_AMOUNT)):
            raise RuntimeError("poisoned row in batch")
        return self.inner.predict_batch(features)


class NaNForRowPredictor:
    """Delegates to the real scorer, then replaces the score of rows with the poison amount by NaN."""

    def __init__(self, inner: OnnxScorer):
        self.inner = inner
        self.calls = 0

    def predict_batch(self, features: np.ndarray) -> np.ndarray:
        self.calls += 1
        scores = self.inner.predict_batch(features).copy()
        scores[features[:, AMOUNT_COLUMN] == np.float32(POISON_AMOUNT)] = np.nan
        return scores


class AlwaysFailingPredictor:
    def __init__(self):
        self.calls = 0

    def predict_batch(self, features: np.ndarray) -> np.ndarray:
        self.calls += 1
        raise ValueError("x" * 5000)


# --- clean batch -------------------------------------------------------------------------------------


def test_clean_batch_is_fully_scored(model, onnx_scorer, events, payloads):
    batch_events, batch_payloads = events[:200], payloads[:200]
    partitions, offsets = [3] * 200, list(range(1000, 1200))
    result = make_scorer(model, onnx_scorer).score(batch_payloads, partitions, offsets)

    assert isinstance(result, BatchResult)
    assert result.is_scored == [True] * 200
    assert result.scored == 200
    assert result.dead_by_stage == {}
    assert result.model_calls == 1
    assert result.inference_seconds >= 0.0
    assert result.batch_id == f"{JOB}:3:1000:200"
    assert re.fullmatch(r"[^:]+:\d+:\d+:\d+", result.batch_id)
    assert result.keys == [e["event_id"].encode() for e in batch_events]
    assert len(result.bodies) == 200

    expected = reference_scores(model, onnx_scorer, batch_events)
    threshold = model.card.outputs.threshold
    records = [decode_scored(body) for body in result.bodies]
    for event, record, want in zip(batch_events, records, expected):
        assert record["event_id"] == event["event_id"]
        assert record["correlation_id"] == event["correlation_id"]
        assert record["event_time"] == event["event_time"]
        assert record["model_name"] == "fraud" == model.card.name
        assert record["model_version"] == "1.0.0" == model.card.version
        assert record["threshold"] == threshold
        assert record["batch_id"] == result.batch_id
        assert record["scored_time"] == NOW_MS
        assert record["score"] == float(want)  # same matrix, same session, one thread: bit-identical
        assert record["label"] == int(record["score"] >= threshold)
    labels = [r["label"] for r in records]
    assert 0 < sum(labels) < len(labels), "the demo data should give both labels at threshold 0.2014"


def test_batch_id_uses_first_row_coordinates(model, onnx_scorer, payloads):
    result = make_scorer(model, onnx_scorer).score(payloads[:3], [1, 0, 1], [77, 5, 78])
    assert result.batch_id == f"{JOB}:1:77:3"


def test_empty_batch(model, onnx_scorer):
    calls = PoisonablePredictor(onnx_scorer)
    result = make_scorer(model, calls).score([], [], [])
    assert result.is_scored == [] and result.keys == [] and result.bodies == []
    assert result.scored == 0
    assert result.dead_by_stage == {}
    assert result.model_calls == 0 and calls.calls == []
    assert result.batch_id == f"{JOB}:empty"


# --- malformed inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_each_malformed_kind_becomes_one_dead_letter(model, onnx_scorer, events, payloads, kind):
    n, bad_at = 12, 5
    batch_events = list(events[100:100 + n])
    bad = malformed_variant(kind, batch_events[bad_at])
    batch = list(payloads[100:100 + n])
    batch[bad_at] = bad.payload
    partitions, offsets = [2] * n, list(range(40, 40 + n))

    result = make_scorer(model, onnx_scorer).score(batch, partitions, offsets)

    assert len(result.is_scored) == len(result.keys) == len(result.bodies) == n
    assert result.is_scored == [i != bad_at for i in range(n)]
    assert result.scored + sum(result.dead_by_stage.values()) == n
    assert result.dead_by_stage == {bad.stage: 1}
    assert result.model_calls == 1

    dead = decode_dead(result.bodies[bad_at])
    assert dead["stage"] == bad.stage
    assert dead["reason"].startswith(bad.reason_prefix), dead["reason"]
    assert dead["original_bytes"] == bad.payload  # byte for byte
    assert dead["source_topic"] == TOPIC
    assert dead["source_partition"] == 2
    assert dead["source_offset"] == 40 + bad_at
    assert dead["job"] == JOB
    assert dead["failed_time"] == NOW_MS
    assert dead["event_id"] == bad.event_id
    if bad.event_id is None:  # undecodable: keyed by the source coordinates
        assert bad.stage == "DECODE"
        assert dead["correlation_id"] is None
        assert result.keys[bad_at] == f"{TOPIC}/2/{40 + bad_at}".encode()
    else:
        assert bad.stage == "CONTRACT"
        assert bad.event_id == batch_events[bad_at]["event_id"]
        assert dead["correlation_id"] == batch_events[bad_at]["correlation_id"]
        assert result.keys[bad_at] == bad.event_id.encode()

    good = [i for i in range(n) if i != bad_at]
    expected = reference_scores(model, onnx_scorer, [batch_events[i] for i in good])
    for i, want in zip(good, expected):
        record = decode_scored(result.bodies[i])
        assert record["event_id"] == batch_events[i]["event_id"]
        assert result.keys[i] == batch_events[i]["event_id"].encode()
        assert record["score"] == float(want)


def test_every_malformed_kind_at_once(model, onnx_scorer, events, payloads):
    """All kinds interleaved with good rows: counts per stage and the scored ids add up."""
    batch, expected_dead = [], {}
    good_ids = []
    for k, kind in enumerate(MALFORMED_KINDS):
        good, victim = events[300 + 2 * k], events[301 + 2 * k]
        batch.append(payloads[300 + 2 * k])
        good_ids.append(good["event_id"])
        bad = malformed_variant(kind, victim)
        batch.append(bad.payload)
        expected_dead[len(batch) - 1] = bad
    n = len(batch)
    result = make_scorer(model, onnx_scorer).score(batch, [0] * n, list(range(n)))

    assert len(result.bodies) == n
    assert result.scored == n - len(MALFORMED_KINDS)
    stages = [m.stage for m in expected_dead.values()]
    assert result.dead_by_stage == {s: stages.count(s) for s in set(stages)}
    assert result.dead_by_stage == {"DECODE": 5, "CONTRACT": 4}
    scored_ids = [decode_scored(b)["event_id"] for b, ok in zip(result.bodies, result.is_scored) if ok]
    assert scored_ids == good_ids
    for i, bad in expected_dead.items():
        dead = decode_dead(result.bodies[i])
        assert (dead["stage"], dead["event_id"], dead["source_offset"]) == (bad.stage, bad.event_id, i)
        assert dead["reason"].startswith(bad.reason_prefix)
        assert dead["original_bytes"] == bad.payload


def test_whole_batch_undecodable(model, onnx_scorer):
    batch = [b"", None, b"\xc3\x01", b"junk"]  # None: a tombstone (a record without a value)
    calls = PoisonablePredictor(onnx_scorer)
    result = make_scorer(model, calls).score(batch, [0, 0, 0, 0], [0, 1, 2, 3])
    assert result.is_scored == [False, False, False, False]
    assert result.dead_by_stage == {"DECODE": 4}
    assert result.model_calls == 0 and calls.calls == []
    reasons = [decode_dead(b)["reason"] for b in result.bodies]
    assert reasons[0].startswith("empty: ")
    assert reasons[1] == "empty: payload is None (a tombstone?)"
    assert reasons[2].startswith("truncated: ")
    assert reasons[3].startswith("bad_marker: ")
    assert [decode_dead(b)["original_bytes"] for b in result.bodies] == [b"", b"", b"\xc3\x01", b"junk"]


# --- inference failures ------------------------------------------------------------------------------


def test_failing_batch_is_retried_row_by_row(model, onnx_scorer, events):
    n, poisoned = 20, 7
    batch_events = [dict(e) for e in events[200:200 + n]]
    batch_events[poisoned]["amount"] = POISON_AMOUNT
    batch = [EVENT_SERDE.encode(e) for e in batch_events]
    predictor = PoisonablePredictor(onnx_scorer)

    result = make_scorer(model, predictor).score(batch, [1] * n, list(range(500, 500 + n)))

    assert predictor.calls == [n] + [1] * n  # one batch call, then each row alone
    assert result.model_calls == 1 + n
    assert result.is_scored == [i != poisoned for i in range(n)]
    assert result.dead_by_stage == {"INFERENCE": 1}
    dead = decode_dead(result.bodies[poisoned])
    assert dead["stage"] == "INFERENCE"
    assert dead["reason"] == "inference failed: RuntimeError: poisoned row in batch"
    assert dead["event_id"] == batch_events[poisoned]["event_id"]
    assert dead["correlation_id"] == batch_events[poisoned]["correlation_id"]
    assert dead["original_bytes"] == batch[poisoned]
    assert (dead["source_partition"], dead["source_offset"]) == (1, 500 + poisoned)
    assert result.keys[poisoned] == batch_events[poisoned]["event_id"].encode()

    good = [i for i in range(n) if i != poisoned]
    expected = reference_scores(model, onnx_scorer, [batch_events[i] for i in good])
    got = [decode_scored(result.bodies[i])["score"] for i in good]
    assert got == [float(s) for s in expected]


def test_predictor_that_always_fails_dead_letters_every_row_with_a_bounded_reason(model, events, payloads):
    predictor = AlwaysFailingPredictor()
    result = make_scorer(model, predictor).score(payloads[:4], [0] * 4, [0, 1, 2, 3])
    assert predictor.calls == 5
    assert result.is_scored == [False] * 4
    assert result.dead_by_stage == {"INFERENCE": 4}
    for i, body in enumerate(result.bodies):
        dead = decode_dead(body)
        assert dead["reason"] == "inference failed: ValueError: " + "x" * 300
        assert len(dead["reason"]) <= MAX_REASON_CHARS
        assert dead["event_id"] == events[i]["event_id"]


def test_non_finite_score_is_an_inference_dead_letter(model, onnx_scorer, events):
    n, poisoned = 10, 3
    batch_events = [dict(e) for e in events[400:400 + n]]
    batch_events[poisoned]["amount"] = POISON_AMOUNT
    batch = [EVENT_SERDE.encode(e) for e in batch_events]
    predictor = NaNForRowPredictor(onnx_scorer)

    result = make_scorer(model, predictor).score(batch, [0] * n, list(range(n)))

    assert predictor.calls == 1 and result.model_calls == 1
    assert result.is_scored == [i != poisoned for i in range(n)]
    assert result.dead_by_stage == {"INFERENCE": 1}
    dead = decode_dead(result.bodies[poisoned])
    assert dead["stage"] == "INFERENCE"
    assert "non-finite" in dead["reason"]
    assert dead["event_id"] == batch_events[poisoned]["event_id"]
    for i in range(n):
        if i != poisoned:
            assert np.isfinite(decode_scored(result.bodies[i])["score"])


# --- invariance --------------------------------------------------------------------------------------


def test_batch_size_does_not_change_scores(model, onnx_scorer, events, payloads):
    scorer = make_scorer(model, onnx_scorer)
    whole = scorer.score(payloads, [0] * 600, list(range(600)))
    assert whole.scored == 600
    whole_scores = [decode_scored(b)["score"] for b in whole.bodies]

    single_scores = []
    for i, payload in enumerate(payloads):
        one = scorer.score([payload], [0], [i])
        assert one.is_scored == [True] and one.batch_id == f"{JOB}:0:{i}:1"
        single_scores.append(decode_scored(one.bodies[0])["score"])

    assert single_scores == whole_scores
    assert [decode_scored(b)["event_id"] for b in whole.bodies] == [e["event_id"] for e in events]


# --- property: one output row per input row, always decodable ------------------------------------------

_POOL_EVENTS = generate_events(40, seed=5, id_prefix="hy-")
_POOL = [EVENT_SERDE.encode(e) for e in _POOL_EVENTS]


@st.composite
def payload_lists(draw):
    valid = st.sampled_from(_POOL)
    random_bytes = st.binary(max_size=64)
    headered = st.binary(max_size=80).map(lambda body: _POOL[0][:10] + body)  # right fingerprint, any body

    @st.composite
    def mutated(draw2):
        base = bytearray(draw2(valid))
        for _ in range(draw2(st.integers(1, 4))):
            pos = draw2(st.integers(10, len(base) - 1))
            base[pos] = draw2(st.integers(0, 255))
        cut = draw2(st.integers(10, len(base)))
        return bytes(base[:cut])

    return draw(st.lists(st.one_of(valid, random_bytes, headered, mutated()), max_size=25))


@settings(max_examples=80, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=payload_lists())
def test_every_input_yields_one_decodable_output(model, onnx_scorer, batch):
    n = len(batch)
    result = make_scorer(model, onnx_scorer).score(batch, [4] * n, list(range(9, 9 + n)))
    assert len(result.is_scored) == len(result.keys) == len(result.bodies) == n
    assert result.scored + sum(result.dead_by_stage.values()) == n
    for i, (ok, key, body) in enumerate(zip(result.is_scored, result.keys, result.bodies)):
        decoded = decode_any(body)
        if ok:
            assert decoded.schema_name == "scored"
            assert key == decoded.record["event_id"].encode()
            assert np.isfinite(decoded.record["score"])
        else:
            assert decoded.schema_name == "dead_letter"
            assert decoded.record["original_bytes"] == batch[i]
            assert decoded.record["source_offset"] == 9 + i
            assert decoded.record["stage"] in result.dead_by_stage
        if batch[i] in _POOL:
            assert ok, "an untouched valid event must be scored"
