"""Unit tests of drift/judge.py, drift/decision.py, drift/accuracy.py: sample-size-aware drift decisions."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest

from drift import (
    DriftDetector,
    DriftError,
    DriftSettings,
    Tier,
    WindowJudge,
    judge_accuracy,
    load_score_profile,
    score_profile,
)
from drift.judge import BatchStats
from drift.simulate import NO_DRIFT_SEED, SIZES, false_alarms, model_profile, pool_windows
from models.demo_data import CHANNELS, FEATURE_NAMES, DriftSpec, generate_columns, generate_matrix


@pytest.fixture(scope="module")
def profile():
    return model_profile("fraud:1.0.0")


@pytest.fixture(scope="module")
def judge(profile):
    return WindowJudge(profile)


@pytest.fixture(scope="module")
def no_drift_pool():
    """400,000 undrifted events from seeds disjoint from the model's training data."""
    return np.concatenate([generate_matrix(100_000, NO_DRIFT_SEED + i)[0] for i in range(4)])


# --- thresholds and the no-drift false-alarm rate -----------------------------------------------------


def test_critical_psi_and_minimum_window(judge):
    assert len(judge.features) == 25 and judge.skipped == ()
    minimum = judge.minimum_window()
    assert 250 < minimum < 500
    assert np.max(judge.critical_psi(minimum)) <= 0.10 < np.max(judge.critical_psi(minimum - 1))
    assert judge.too_small_reason(minimum) == ""
    reason = judge.too_small_reason(100)
    assert "too small" in reason and f"{minimum} events" in reason


@pytest.mark.parametrize("n", SIZES)
def test_no_drift_windows_raise_no_tier_in_more_than_1_percent(judge, no_drift_pool, n):
    """>= 1,000 no-drift windows per supported size; no more than 1 % may raise any tier.

    Windows are ``n`` distinct events drawn from a 400k-event no-drift pool (disjoint
    from the reference sample; windows of one pass over a permutation are disjoint).
    Reusing a pool only adds the pool's own sampling noise -- a shared offset that can
    only make false alarms likelier -- and keeps the test fast. ``python -m
    drift.simulate`` repeats this with fresh events for every window (docs/drift.md).
    """
    rates = false_alarms(judge, pool_windows(no_drift_pool, n, 1000, seed=n))
    assert rates["windows"] >= 1000
    assert rates["tier"] <= 0.01
    assert rates["significant"] <= 0.01
    if n == 100:  # what a fixed PSI >= 0.10 threshold does at this size, for contrast
        assert rates["fixed_one"] > 0.25 and rates["fixed_any"] > 0.9


def test_too_small_windows_never_raise_a_tier_and_say_so(profile):
    matrix, _ = generate_matrix(100, 3, [DriftSpec("device_trust_score", "shift", 2.0)])
    verdict = DriftDetector(profile).observe(matrix)
    assert verdict.too_small and "too small" in verdict.reason
    assert verdict.tier == Tier.NONE and verdict.alerts == () and verdict.trigger is None
    assert verdict.test("device_trust_score").psi > 0.25  # the drift is there, the window is just too small


# --- detection ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("feature", ["device_trust_score", "customer_age", "amount_ratio_to_avg"])
def test_half_sigma_shift_is_alerted_in_the_first_default_window(profile, feature):
    for seed in range(20):
        matrix, _ = generate_matrix(1000, 500 + seed, [DriftSpec(feature, "shift", 0.5)])
        verdict = DriftDetector(profile).observe(matrix)
        assert not verdict.too_small and verdict.size == DriftSettings().window_size
        alerted = {alert.feature: alert for alert in verdict.alerts}
        assert feature in alerted and alerted[feature].tier >= Tier.SMALL, (seed, verdict.test(feature))
        assert set(alerted) == {feature}  # and nothing else


def test_category_mix_is_caught_by_chi_square(profile):
    columns = generate_columns(1000, 9, [DriftSpec("merchant_category", "category_mix", 0.3, category="jewelry")])
    verdict = DriftDetector(profile).observe(columns)
    test = verdict.test("merchant_category")
    assert test.test == "CHI2" and test.significant and test.tier >= Tier.MODERATE


