"""Labelled windows: binned AUC equals the exact AUC closely, accuracy tiers, one alert per episode."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from drift.errors import DriftError
from drift.labelled import LabelledEpisodes, binned_auc, label_counts, merge, summarize
from drift.settings import Tier


def _window(rng, n, accuracy, threshold=0.5):
    actual = (rng.random(n) < 0.1).astype(np.int64)
    scores = np.clip(0.25 + 0.4 * actual + rng.normal(0, 0.15, n), 0, 1)
    predicted = (scores >= threshold).astype(np.int64)
    flip = rng.random(n) > accuracy  # mislabel a fraction: the observed accuracy drops accordingly
    return scores, predicted, np.where(flip, 1 - predicted, predicted)


def test_binned_auc_matches_the_exact_auc():
    rng = np.random.default_rng(1)
    scores, predicted, actual = _window(rng, 5000, 0.95)
    summary = summarize(label_counts(scores, predicted, actual))
    assert summary.auc == pytest.approx(roc_auc_score(actual, scores), abs=0.003)
    assert summary.accuracy == pytest.approx(np.mean(predicted == actual))
    assert summary.n == 5000 and summary.positives == int(actual.sum())


def test_counts_merge_by_addition_like_one_big_batch():
    rng = np.random.default_rng(2)
    scores, predicted, actual = _window(rng, 3000, 0.9)
    whole = label_counts(scores, predicted, actual)
    parts = None
    for chunk in np.array_split(np.arange(3000), 7):
        parts = merge(parts, label_counts(scores[chunk], predicted[chunk], actual[chunk]))
    assert np.array_equal(parts, whole)
    with pytest.raises(DriftError):
        merge(None, whole[:-1])


def test_auc_needs_both_classes():
    assert binned_auc(np.array([0, 3]), np.zeros(2, dtype=np.int64)) is None


def test_no_drop_rarely_alerts_and_a_big_drop_alerts_once_per_episode():
    rng = np.random.default_rng(3)
    episodes = LabelledEpisodes(reference_accuracy=0.95)
    quiet = [episodes.decide(label_counts(*_window(rng, 1000, 0.95))).alert for _ in range(500)]
    assert sum(quiet) <= 5  # <= 1 % false alarms at 1000 labels a window
    episodes = LabelledEpisodes(reference_accuracy=0.95)
    decisions = [episodes.decide(label_counts(*_window(rng, 1000, 0.85))) for _ in range(4)]
    assert [d.alert for d in decisions] == [True, False, False, False]
    assert [d.trigger for d in decisions] == [None, Tier.SEVERE, None, None]  # confirmed by 2 of 3, once
    assert decisions[0].verdict.tier == Tier.SEVERE and decisions[0].sequence == 0
    recovered = episodes.decide(label_counts(*_window(rng, 1000, 0.95)))
    assert not recovered.alert and recovered.trigger is None and episodes.episode_tier == Tier.NONE
    again = [episodes.decide(label_counts(*_window(rng, 1000, 0.85))) for _ in range(2)]
    assert [d.alert for d in again] == [True, False]  # a new episode alerts
    assert [d.trigger for d in again] == [None, None]  # one lucky window inside the drop: no second retraining
    for _ in range(3):  # the drop gone from the last 3 windows: the trigger re-arms
        assert episodes.decide(label_counts(*_window(rng, 1000, 0.95))).trigger is None
    later = [episodes.decide(label_counts(*_window(rng, 1000, 0.85))) for _ in range(2)]
    assert [d.trigger for d in later] == [None, Tier.SEVERE]


def test_an_unconfirmed_episode_is_confirmed_across_one_clean_window():
    rng = np.random.default_rng(6)
    episodes = LabelledEpisodes(reference_accuracy=0.95)
    accuracies = (0.85, 0.95, 0.85, 0.95, 0.95, 0.95)  # S, clean, S: 2 of the last 3; then the drop ends
    decisions = [episodes.decide(label_counts(*_window(rng, 1000, a))) for a in accuracies]
    assert [d.trigger for d in decisions] == [None, None, Tier.SEVERE, None, None, None]


def test_escalation_alerts_again_and_state_round_trips():
    rng = np.random.default_rng(4)
    episodes = LabelledEpisodes(reference_accuracy=0.95)
    first = episodes.decide(label_counts(*_window(rng, 4000, 0.925)))
    assert first.alert and first.verdict.tier == Tier.MODERATE
    restored = LabelledEpisodes(reference_accuracy=0.95)
    restored.restore(episodes.snapshot())
    assert (restored.sequence, restored.episode_tier) == (1, Tier.MODERATE)
    worse = restored.decide(label_counts(*_window(rng, 4000, 0.85)))
    assert worse.alert and worse.verdict.tier == Tier.SEVERE
    assert worse.trigger == Tier.SEVERE  # the restored state remembered the first tiered window


def test_one_unlucky_window_alerts_but_never_triggers():
    rng = np.random.default_rng(5)
    episodes = LabelledEpisodes(reference_accuracy=0.95)
    bad = episodes.decide(label_counts(*_window(rng, 1000, 0.85)))
    good = [episodes.decide(label_counts(*_window(rng, 1000, 0.95))) for _ in range(3)]
    assert bad.alert and bad.trigger is None
    assert all(d.trigger is None and not d.alert for d in good)
