"""Unit tests of jobs/drift_logic.py: the drift sidecar's record and window logic without Flink.

``partials`` turns a micro-batch of ``events`` / ``scored`` payloads into partial count vectors
(per window); ``judge`` turns a closed window's counts and the detector's checkpointed state into
Avro ``drift_alert`` / ``control`` payloads and the new state. Exactly-once replays need the
alert / message ids to depend only on the window (and the state it is judged from), never on
the wall clock.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from drift.settings import Tier
from drift.window_counts import WindowCounter
from jobs import drift_logic
from jobs.drift_config import DriftJobConfig
from jobs.drift_logic import SINK_ALERTS, SINK_CONTROL, SidecarLogic
from jobs.job_wire import RegistryWire
from models.demo_data import DriftSpec, generate_events
from schemas.serde import decode_any, serde_for

START_MS = 1_700_000_000_000  # a multiple of every window_ms used here
DRIFT = (DriftSpec("device_trust_score", "shift", 1.0),)
WINDOW = 1000  # events per count window (the config's default)


@pytest.fixture(scope="module")
def config():
    return DriftJobConfig(bootstrap="x").checked()


@pytest.fixture(scope="module")
def logic(config):
    return SidecarLogic.for_model(config)


def _events(n, seed, drift=(), start_ms=START_MS):
    return generate_events(n, seed, drift=drift, start_time_ms=start_ms)


def _encode(events):
    serde = serde_for("event")
    return [serde.encode(event) for event in events]


def _millis(events):
    return np.asarray([event["event_time"] for event in events], dtype=np.int64)


def _window_counts(logic, seed, drift=(), n=WINDOW, start_ms=START_MS):
    """Counts bytes of one count window of ``n`` demo events."""
    events = _events(n, seed, drift, start_ms)
    (partial,) = logic.partials("events", _encode(events), _millis(events), 0)
    assert partial[0] == 0 and partial[1] == n
    return partial[2]


@pytest.fixture(scope="module")
def clean_counts(logic):
    return [_window_counts(logic, 7_400_000 + i, start_ms=START_MS + i * 10_000_000) for i in range(4)]


@pytest.fixture(scope="module")
def drifted_counts(logic):
    return [_window_counts(logic, 7_400_100 + i, DRIFT, start_ms=START_MS + 100_000_000 + i * 10_000_000)
            for i in range(3)]


def _decoded(outputs):
    """[(sink, key, schema, record)] with the payloads decoded by fingerprint."""
    out = []
    for sink, key, payload in outputs:
        decoded = decode_any(payload)
        out.append((sink, key, decoded.schema_name, decoded.record))
    return out


def _without_clock(outputs):
    """Decoded outputs minus ``emitted_time``: what a replay must reproduce exactly."""
    return [(sink, key, schema, {k: v for k, v in record.items() if k != "emitted_time"})
            for sink, key, schema, record in _decoded(outputs)]


def _scored(model_name, model_version, score, i):
    return {"event_id": f"evt-{i:09d}", "correlation_id": f"c{i}", "model_name": model_name,
            "model_version": model_version, "score": float(score), "label": int(score >= 0.5),
            "threshold": 0.5, "batch_id": "b-1", "event_time": START_MS + i, "scored_time": START_MS + i + 3}


# --- partials ---------------------------------------------------------------------------------------


def test_count_partial_counts_only_decodable_contract_valid_events(logic):
    good = _events(400, 7_400_500)
    bad_contract = [dict(good[0], customer_age=500), dict(good[1], merchant_category="spaceships"),
                    dict(good[2], amount=float("nan")), dict(good[3], amount=-1.0),
                    dict(good[4], device_trust_score=1.5)]
    valid_payload = _encode(good[:1])[0]
    undecodable = [b"", b"not avro at all", valid_payload[:-4], valid_payload + b"\x00",
                   b"\xc3\x01" + b"\xff" * 8 + valid_payload[10:],  # unknown fingerprint
                   serde_for("scored").encode(_scored("fraud", "1.0.0", 0.1, 0))]  # another schema
    payloads = _encode(good) + _encode(bad_contract) + undecodable
    millis = np.concatenate([_millis(good), np.full(len(bad_contract), 1), np.full(len(undecodable), 2**60)])
    order = np.random.default_rng(0).permutation(len(payloads))  # skipped rows anywhere in the batch
    partials = logic.partials("events", [payloads[i] for i in order], millis[order], 0)
    assert len(partials) == 1
    start, n, blob = partials[0]
    assert (start, n) == (0, len(good))
    vector = np.frombuffer(blob, dtype=np.int64)
    assert vector.size == logic.counter.size and logic.events_in(blob) == len(good)
    # the skipped rows' times do not stretch the window
    assert (vector[2], vector[3]) == (_millis(good).min(), _millis(good).max())
    kept = order[order < len(good)]  # the good events in batch order
    matrix = logic.counter.contract.to_matrix([good[i] for i in kept]).matrix
    np.testing.assert_array_equal(vector, logic.counter.count_matrix(matrix, _millis(good)[kept]))


def test_count_partial_without_millis_still_counts(logic):
    events = _events(50, 7_400_501)
    ((start, n, blob),) = logic.partials("events", _encode(events), None, 0)
    assert (start, n) == (0, 50) and logic.events_in(blob) == 50


def test_batch_of_nothing_usable_gives_no_partial(logic):
    events = _events(3, 7_400_502)
    payloads = [b"", b"junk"] + _encode([dict(events[0], customer_age=999)])
    assert logic.partials("events", payloads, np.arange(3), 0) == []
    assert logic.partials("events", [], np.zeros(0, dtype=np.int64), 60_000) == []
    assert logic.partials("scored", payloads, np.arange(3), 0) == []


def test_time_partials_split_a_batch_over_three_windows(config, logic):
    window_ms = 1_000
    sizes = (100, 120, 80)
    events = _events(sum(sizes), 7_400_503)
    rng = np.random.default_rng(1)
    millis = np.concatenate([START_MS + k * window_ms + rng.integers(0, window_ms, size)
                             for k, size in enumerate(sizes)])
    millis[0], millis[sizes[0]] = START_MS, START_MS + 2 * window_ms - 1  # both window edges
    payloads = _encode(events) + [b"junk"]
    millis = np.append(millis, START_MS + 3 * window_ms)  # an undecodable record alone in a 4th window
    order = rng.permutation(len(payloads))
    time_logic = SidecarLogic.for_model(config.with_changes(window_kind="time", window_ms=window_ms))
    partials = time_logic.partials("events", [payloads[i] for i in order], millis[order], window_ms)
    assert [p[0] for p in partials] == [START_MS + k * window_ms for k in range(3)]
    assert [p[1] for p in partials] == list(sizes)
    merged = None
    for k, (start, n, blob) in enumerate(partials):
        rows = [i for i in order if i < len(events) and start <= millis[i] < start + window_ms]
        matrix = time_logic.counter.contract.to_matrix([events[i] for i in rows]).matrix
        expected = time_logic.counter.count_matrix(matrix, millis[rows])
        np.testing.assert_array_equal(np.frombuffer(blob, dtype=np.int64), expected)
        assert expected[0] == n == sizes[k]
        merged = time_logic.merge(merged, blob)
    whole = time_logic.counter.count_matrix(time_logic.counter.contract.to_matrix(events).matrix,
                                            millis[:len(events)])
    np.testing.assert_array_equal(np.frombuffer(merged, dtype=np.int64), whole)


def test_scored_partials_ignore_other_models_and_versions(logic):
    rng = np.random.default_rng(2)
    serde = serde_for("scored")
    mine = rng.random(300)
    records = [_scored("fraud", "1.0.0", s, i) for i, s in enumerate(mine)]
    records += [_scored("fraud", "2.0.0", 0.99, 1000 + i) for i in range(40)]
    records += [_scored("churn", "1.0.0", 0.99, 2000 + i) for i in range(40)]
    payloads = [serde.encode(r) for r in records] + [b"junk", _encode(_events(1, 7_400_504))[0]]
    millis = np.asarray([r["event_time"] for r in records] + [0, 0], dtype=np.int64)
    order = rng.permutation(len(payloads))
    one_window = 10**13  # an event-time window holding them all (scores are not counted in count windows)
    ((start, n, blob),) = logic.partials("scored", [payloads[i] for i in order], millis[order], one_window)
    assert (start, n) == (0, len(mine))
    assert logic.partials("scored", [payloads[i] for i in order], millis[order], 0) == []
    vector = np.frombuffer(blob, dtype=np.int64)
    kept = order[order < len(mine)]
    np.testing.assert_array_equal(vector, logic.counter.count_scores(mine[kept]))
    assert vector[0] == 0 and vector[1] == len(mine) and logic.events_in(blob) == 0


def test_merge_of_partials_is_order_free(logic):
    events = _events(300, 7_400_505)
    payloads, millis = _encode(events), _millis(events)
    blobs = [logic.partials("events", payloads[k::3], millis[k::3], 0)[0][2] for k in range(3)]
    (whole,) = logic.partials("events", payloads, millis, 0)
    for order in ((0, 1, 2), (2, 0, 1), (1, 2, 0)):
        merged = None
        for k in order:
            merged = logic.merge(merged, blobs[k])
        assert merged == whole[2]
    assert logic.events_in(whole[2]) == 300


# --- judging windows ----------------------------------------------------------------------------------


def test_clean_window_emits_nothing(logic, clean_counts):
    outputs, state = logic.judge(0, clean_counts[0], None)
    assert outputs == []
    assert isinstance(state, bytes) and state


def _alerts_and_triggers(outputs):
    decoded = _decoded(outputs)
    alerts = [d for d in decoded if d[0] == SINK_ALERTS]
    triggers = [d for d in decoded if d[0] == SINK_CONTROL]
    assert len(alerts) + len(triggers) == len(decoded)
    return alerts, triggers


def test_drifted_window_emits_an_alert_and_a_severe_trigger(logic, clean_counts, drifted_counts):
    _, state = logic.judge(0, clean_counts[0], None)
    outputs, _ = logic.judge(0, drifted_counts[0], state)
    alerts, triggers = _alerts_and_triggers(outputs)
    assert [a[3]["feature"] for a in alerts] == ["device_trust_score"]
    _, key, schema, alert = alerts[0]
    assert schema == "drift_alert" and key == b"fraud:device_trust_score"
    assert (alert["model_name"], alert["model_version"]) == ("fraud", "1.0.0")
    assert alert["tier"] in ("SEVERE", "MODERATE")
    assert alert["window_size"] == WINDOW == logic.events_in(drifted_counts[0])
    assert alert["statistic"] == "PSI" and alert["value"] >= alert["threshold"] >= 0.15
    assert alert["p_value"] is not None and alert["p_value"] <= logic.counter.judge.settings.alpha
    vector = np.frombuffer(drifted_counts[0], dtype=np.int64)
    assert alert["window_start"] <= int(vector[2]) and alert["window_end"] > int(vector[3])
    assert alert["alert_id"] and alert["window_id"] and alert["feature"] in alert["alert_id"]
    settings = logic.counter.judge.settings
    if alert["tier"] == "SEVERE" and settings.severe_confirm_k == 1:
        assert len(triggers) == 1
        _, key, schema, trigger = triggers[0]
        assert schema == "control" and key == b"fraud"
        assert trigger["kind"] == "RETRAIN_TRIGGER" and trigger["tier"] == "SEVERE"
        assert trigger["action"] == Tier.SEVERE.action
        assert trigger["window_ids"] == [alert["window_id"]]
        assert any("device_trust_score" in reason for reason in trigger["reasons"])
    else:  # MODERATE needs confirm_k of confirm_m windows
        assert settings.confirm_k > 1 and triggers == []


def test_same_drift_again_is_one_episode_and_in_cooldown(logic, clean_counts, drifted_counts):
    outputs, state = logic.judge(0, drifted_counts[0], None)
    assert outputs  # alert (and trigger)
    for counts in (drifted_counts[1], drifted_counts[0]):
        outputs, state = logic.judge(0, counts, state)
        assert outputs == []


def _sequence(clean, drifted):
    """Windows: clean, drift, drift (same episode), 3 clean (episode closes), drift (new episode,
    trigger still in cooldown), clean."""
    return [clean[0], drifted[0], drifted[1], clean[1], clean[2], clean[3], drifted[2], clean[0]]


def _run(logic, windows, state=None):
    outputs = []
    for counts in windows:
        out, state = logic.judge(0, counts, state)
        outputs.append(_without_clock(out))
    return outputs, state


def test_episodes_reopen_but_cooldown_holds_the_trigger(logic, clean_counts, drifted_counts):
    outputs, _ = _run(logic, _sequence(clean_counts, drifted_counts))
    kinds = [[(sink, record.get("feature")) for sink, _, _, record in out] for out in outputs]
    assert kinds[0] == [] and kinds[2:6] == [[], [], [], []] and kinds[7] == []
    assert (SINK_ALERTS, "device_trust_score") in kinds[1]
    assert kinds[6] == [(SINK_ALERTS, "device_trust_score")]  # new episode, no second trigger
    assert logic.counter.judge.settings.cooldown_windows >= 5
    alert_ids = [record["alert_id"] for out in outputs for sink, _, _, record in out if sink == SINK_ALERTS]
    assert len(alert_ids) == 2 and len(set(alert_ids)) == 2  # distinct windows -> distinct ids


@pytest.mark.parametrize("restart_after", [1, 2, 3, 6])
def test_restart_from_state_bytes_continues_identically(config, logic, clean_counts, drifted_counts,
                                                        restart_after):
    windows = _sequence(clean_counts, drifted_counts)
    straight, final = _run(logic, windows)
    before, state = _run(SidecarLogic.for_model(config), windows[:restart_after])
    after, resumed_final = _run(SidecarLogic.for_model(config), windows[restart_after:], bytes(state))
    assert before + after == straight
    assert resumed_final == final


def test_alert_and_trigger_ids_do_not_depend_on_the_wall_clock(logic, clean_counts, drifted_counts,
                                                             monkeypatch):
    _, state = logic.judge(0, clean_counts[0], None)
    replays = []
    for now in (1_800_000_000.0, 1_900_000_000.5):
        monkeypatch.setattr(drift_logic.time, "time", lambda now=now: now)
        outputs, new_state = logic.judge(0, drifted_counts[0], state)
        replays.append((_decoded(outputs), new_state))
    (first, state_a), (second, state_b) = replays
    assert state_a == state_b
    assert [r[3]["emitted_time"] for r in first] == [1_800_000_000_000] * len(first)
    assert [r[3]["emitted_time"] for r in second] == [1_900_000_000_500] * len(second)
    ids = [(r[3].get("alert_id"), r[3].get("message_id"), r[3].get("window_id")) for r in first]
    assert ids == [(r[3].get("alert_id"), r[3].get("message_id"), r[3].get("window_id")) for r in second]
    assert all(message_id for _, message_id, _ in ids if message_id is not None)
    assert sum(message_id is not None for _, message_id, _ in ids) == 1  # the SEVERE trigger
    # another drifted window, later in the stream, gets other ids
    _, later_state = _run(logic, clean_counts[:3], state)
    later, _ = logic.judge(0, drifted_counts[2], later_state)
    later_ids = {r[3].get("alert_id") for r in _decoded(later) if r[0] == SINK_ALERTS}
    assert later_ids and later_ids.isdisjoint({i[0] for i in ids})


def test_time_window_alert_ids_are_the_window_start(config, drifted_counts):
    window_ms = 60_000
    time_logic = SidecarLogic.for_model(config.with_changes(window_kind="time", window_ms=window_ms))
    start = START_MS + 100_000_000
    first, _ = time_logic.judge(start, drifted_counts[0], None)
    replay, _ = time_logic.judge(start, drifted_counts[0], None)
    other, _ = time_logic.judge(start + window_ms, drifted_counts[0], None)
    alerts = [r[3] for r in _decoded(first) if r[0] == SINK_ALERTS]
    assert alerts and all((a["window_start"], a["window_end"]) == (start, start + window_ms) for a in alerts)
    assert _without_clock(first) == _without_clock(replay)
    ids = {r[3].get("alert_id") or r[3]["message_id"] for r in _decoded(first)}
    other_ids = {r[3].get("alert_id") or r[3]["message_id"] for r in _decoded(other)}
    assert len(ids) == len(first) and ids.isdisjoint(other_ids)


def test_small_window_is_judged_too_small_and_emits_nothing(logic):
    counts = _window_counts(logic, 7_400_600, DRIFT, n=100)
    stats = logic.counter.judge_vector(np.frombuffer(counts, dtype=np.int64))
    assert stats.too_small
    outputs, _ = logic.judge(0, counts, None)
    assert outputs == []


def test_merge_keeps_the_counter_layout(logic, clean_counts):
    merged = logic.merge(logic.merge(None, clean_counts[0]), clean_counts[1])
    vector = np.frombuffer(merged, dtype=np.int64)
    assert vector.size == logic.counter.size and logic.events_in(merged) == 2 * WINDOW
    expected = WindowCounter.merge(np.frombuffer(clean_counts[0], dtype=np.int64).copy(),
                                   np.frombuffer(clean_counts[1], dtype=np.int64).copy())
    np.testing.assert_array_equal(vector, expected)


@pytest.mark.parametrize("changes, message", [
    ({"checkpoint_interval_ms": 60_000, "transaction_timeout_ms": 30_000},
     "transaction_timeout_ms 30000 is too close to the checkpoint interval (60000 ms): use at least 600000 ms"),
    ({"transaction_timeout_ms": 1000}, "use at least 60000 ms"),
    ({"registry": RegistryWire(framing="bogus")}, "registry.framing must be one of"),
    ({"registry": RegistryWire(url="http://r", wait_ms=10_000_000)}, "registry.wait_ms 10000000 must be > 0"),
    ({"state_backend": "memory"}, "state_backend must be one of rocksdb, hashmap, got 'memory'"),
])
def test_the_sidecar_refuses_settings_that_cannot_work(changes, message):
    from streamscore.foundation.errors import ConfigError

    with pytest.raises(ConfigError, match=re.escape(message)):
        DriftJobConfig(bootstrap="x", **changes).checked()


def test_the_sidecar_keeps_its_state_in_rocksdb_unless_told_otherwise():
    assert DriftJobConfig(bootstrap="x").checked().state_backend == "rocksdb"
    assert DriftJobConfig.from_json(DriftJobConfig(bootstrap="x", state_backend="hashmap").to_json()).state_backend \
        == "hashmap"


def test_a_trigger_id_names_the_model_version_and_the_windows_first_event(logic, clean_counts, drifted_counts):
    # window 0 of a drift job for a newly promoted version (or of a job restarted without its state) must
    # not reuse the id of an old trigger, which the retrain loop would take as answered
    import copy

    def trigger_ids(sidecar, counts):
        _, state = sidecar.judge(0, clean_counts[0], None)
        outputs, _ = sidecar.judge(0, counts, state)
        return [r[3]["message_id"] for r in _decoded(outputs) if r[0] == SINK_CONTROL]

    promoted = copy.copy(logic)
    promoted.model_version = "1.1.0"
    later = np.frombuffer(drifted_counts[0], dtype=np.int64).copy()
    later[2:4] += 3_600_000  # the same window sequence, an hour later
    later = later.tobytes()
    ids = trigger_ids(logic, drifted_counts[0])
    assert len(ids) == 1 and ids == trigger_ids(logic, drifted_counts[0])  # deterministic
    assert trigger_ids(promoted, drifted_counts[0])[0] != ids[0]
    assert trigger_ids(logic, later)[0] != ids[0]


def test_labels_that_cannot_join_are_counted_by_reason_never_skipped_silently(logic):
    from streamscore.foundation.vocabulary import RejectCode

    serde = serde_for("label")

    def label(i, value):
        return serde.encode({"event_id": f"evt-{i}", "correlation_id": None, "label": value,
                             "event_time": START_MS + i, "label_time": START_MS + i + 5})

    payloads = [label(1, 1), b"\x00not a label", label(2, 0), label(3, 7), label(4, -1), b""]
    decoded = logic.decode_label_ids(payloads)
    assert decoded.ids == ["evt-1", None, "evt-2", None, None, None]
    assert decoded.labels[0] == 1 and decoded.labels[2] == 0
    # each by the decoder's own reason, as the scoring job's dead letters are
    assert decoded.rejected == {RejectCode.BAD_MARKER: 1, RejectCode.EMPTY: 1, RejectCode.OUT_OF_RANGE: 2}
    # and each identified by where it sits on the topic (what the sidecar logs of it; never its bytes)
    facts = decoded.rejection_facts("labels", np.array([0, 1, 0, 1, 0, 1]), np.array([10, 11, 12, 13, 14, 15]))
    assert facts == [{"topic": "labels", "source_partition": p, "source_offset": o, "reason_code": code}
                     for p, o, code in ((1, 11, "bad_marker"), (1, 13, "out_of_range"), (0, 14, "out_of_range"),
                                        (1, 15, "empty"))]
