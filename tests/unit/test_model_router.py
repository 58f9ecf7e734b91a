"""Unit tests of model lifecycle routing: jobs/model_router.py, the routed/shadow batch path,
models/register.py and the control messages of streamscore/lifecycle/control.py.

Real demo model (fraud:1.0.0, CPU); a second "version" is the same ONNX under another card
version, or a stand-in predictor that shifts or raises.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import numpy as np
import pytest

from jobs.batch_scorer import BatchScorer, ScorerSetup
from jobs.model_pool import VersionModel
from jobs.model_router import (
    CANARY,
    PRIMARY,
    SHADOW,
    Change,
    ControlLagError,
    ModelRouter,
    Schedule,
    canary_bucket,
    change_from_control,
)
from models.demo_data import generate_events
from models.register import register_model
from models.registry import DEFAULT_ROOT, ModelRegistry, load_model
from models.runtime import OnnxScorer
from schemas import decode_any, serde_for
from streamscore.foundation.errors import ModelError, StreamscoreError
from streamscore.lifecycle.control import current_primary, lifecycle_message, rollback_target

T0 = 1_700_000_000_000
EVENT_SERDE = serde_for("event")


def change(role, effective, version, offset, percent=0):
    return Change(effective, (0, offset), role, version, percent)


# ---------------------------------------------------------------- routing as a pure function

def test_version_is_base_before_any_promotion_then_the_latest_effective_one():
    schedule = Schedule("1.0.0")
    schedule.add(change(PRIMARY, T0 + 1000, "1.1.0", 5))
    schedule.add(change(PRIMARY, T0 + 5000, "1.2.0", 9))
    assert schedule.at(T0).primary == "1.0.0"
    assert schedule.at(T0 + 999).primary == "1.0.0"
    assert schedule.at(T0 + 1000).primary == "1.1.0"  # effective_from is inclusive
    assert schedule.at(T0 + 4999).primary == "1.1.0"
    assert schedule.at(T0 + 10**9).primary == "1.2.0"


def test_same_effective_time_goes_to_the_later_message_and_rereads_are_idempotent():
    schedule = Schedule("1.0.0")
    schedule.add(change(PRIMARY, T0, "2.0.0", 7))
    schedule.add(change(PRIMARY, T0, "1.1.0", 3))
    schedule.add(change(PRIMARY, T0, "1.1.0", 3))
    assert schedule.at(T0).primary == "2.0.0"
    assert schedule.change_times() == [T0]


def test_shadow_attached_then_detached_by_event_time():
    schedule = Schedule("1.0.0")
    schedule.add(change(SHADOW, T0 + 100, "1.1.0", 1))
    schedule.add(change(SHADOW, T0 + 200, None, 2))
    assert [schedule.at(T0 + d).shadow for d in (99, 100, 199, 200)] == [None, "1.1.0", "1.1.0", None]


def test_plan_is_the_same_whatever_the_batch_boundaries_or_arrival_order():
    changes = [change(PRIMARY, T0 + 50, "1.1.0", 1), change(CANARY, T0 + 70, "2.0.0", 2, percent=30),
               change(SHADOW, T0 + 20, "1.2.0", 3)]
    times = list(range(T0, T0 + 100))
    ids = [f"e-{i}" for i in range(100)]

    def router(order):
        r = ModelRouter("fraud", "1.0.0", activation_delay_ms=10_000, clock_ms=lambda: T0)
        r.apply([changes[i] for i in order], view_wall_ms=T0)
        return r

    whole = router([0, 1, 2]).plan(times, ids)
    r = router([2, 0, 1])
    parts = [r.plan(times[i:i + 7], ids[i:i + 7]) for i in range(0, 100, 7)]
    assert whole.primary == [v for p in parts for v in p.primary]
    assert whole.shadow == [v for p in parts for v in p.shadow]
    assert set(whole.primary[:50]) == {"1.0.0"} and set(whole.primary[50:70]) == {"1.1.0"}
    assert set(whole.primary[70:]) == {"1.1.0", "2.0.0"}


def test_change_from_control_reads_lifecycle_messages_of_its_model_only():
    promoted = lifecycle_message("MODEL_PROMOTED", "fraud", "1.1.0", now_ms=T0, delay_ms=10_000, previous="1.0.0")
    decoded = serde_for("control").decode(serde_for("control").encode(promoted))
    assert change_from_control(decoded, (0, 4), "fraud") == Change(T0 + 10_000, (0, 4), PRIMARY, "1.1.0")
    assert change_from_control(decoded, (0, 4), "other") is None
    trigger = {**decoded, "kind": "RETRAIN_TRIGGER"}
    assert change_from_control(trigger, (0, 5), "fraud") is None
    detached = lifecycle_message("SHADOW_DETACHED", "fraud", "", now_ms=T0, delay_ms=1, previous=None)
    assert change_from_control(detached, (0, 6), "fraud").version is None
    canary = lifecycle_message("CANARY_WEIGHT", "fraud", "1.1.0", now_ms=T0, delay_ms=1, percent=25)
    assert change_from_control(canary, (0, 7), "fraud") == Change(T0 + 1, (0, 7), CANARY, "1.1.0", 25)
    assert change_from_control({**canary, "payload_json": "not json"}, (0, 8), "fraud") is None
    for payload in ('{"effective_from_ms": 1, "percent": "ten"}', '{"effective_from_ms": 1, "percent": null}',
                    '{"effective_from_ms": 1, "percent": 101}', '{"effective_from_ms": 1, "percent": 5, "version": 7}',
                    '{"effective_from_ms": Infinity}', '{"effective_from_ms": 1e999}',
                    '{"effective_from_ms": 1, "percent": Infinity}', '[1, 2]', '"text"',
                    "[" * 100_000):  # hand-written: never a change, never an exception
        assert change_from_control({**canary, "payload_json": payload}, (0, 9), "fraud") is None, payload
    # a champion or canary of no version: the jobs would score no row of its event times (a NaN score, then a
    # failing batch replayed for ever); only a shadow may be none
    nameless = '{"effective_from_ms": 1, "percent": 5, "version": null}'
    for message in (decoded, canary):
        assert change_from_control({**message, "payload_json": nameless}, (0, 10), "fraud") is None
    assert current_primary([promoted, {**promoted, "payload_json": nameless}], "fraud")["version"] == "1.1.0"


# ---------------------------------------------------------------- the catch-up rule

def test_a_promotion_or_rollback_ends_the_canary_before_it():
    # canary 1.2.0 at 100 %, then promote 1.2.0, promote 1.3.0, roll back to 1.0.0: each later change of
    # the champion routes every record; the canary's share does not stay with 1.2.0
    schedule = Schedule("1.0.0")
    schedule.add(change(CANARY, T0, "1.2.0", 1, percent=100))
    schedule.add(change(PRIMARY, T0 + 100, "1.2.0", 2))
    schedule.add(change(PRIMARY, T0 + 200, "1.3.0", 3))
    schedule.add(change(PRIMARY, T0 + 300, "1.0.0", 4))
    assert (schedule.at(T0 + 50).canary, schedule.at(T0 + 50).canary_percent) == ("1.2.0", 100)
    for t, primary in ((T0 + 150, "1.2.0"), (T0 + 250, "1.3.0"), (T0 + 350, "1.0.0")):
        route = schedule.at(t)
        assert (route.primary, route.canary, route.canary_percent) == (primary, None, 0)
    schedule.add(change(CANARY, T0 + 400, "1.3.0", 5, percent=10))  # a canary after the rollback runs
    assert (schedule.at(T0 + 450).canary, schedule.at(T0 + 450).canary_percent) == ("1.3.0", 10)


class FakeClock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += int(seconds * 1000)


def test_a_record_waits_until_control_is_read_recently_enough():
    clock = FakeClock(T0)
    router = ModelRouter("fraud", "1.0.0", activation_delay_ms=10_000, max_wait_ms=2_000, clock_ms=clock,
                         sleep=clock.sleep)
    assert not router.covers(T0)  # nothing read yet
    router.apply([], view_wall_ms=T0 - 5_001)
    assert not router.covers(T0)  # needs a view as of >= t - delay + guard = T0 - 5000
    router.apply([], view_wall_ms=T0 - 5_000)
    assert router.covers(T0) and not router.covers(T0 + 1)

    fed = []

    def sleep_and_feed(seconds):  # the reader thread catches up while the record waits
        clock.sleep(seconds)
        if clock.now >= T0 + 300 and not fed:
            fed.append(router.apply([change(PRIMARY, T0 + 1, "1.1.0", 1)], view_wall_ms=clock.now))

    router._sleep = sleep_and_feed
    assert router.plan([T0 + 2_000], ["x"]).primary == ["1.1.0"]
    assert clock.now >= T0 + 300


def test_a_view_that_never_catches_up_is_a_clear_failure():
    clock = FakeClock(T0)
    router = ModelRouter("fraud", "1.0.0", activation_delay_ms=10_000, max_wait_ms=2_000, clock_ms=clock,
                         sleep=clock.sleep)
    router.apply([], view_wall_ms=T0 - 60_000)
    router.reader_failed("KafkaException: broker down")
    with pytest.raises(ControlLagError, match="broker down") as info:
        router.plan([T0], ["x"])
    assert isinstance(info.value, StreamscoreError)


# ---------------------------------------------------------------- canary hashing

def test_canary_buckets_are_stable_uniform_and_nested():
    ids = [f"evt-{i:06d}" for i in range(20_000)]
    buckets = [canary_bucket(i) for i in ids]
    assert buckets == [canary_bucket(i) for i in ids]  # stable
    counts = Counter(buckets)
    assert set(counts) == set(range(100))
    assert max(counts.values()) < 300 and min(counts.values()) > 100  # expected 200 each
    schedule = Schedule("1.0.0")
    shares = {}
    for step, percent in enumerate((5, 25, 50, 100)):
        schedule.add(change(CANARY, T0 + step, "1.1.0", step, percent=percent))
        route = schedule.at(T0 + step)
        chosen = {i for i in ids if route.version_for(i) == "1.1.0"}
        shares[percent] = chosen
        assert abs(len(chosen) / len(ids) - percent / 100) < 0.015
    assert shares[5] <= shares[25] <= shares[50] <= shares[100]  # a record once in the canary stays in it
    schedule.add(change(CANARY, T0 + 9, "1.1.0", 9, percent=0))
    assert schedule.at(T0 + 9).version_for(ids[0]) == "1.0.0"


# ---------------------------------------------------------------- the routed and shadow batch path

@pytest.fixture(scope="module")
def model():
    return load_model("fraud:1.0.0")


@pytest.fixture(scope="module")
def onnx(model):
    return OnnxScorer(model, providers=["CPUExecutionProvider"], intra_op_threads=1, inter_op_threads=1)


class Shifted:
    def __init__(self, inner, by):
        self.inner, self.by = inner, by

    def predict_batch(self, matrix):
        return np.clip(self.inner.predict_batch(matrix) + self.by, 0.0, 1.0)


class Raises:
    def predict_batch(self, matrix):
        raise RuntimeError("challenger exploded")


def version_of(model, version, predictor):
    return VersionModel(dataclasses.replace(model.card, version=version), predictor)


def batch(n, seed=3):
    events = generate_events(n, seed=seed, id_prefix="mr-")
    for k, event in enumerate(events):
        event["event_time"] = T0 + k
    return [EVENT_SERDE.encode(e) for e in events]


def routed_scorer(model, onnx, changes, versions):
    router = ModelRouter("fraud", "1.0.0", clock_ms=lambda: T0)
    router.apply(changes, view_wall_ms=T0)
    return BatchScorer(model, onnx, ScorerSetup(job="unit", source_topic="t", clock_ms=lambda: T0, router=router,
                                                loader=lambda v: versions[v]))


def test_a_batch_straddling_a_promotion_makes_one_model_call_per_version(model, onnx):
    versions = {"1.1.0": version_of(model, "1.1.0", Shifted(onnx, 0.25))}
    scorer = routed_scorer(model, onnx, [change(PRIMARY, T0 + 40, "1.1.0", 1)], versions)
    payloads = batch(100)
    result = scorer.score(payloads, [0] * 100, list(range(100)))
    records = [decode_any(b).record for b in result.bodies]
    assert [r["model_version"] for r in records] == ["1.0.0"] * 40 + ["1.1.0"] * 60
    assert result.call_sizes == [40, 60]
    plain = BatchScorer(model, onnx, ScorerSetup(job="unit", source_topic="t", clock_ms=lambda: T0)).score(
        payloads, [0] * 100, list(range(100)))
    base = [decode_any(b).record["score"] for b in plain.bodies]
    assert [r["score"] for r in records[:40]] == base[:40]
    np.testing.assert_allclose([r["score"] for r in records[40:]], np.clip(np.array(base[40:]) + 0.25, 0, 1))
    assert result.version_scored == {"1.0.0": 40, "1.1.0": 60}
    assert set(result.version_call_us) == {"1.0.0", "1.1.0"}


@pytest.mark.parametrize("challenger", ["raises", "missing", "shifted"])
def test_the_champion_output_is_identical_with_and_without_a_shadow(model, onnx, challenger):
    payloads = batch(64, seed=8)
    coords = ([0] * 64, list(range(64)))
    alone = routed_scorer(model, onnx, [], {}).score(payloads, *coords)
    predictor = {"raises": Raises(), "shifted": Shifted(onnx, 0.5)}.get(challenger)
    versions = {"9.9.9": version_of(model, "9.9.9", predictor)} if predictor else {}
    shadowed = routed_scorer(model, onnx, [change(SHADOW, T0, "9.9.9", 1)], versions).score(payloads, *coords)
    assert shadowed.bodies == alone.bodies and shadowed.keys == alone.keys
    assert shadowed.is_scored == alone.is_scored
    if challenger == "shifted":
        shadow = [decode_any(b).record for b in shadowed.shadow_bodies]
        assert [r["event_id"] for r in shadow] == [decode_any(b).record["event_id"] for b in alone.bodies]
        assert {r["model_version"] for r in shadow} == {"9.9.9"}
        stats = shadowed.shadow["9.9.9"]
        assert stats.records == 64 and len(stats.score_diff_milli) == 64 and stats.agreements < 64
        assert shadowed.shadow_errors == 0
    else:
        assert shadowed.shadow_bodies == [None] * 64
        assert shadowed.shadow_errors == 1 and shadowed.shadow_error


def test_an_unloadable_promoted_version_dead_letters_its_records_only(model, onnx):
    scorer = routed_scorer(model, onnx, [change(PRIMARY, T0 + 10, "7.0.0", 1)], {})
    result = scorer.score(batch(20), [0] * 20, list(range(20)))
    assert result.is_scored == [True] * 10 + [False] * 10
    dead = decode_any(result.bodies[15]).record
    assert dead["stage"] == "INFERENCE" and "fraud:7.0.0 cannot be loaded" in dead["reason"]


def test_a_record_stamped_beyond_the_routers_reach_is_a_dead_letter_and_the_batch_goes_on(model, onnx):
    """Waiting could never cover an event time more than delay - guard + max wait (35 s) less the control view's
    lag (2 s) ahead of the clock: it used to fail the task with ControlLagError, and its replay again. Now it is
    bad input, dead-lettered."""
    router = ModelRouter("fraud", "1.0.0", clock_ms=lambda: T0)
    router.apply([], view_wall_ms=T0)
    assert router.reach_ms == 33_000
    assert router.beyond_reach([T0, T0 + 33_000, T0 + 33_001]).tolist() == [False, False, True]
    scorer = BatchScorer(model, onnx, ScorerSetup(job="unit", source_topic="t", clock_ms=lambda: T0, router=router))
    events = generate_events(10, seed=4, id_prefix="ah-")
    for k, event in enumerate(events):
        event["event_time"] = T0 + (36_000 if k in (2, 7) else k)  # two stamped 36 s ahead
    payloads = [EVENT_SERDE.encode(e) for e in events]
    result = scorer.score(payloads, [0] * 10, list(range(10)))
    assert result.is_scored == [k not in (2, 7) for k in range(10)]
    dead = decode_any(result.bodies[7]).record
    assert (dead["stage"], dead["event_id"], dead["original_bytes"]) == ("CONTRACT", "ah-000000007", payloads[7])
    assert dead["reason"].startswith("event_time_ahead: event time 1700000036000 is more than 33000 ms ahead")
    assert [n.reason_code for n in result.dead_letters] == ["event_time_ahead"] * 2
    scored = [decode_any(result.bodies[k]).record for k in range(10) if k not in (2, 7)]
    assert [r["event_id"] for r in scored] == [events[k]["event_id"] for k in range(10) if k not in (2, 7)]


# ---------------------------------------------------------------- register and promotion messages

def test_register_copies_checks_profiles_and_refuses_an_existing_version(tmp_path):
    source = DEFAULT_ROOT / "fraud" / "1.0.0"
    card = json.loads((source / "model.json").read_text())
    card.update(version="1.1.0", onnx_sha256="0" * 64, drift_profile={})
    card_file = tmp_path / "card.json"
    card_file.write_text(json.dumps(card))
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(json.dumps(e) for e in generate_events(500, seed=4, id_prefix="s-")))
    registry = tmp_path / "registry"
    loaded = register_model(source / "model.onnx", card_file, registry, training_sample=sample)
    assert loaded.card.ref == "fraud:1.1.0" and loaded.card.onnx_sha256 != "0" * 64
    assert set(loaded.card.drift_profile["features"]) == set(loaded.card.contract.names)
    assert "score" in loaded.card.drift_profile
    assert [str(r) for r in ModelRegistry(registry).list_models()] == ["fraud:1.1.0"]
    with pytest.raises(ModelError, match="already registered"):
        register_model(source / "model.onnx", card_file, registry)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    card_file.write_text(json.dumps({**card, "version": "1.2.0"}))
    with pytest.raises(ModelError, match="not a valid ONNX"):
        register_model(broken, card_file, registry)
    assert not (registry / "fraud" / "1.2.0").exists()


def test_promotion_messages_encode_and_rollback_goes_to_the_previous_version():
    serde = serde_for("control")
    history = []
    for version, previous in (("1.1.0", None), ("1.2.0", "1.1.0")):
        message = lifecycle_message("MODEL_PROMOTED", "fraud", version, now_ms=T0, delay_ms=10_000, previous=previous)
        decoded = serde.decode(serde.encode(message))
        assert json.loads(decoded["payload_json"]) == {"version": version, "effective_from_ms": T0 + 10_000,
                                                       "previous": previous}
        history.append(decoded)
    assert current_primary(history, "fraud")["version"] == "1.2.0"
    assert rollback_target(history, "fraud") == ("1.1.0", "1.2.0")
    with pytest.raises(StreamscoreError, match="nothing to roll back"):
        rollback_target(history[:1], "fraud")
    assert current_primary(history, "other") is None
    hand_written = [{**history[-1], "payload_json": text} for text in ("not json", "[1]", '{"version": 2}')]
    assert current_primary(history + hand_written, "fraud")["version"] == "1.2.0"  # skipped, as the jobs skip them


# ---------------------------------------------------------------- lifecycle metrics

class FakeCounter:
    def __init__(self):
        self.value = 0

    def inc(self, n=1):
        self.value += n


class FakeGroup:
    def __init__(self, registry=None, path=()):
        self.registry, self.path = ({} if registry is None else registry), path

    def add_group(self, key, value=None):
        return FakeGroup(self.registry, self.path + ((key, value),))

    def counter(self, name):
        return self.registry.setdefault((self.path, name), FakeCounter())

    def value(self, name, **labels):
        found = [c.value for (path, n), c in self.registry.items()
                 if n == name and all((k, v) in path for k, v in labels.items())]
        assert len(found) == 1, (name, labels, found)
        return found[0]


def test_lifecycle_metrics_count_versions_roles_and_shadow_agreement(model, onnx):
    from jobs.job_metrics import LifecycleMetrics

    versions = {"1.1.0": version_of(model, "1.1.0", onnx), "2.0.0": version_of(model, "2.0.0", Shifted(onnx, 0.5))}
    changes = [change(PRIMARY, T0 + 30, "1.1.0", 1), change(SHADOW, T0 + 50, "2.0.0", 2)]
    result = routed_scorer(model, onnx, changes, versions).score(batch(80), [0] * 80, list(range(80)))
    group = FakeGroup()
    metrics = LifecycleMetrics(group, "fraud")
    metrics.record_batch(result)
    assert group.value("events_scored", version="1.0.0", role="champion") == 30
    assert group.value("events_scored", version="1.1.0", role="champion") == 50
    assert group.value("events_scored", version="2.0.0", role="shadow") == 30
    assert group.value("inference_us_count", version="1.1.0", role="champion") == 1
    stats = result.shadow["2.0.0"]
    assert group.value("label_agreements", version="2.0.0") == stats.agreements
    assert group.value("label_disagreements", version="2.0.0") == 30 - stats.agreements > 0
    assert group.value("score_diff_milli_count", version="2.0.0") == 30
    assert group.value("score_diff_milli_bucket", version="2.0.0", le="+Inf") == 30
    assert group.value("shadow_failures") == 0


def test_the_current_champion_is_the_one_the_jobs_end_up_following_not_the_last_written():
    """Promote 1.1.0 effective in 60 s, then 1.2.0 effective in 10 s: the jobs score with 1.2.0 from 10 s and
    with 1.1.0 from 60 s on (they order changes by effective time), so 1.1.0 is current, and a rollback goes
    to its previous."""
    slow = lifecycle_message("MODEL_PROMOTED", "fraud", "1.1.0", now_ms=T0, delay_ms=60_000, previous="1.0.0")
    fast = lifecycle_message("MODEL_PROMOTED", "fraud", "1.2.0", now_ms=T0 + 5_000, delay_ms=10_000,
                             previous="1.1.0")
    history = [slow, fast]
    assert current_primary(history, "fraud")["version"] == "1.1.0"
    assert rollback_target(history, "fraud") == ("1.0.0", "1.1.0")
    schedule = Schedule("1.0.0")
    for k, message in enumerate(history):
        schedule.add(change_from_control(message, (0, k), "fraud"))
    assert [schedule.at(T0 + ms).primary for ms in (20_000, 70_000)] == ["1.2.0", "1.1.0"]