def test_batch_equals_single_windows_and_columns_equal_matrix(judge):
    matrix, _ = generate_matrix(3000, 21, [DriftSpec("customer_age", "shift", 0.3)])
    batch = judge.judge_batch(matrix.reshape(3, 1000, -1), chunk_rows=1000)
    for row in range(3):
        single = judge.judge(matrix[row * 1000:(row + 1) * 1000])
        for name in ("psi", "statistic", "p_value", "p_adjusted", "tier"):
            assert np.allclose(getattr(batch, name)[row], getattr(single, name)[0], rtol=1e-12, atol=1e-15)
    window = matrix[:1000]
    columns = {name: window[:, j] for j, name in enumerate(FEATURE_NAMES)}  # the model's float32 values
    columns["channel"] = np.asarray(CHANNELS)[window[:, FEATURE_NAMES.index("channel")].astype(int)]
    by_name, by_matrix = judge.judge(columns), judge.judge(window)
    assert np.allclose(by_name.psi, by_matrix.psi) and np.allclose(by_name.p_value, by_matrix.p_value)


def test_bad_windows_are_rejected(judge):
    with pytest.raises(DriftError):
        judge.judge(np.zeros((10, 3)))
    with pytest.raises(DriftError):
        judge.judge({"amount": np.ones(10)})
    matrix, _ = generate_matrix(500, 1)
    matrix[3, 0] = np.nan
    with pytest.raises(DriftError):
        judge.judge(matrix)


# --- prediction scores --------------------------------------------------------------------------------


def test_score_profile_is_watched_like_a_feature(profile):
    rng = np.random.default_rng(4)
    raw = score_profile(rng.beta(1, 20, 50_000))
    assert load_score_profile(raw).count == 50_000
    detector = DriftDetector(profile, score_reference=raw)
    matrix, _ = generate_matrix(1000, 8)
    with pytest.raises(DriftError):
        detector.observe(matrix)
    calm = detector.observe(matrix, scores=rng.beta(1, 20, 1000))
    drifted = detector.observe(matrix, scores=rng.beta(1.6, 20, 1000))
    assert calm.test("prediction_score").tier == Tier.NONE
    assert [alert.feature for alert in drifted.alerts] == ["prediction_score"]


# --- hysteresis, cooldown, episodes -------------------------------------------------------------------


def _stats(tiers: dict[str, Tier], too_small: bool = False) -> BatchStats:
    names = ("a", "b")
    tier = np.asarray([[int(tiers.get(name, Tier.NONE)) for name in names]], dtype=np.int8)
    psi = np.asarray([[(0.0, 0.12, 0.2, 0.3)[t] for t in tier[0]]])
    zeros = np.zeros((1, 2))
    return BatchStats(n=1000, features=names, tests=("KS", "CHI2"), psi=psi, psi_critical=np.full(2, 0.03),
                      statistic=zeros, p_value=zeros, p_adjusted=zeros, significant=tier > 0, tier=tier,
                      too_small=too_small, reason="too small" if too_small else "")


def _run(detector: DriftDetector, sequence):
    return [detector.advance(_stats(step) if isinstance(step, dict) else step) for step in sequence]


def test_alerts_once_per_episode_escalate_and_resolve(profile):
    S, M = Tier.SMALL, Tier.MODERATE
    verdicts = _run(DriftDetector(profile), [{"a": S}, {"a": S}, {"a": M}, {}, {"a": S}, {}, {}, {}, {"a": S}])
    alerts = [(v.window_id, a.tier, a.escalation) for v in verdicts for a in v.alerts]
    assert alerts == [(0, S, False), (2, M, True), (8, S, False)]
    assert [v.window_id for v in verdicts if "a" in v.resolved] == [7]


def test_triggers_need_k_of_m_windows_except_severe(profile):
    S, X = Tier.SMALL, Tier.SEVERE
    verdicts = _run(DriftDetector(profile), [{"a": S}, {}, {"b": S}, {"b": S}, {"a": X}])
    triggers = [(v.window_id, v.trigger.tier, v.trigger.action) for v in verdicts if v.trigger]
    assert triggers == [(2, S, "automated_retraining"), (4, X, "emergency_rollback_or_retrain")]


def test_cooldown_suppresses_repeat_triggers_but_not_escalation(profile):
    S, M = Tier.SMALL, Tier.MODERATE
    settings = DriftSettings(cooldown_windows=6, clear_windows=2)
    detector = DriftDetector(profile, settings)
    sequence = [{"a": S}, {"a": S}, {}, {}, {"a": S}, {"a": S}, {"a": M}, {"a": M}, {}, {}, {}, {}, {}, {},
                {"a": S}, {"a": S}]
    triggers = [(v.window_id, v.trigger.tier) for v in _run(detector, sequence) if v.trigger]
    # 1: first incident; 4-5: a new incident inside the cooldown (silent); 7: escalation; 15: after cooldown
    assert triggers == [(1, S), (7, M), (15, S)]


def test_too_small_windows_leave_the_hysteresis_alone(profile):
    S = Tier.SMALL
    verdicts = _run(DriftDetector(profile), [{"a": S}, _stats({}, too_small=True), {"a": S}])
    assert verdicts[1].too_small and verdicts[1].tier == Tier.NONE
    assert verdicts[2].trigger is not None and verdicts[2].trigger.window_id == 2


# --- checkpointed state: versioned JSON, never pickle ---------------------------------------------------

_BEFORE = [{"a": Tier.SMALL}, {"a": Tier.SMALL}, {"a": Tier.SMALL, "b": Tier.MODERATE}, {}]  # windows 0-3
_AFTER = [{"a": Tier.MODERATE}, {"b": Tier.MODERATE}, {}, {}, {"a": Tier.SMALL}, {"b": Tier.SEVERE}]


def _outputs(verdict):
    return (verdict.window_id, verdict.tier, verdict.alerts, verdict.trigger, verdict.resolved)


def test_snapshot_round_trip_continues_exactly(profile):
    settings = DriftSettings(cooldown_windows=4, clear_windows=2)
    original = DriftDetector(profile, settings)
    _run(original, _BEFORE)
    snapshot = original.snapshot()
    restored = DriftDetector(profile, settings)
    restored.restore(snapshot)
    assert restored.snapshot() == snapshot and restored.open_episodes == original.open_episodes
    continued, resumed = _run(original, _AFTER), _run(restored, _AFTER)
    assert [_outputs(v) for v in resumed] == [_outputs(v) for v in continued]
    assert resumed == continued
    # the state matters: window 4 escalates a's open episode and triggers MODERATE (b in window 2)
    assert continued[0].window_id == 4 and [(a.feature, a.escalation) for a in continued[0].alerts] == [("a", True)]
    assert continued[0].trigger is not None and continued[0].trigger.tier == Tier.MODERATE
    fresh = _run(DriftDetector(profile, settings), _AFTER)
    assert [_outputs(v) for v in fresh] != [_outputs(v) for v in continued]
    restored.restore(None)
    assert restored.snapshot() == DriftDetector(profile, settings).snapshot()


def test_snapshot_is_versioned_json_without_pickle(profile):
    detector = DriftDetector(profile, DriftSettings(cooldown_windows=4, clear_windows=2))
    _run(detector, _BEFORE)
    snapshot = detector.snapshot()
    assert isinstance(snapshot, bytes) and not snapshot.startswith(b"\x80") and b"pickle" not in snapshot
    assert json.loads(snapshot.decode("utf-8")) == {
        "format": "drift-detector", "version": 1,
        "episodes": {"a": {"tier": 1, "clean": 1}, "b": {"tier": 2, "clean": 1}},
        "incident": {"tier": 1, "clean": 1, "cooldown": 2, "last_trigger": 1, "history": [1, 2, 0]},
        "next_window_id": 4,
    }


def test_legacy_pickle_snapshot_is_refused_not_unpickled(profile, monkeypatch):
    detector = DriftDetector(profile)
    _run(detector, _BEFORE)
    legacy = pickle.dumps((detector._episodes, detector._incident, detector._next_id),
                          protocol=pickle.HIGHEST_PROTOCOL)  # what streamscore wrote before
    before = detector.snapshot()

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the detector state must never be unpickled")

    for name in ("loads", "load", "Unpickler", "_loads", "_load", "_Unpickler"):
        monkeypatch.setattr(pickle, name, no_unpickling, raising=False)
    for snapshot in (legacy, pickle.dumps(({}, {"tier": 1}, 3), protocol=2)):
        with pytest.raises(DriftError) as caught:
            detector.restore(snapshot)
        message = str(caught.value)
        assert "\n" not in message
        assert message == ("drift detector state is in the pre-JSON pickle format of older streamscore builds "
                           "(savepoint from an older version): start the drift sidecar fresh, without that savepoint")
    assert detector.snapshot() == before  # a refused restore leaves the state alone


def test_unknown_snapshot_version_is_refused(profile):
    detector = DriftDetector(profile)
    raw = json.loads(detector.snapshot())
    for version in (2, 0, "1", True):
        with pytest.raises(DriftError, match=f"has version {version!r}, but this streamscore reads only version 1"):
            detector.restore(json.dumps({**raw, "version": version}).encode())


@pytest.mark.parametrize("change, text", [
    (lambda raw: raw.pop("next_window_id"), "next_window_id is missing"),
    (lambda raw: raw["incident"].update(tier=7), "incident.tier is 7, not a tier"),
    (lambda raw: raw["incident"].update(history=[1, None]), "incident.history[1] is None, not a tier"),
    (lambda raw: raw["episodes"].update(a={"tier": 1, "clean": True}), "episodes['a'].clean is True, not a count"),
    (lambda raw: raw.update(format="drift-labelled"), "is not a 'drift-detector' snapshot"),
])
def test_malformed_snapshots_are_refused_in_one_line(profile, change, text):
    detector = DriftDetector(profile)
    raw = json.loads(detector.snapshot())
    change(raw)
    with pytest.raises(DriftError, match=re.escape(text)):
        detector.restore(json.dumps(raw).encode())
    for junk in (b"", b"not json", b"\xff\xfe", b"[1, 2]"):
        with pytest.raises(DriftError, match="drift detector state is not"):
            detector.restore(junk)


def test_settings_are_validated():
    for bad in ({"window_size": 0}, {"alpha": 1.5}, {"correction": "holm"}, {"tier_bounds": (0.2, 0.1, 0.3)},
                {"confirm_k": 4, "confirm_m": 3}, {"clear_windows": 0}):
        with pytest.raises(DriftError):
            DriftSettings(**bad)
    assert [t.action for t in Tier] == ["none", "automated_retraining", "human_review",
                                        "emergency_rollback_or_retrain"]


def test_bonferroni_correction_is_available(profile):
    matrix, _ = generate_matrix(1000, 30, [DriftSpec("customer_age", "shift", 0.5)])
    for correction in ("bh", "bonferroni"):
        verdict = DriftDetector(profile, DriftSettings(correction=correction)).observe(matrix)
        assert [a.feature for a in verdict.alerts] == ["customer_age"]


def test_detector_from_a_model_card():
    from models.registry import load_model

    card = load_model("fraud:1.0.0").card
    detector = DriftDetector.for_card(card)
    scores = ("prediction_score",) if card.drift_profile.get("score") else ()
    assert detector.judge.features == FEATURE_NAMES + scores


# --- accuracy drops -----------------------------------------------------------------------------------


@pytest.mark.parametrize("observed, n, tier", [(0.945, 50_000, Tier.SMALL), (0.92, 5000, Tier.MODERATE),
                                               (0.88, 2000, Tier.SEVERE), (0.94, 100, Tier.NONE),
                                               (0.96, 5000, Tier.NONE)])
def test_judge_accuracy_follows_the_table_when_significant(observed, n, tier):
    verdict = judge_accuracy(0.95, observed, n)
    assert verdict.tier == tier and verdict.action == tier.action
    assert verdict.significant == (tier != Tier.NONE)


def test_judge_accuracy_reports_the_smallest_detectable_drop():
    small, large = judge_accuracy(0.95, 0.95, 100), judge_accuracy(0.95, 0.95, 10_000)
    assert small.min_detectable_drop > 0.05 > large.min_detectable_drop
    with pytest.raises(DriftError):
        judge_accuracy(1.2, 0.9, 100)


def test_a_perfect_measured_reference_does_not_make_one_error_significant():
    # a held-out accuracy of 1.0 over 2,000 events: one error in 1,000 is no evidence of a drop (the
    # two-proportion test's pooled accuracy); 30 errors are
    assert judge_accuracy(1.0, 0.999, 1000, reference_n=2000).tier == Tier.NONE
    assert judge_accuracy(1.0, 0.97, 1000, reference_n=2000).significant
    # against the measured reference the standard error is the pooled two-proportion one
    verdict = judge_accuracy(0.95, 0.93, 4000, reference_n=20_000)
    pooled = (0.95 * 20_000 + 0.93 * 4000) / 24_000
    assert verdict.standard_error == pytest.approx((pooled * (1 - pooled) * (1 / 4000 + 1 / 20_000)) ** 0.5)
