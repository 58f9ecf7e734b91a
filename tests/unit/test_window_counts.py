"""Unit tests of drift/window_counts.py: mergeable count vectors judged like raw windows.

The contract under test (module docstring of ``drift.window_counts``): a window's flat
``int64`` count vector, judged with ``WindowCounter.judge_vector``, gives exactly the PSI and
chi-square results of ``WindowJudge.judge`` on the raw window, KS statistics within the
documented grid error (0.001, checked with 0.0011), and the same decisions; partial vectors
merge by addition (first/last ms by min/max) in any order.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from drift.judge import WindowJudge
from drift.settings import Tier
from drift.window_counts import HEADER, WindowCounter, counter_for_model
from models.demo_data import DriftSpec, generate_matrix
from models.drift_profile import SCORE_FEATURE, load_profile
from models.registry import load_model
from models.runtime import OnnxScorer

MODEL = "fraud:1.0.0"
KS_GRID_ERROR = 0.0011  # documented: the grid under-reads the exact statistic by at most 0.001
EXACT = 1e-9

CLEAN_WINDOWS = {  # id: (events, seed) -- seeds far from the model's training seed
    "clean-1000-a": (1000, 7_300_001),
    "clean-1000-b": (1000, 7_300_002),
    "clean-2500": (2500, 7_300_003),
}
DRIFTED_WINDOWS = {  # id: (events, seed, drift spec) -- clearly drifted: 1 sigma or a large mix change
    "device_trust_score+1sd": (1000, 7_300_011, DriftSpec("device_trust_score", "shift", 1.0)),
    "amount+1sd": (1000, 7_300_012, DriftSpec("amount", "shift", 1.0)),
    "hour_of_day+1sd": (1000, 7_300_013, DriftSpec("hour_of_day", "shift", 1.0)),
    "is_international+1sd": (2500, 7_300_014, DriftSpec("is_international", "shift", 1.0)),
    "merchant_category->jewelry": (1000, 7_300_015, DriftSpec("merchant_category", "category_mix", 0.3,
                                                              category="jewelry")),
}
ALL_WINDOWS = sorted(CLEAN_WINDOWS) + sorted(DRIFTED_WINDOWS)


@pytest.fixture(scope="module")
def model():
    return load_model(MODEL)


@pytest.fixture(scope="module")
def scored_counter():
    """The sidecar's counter: the card's drift profile plus its prediction-score reference."""
    counter = counter_for_model(MODEL)
    assert counter.judge.has_scores and SCORE_FEATURE in counter.bins
    return counter


@pytest.fixture(scope="module")
def plain_counter(model):
    """A counter over the feature profile only, so ``judge.judge(matrix)`` needs no scores."""
    return WindowCounter(WindowJudge(load_profile(model.card.drift_profile)), model.contract)


@pytest.fixture(scope="module")
def scorer(model):
    return OnnxScorer(model)


@pytest.fixture(scope="module")
def windows(scorer):
    """id -> (float32 matrix [n, 25], model scores [n])."""
    out = {}
    for name in ALL_WINDOWS:
        if name in CLEAN_WINDOWS:
            n, seed = CLEAN_WINDOWS[name]
            drift = ()
        else:
            n, seed, spec = DRIFTED_WINDOWS[name]
            drift = (spec,)
        matrix, _ = generate_matrix(n, seed, drift)
        out[name] = (matrix, scorer.predict_batch(matrix))
    return out


def _judged(counter, matrix, scores):
    """(raw BatchStats, count-vector BatchStats) of one window."""
    if counter.judge.has_scores:
        raw = counter.judge.judge(matrix, scores)
        vector = WindowCounter.merge(counter.count_matrix(matrix), counter.count_scores(scores))
    else:
        raw = counter.judge.judge(matrix)
        vector = counter.count_matrix(matrix)
    return raw, counter.judge_vector(vector)


def _tests(stats, kind):
    return np.asarray([test == kind for test in stats.tests])


def _tied_grid(counter, name):
    grid = counter.grids[name][2]
    return bool(np.any(np.diff(grid) == 0))


@pytest.fixture(params=["plain", "scored"])
def counter(request, plain_counter, scored_counter):
    return plain_counter if request.param == "plain" else scored_counter


# --- exactness of PSI and chi-square ---------------------------------------------------------------


@pytest.mark.parametrize("window", ALL_WINDOWS)
def test_psi_and_chi_square_equal_the_raw_judge(counter, windows, window):
    raw, counted = _judged(counter, *windows[window])
    assert counted.features == raw.features and counted.tests == raw.tests
    assert counted.n == raw.n == len(windows[window][0])
    np.testing.assert_allclose(counted.psi, raw.psi, rtol=0, atol=EXACT)
    np.testing.assert_allclose(counted.psi_critical, raw.psi_critical, rtol=0, atol=EXACT)
    chi2 = _tests(raw, "CHI2")
    assert chi2.sum() == 5  # merchant_category, channel, country, card_type, entry_mode
    np.testing.assert_allclose(counted.statistic[:, chi2], raw.statistic[:, chi2], rtol=0, atol=EXACT)
    np.testing.assert_allclose(counted.p_value[:, chi2], raw.p_value[:, chi2], rtol=0, atol=EXACT)


# --- KS within the documented grid error -----------------------------------------------------------


@pytest.mark.parametrize("window", ALL_WINDOWS)
def test_ks_of_continuous_features_is_within_the_grid_error(counter, windows, window):
    """Features whose reference quantile grid is strictly increasing (no point masses)."""
    raw, counted = _judged(counter, *windows[window])
    names = [name for name in raw.features if name in counter.grids and not _tied_grid(counter, name)]
    assert "amount" in names and "device_trust_score" in names
    assert (SCORE_FEATURE in names) == counter.judge.has_scores
    for name in names:
        i = raw.features.index(name)
        assert abs(counted.statistic[0, i] - raw.statistic[0, i]) <= KS_GRID_ERROR, name


@pytest.mark.parametrize("window", ALL_WINDOWS)
def test_ks_of_every_numeric_feature_is_within_the_grid_error(counter, windows, window):
    raw, counted = _judged(counter, *windows[window])
    ks = _tests(raw, "KS")
    gap = np.abs(counted.statistic[0, ks] - raw.statistic[0, ks])
    worst = int(np.argmax(gap))
    assert gap[worst] <= KS_GRID_ERROR, (np.asarray(raw.features)[ks][worst], gap[worst])


# --- decisions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", ALL_WINDOWS)
def test_same_tier_decisions_as_the_raw_judge(counter, windows, window):
    raw, counted = _judged(counter, *windows[window])
    assert counted.too_small == raw.too_small is False
    np.testing.assert_array_equal(counted.tier, raw.tier)
    np.testing.assert_array_equal(counted.significant, raw.significant)
    if window in CLEAN_WINDOWS:
        assert int(raw.window_tier[0]) == Tier.NONE
    else:
        spec = DRIFTED_WINDOWS[window][2]
        i = raw.features.index(spec.feature)
        assert raw.tier[0, i] >= Tier.MODERATE, (spec.feature, raw.psi[0, i])


# --- layout: count_matrix / count_scores -------------------------------------------------------------


def _score_positions(counter):
    positions = np.zeros(counter.size, dtype=bool)
    positions[1] = True
    if SCORE_FEATURE in counter.bins:
        start, stop = counter.bins[SCORE_FEATURE]
        positions[start:stop] = True
        g_start, g_stop, _ = counter.grids[SCORE_FEATURE]
        positions[g_start:g_stop] = True
    return positions


def test_count_matrix_fills_every_feature_block_and_no_score_part(scored_counter, windows):
    matrix, _ = windows["clean-1000-a"]
    millis = 1_700_000_000_000 + np.arange(len(matrix), dtype=np.int64)[::-1] * 7
    vector = scored_counter.count_matrix(matrix, millis)
    assert vector.dtype == np.int64 and vector.shape == (scored_counter.size,)
    assert vector[0] == len(matrix) and vector[1] == 0
    assert (vector[2], vector[3]) == (millis.min(), millis.max())
    for name, (start, stop) in scored_counter.bins.items():
        expected = 0 if name == SCORE_FEATURE else len(matrix)
        assert vector[start:stop].sum() == expected, name
    for name, (start, stop, grid) in scored_counter.grids.items():
        assert stop - start == grid.size + 1
        assert vector[start:stop].sum() == (0 if name == SCORE_FEATURE else len(matrix)), name
    assert not vector[_score_positions(scored_counter)].any()


def test_count_scores_fills_only_the_score_part(scored_counter, windows):
    _, scores = windows["clean-1000-a"]
    millis = np.arange(len(scores), dtype=np.int64) + 5
    vector = scored_counter.count_scores(scores, millis)
    empty = scored_counter.empty()
    outside = ~_score_positions(scored_counter)
    outside[2:4] = False
    np.testing.assert_array_equal(vector[outside], empty[outside])
    assert vector[0] == 0 and vector[1] == len(scores)
    start, stop = scored_counter.bins[SCORE_FEATURE]
    g_start, g_stop, _ = scored_counter.grids[SCORE_FEATURE]
    assert vector[start:stop].sum() == len(scores) and vector[g_start:g_stop].sum() == len(scores)
    # documented: score times never move a window's first/last event time
    assert (vector[2], vector[3]) == (empty[2], empty[3])


def test_count_scores_without_a_score_reference_only_counts(plain_counter):
    vector = plain_counter.count_scores(np.linspace(0, 1, 50))
    expected = plain_counter.empty()
    expected[1] = 50
    np.testing.assert_array_equal(vector, expected)


# --- merge -------------------------------------------------------------------------------------------


def _split(rng, n, parts=3):
    labels = rng.integers(0, parts, n)
    labels[:parts] = np.arange(parts)  # every partial non-empty
    return [np.flatnonzero(labels == k) for k in range(parts)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_of_three_partials_in_any_order_equals_the_whole(scored_counter, windows, seed):
    matrix, scores = windows["device_trust_score+1sd"]
    rng = np.random.default_rng(seed)
    millis = 1_700_000_000_000 + rng.permutation(len(matrix)).astype(np.int64) * 3
    whole = WindowCounter.merge(scored_counter.count_matrix(matrix, millis), scored_counter.count_scores(scores))
    partials = []
    for rows in _split(rng, len(matrix)):
        partials.append(WindowCounter.merge(scored_counter.count_matrix(matrix[rows], millis[rows]),
                                            scored_counter.count_scores(scores[rows])))
    for order in itertools.permutations(range(3)):
        merged = partials[order[0]].copy()
        for k in order[1:]:
            merged = WindowCounter.merge(merged, partials[k].copy())
        np.testing.assert_array_equal(merged, whole)
    # associativity: a + (b + c) == (a + b) + c, starting from an empty vector too
    right = WindowCounter.merge(partials[1].copy(), partials[2].copy())
    np.testing.assert_array_equal(WindowCounter.merge(partials[0].copy(), right), whole)
    left = WindowCounter.merge(scored_counter.empty(), partials[0].copy())
    left = WindowCounter.merge(WindowCounter.merge(left, partials[1].copy()), partials[2].copy())
    np.testing.assert_array_equal(left, whole)
    assert (whole[2], whole[3]) == (millis.min(), millis.max())
    # the merged vector judges exactly like the whole window
    merged_stats = scored_counter.judge_vector(left)
    whole_stats = scored_counter.judge_vector(whole)
    np.testing.assert_array_equal(merged_stats.psi, whole_stats.psi)
    np.testing.assert_array_equal(merged_stats.tier, whole_stats.tier)


def test_merge_takes_min_first_and_max_last_ms(plain_counter, windows):
    matrix, _ = windows["clean-1000-a"]
    early = plain_counter.count_matrix(matrix[:10], np.asarray([50, 20, 30, 40, 99, 60, 70, 80, 90, 25]))
    late = plain_counter.count_matrix(matrix[10:20], np.arange(10, 20, dtype=np.int64) * 100)
    for a, b in ((early, late), (late, early)):
        merged = WindowCounter.merge(a.copy(), b.copy())
        assert (merged[2], merged[3]) == (20, 1900)
        assert merged[0] == 20


def test_empty_vector_is_the_merge_identity(plain_counter, windows):
    matrix, _ = windows["clean-1000-b"]
    vector = plain_counter.count_matrix(matrix, np.arange(len(matrix), dtype=np.int64) + 123)
    np.testing.assert_array_equal(WindowCounter.merge(plain_counter.empty(), vector.copy()), vector)
    np.testing.assert_array_equal(WindowCounter.merge(vector.copy(), plain_counter.empty()), vector)
    np.testing.assert_array_equal(WindowCounter.merge(plain_counter.empty(), plain_counter.empty()),
                                  plain_counter.empty())


# --- empty and malformed vectors ---------------------------------------------------------------------


def test_counting_nothing_gives_the_empty_vector(scored_counter):
    empty = scored_counter.empty()
    assert empty.shape == (scored_counter.size,) and not empty[:2].any() and not empty[HEADER:].any()
    no_rows = np.empty((0, len(scored_counter.contract.names)), dtype=np.float32)
    np.testing.assert_array_equal(scored_counter.count_matrix(no_rows, np.empty(0, dtype=np.int64)), empty)
    np.testing.assert_array_equal(scored_counter.count_scores(np.empty(0)), empty)


def test_empty_vector_judges_as_a_too_small_window_without_drift(scored_counter):
    stats = scored_counter.judge_vector(scored_counter.empty())
    assert stats.too_small and stats.reason
    assert int(stats.window_tier[0]) == Tier.NONE and not stats.significant.any()
    np.testing.assert_array_equal(stats.psi, 0.0)
    np.testing.assert_array_equal(stats.statistic, 0.0)
    np.testing.assert_array_equal(stats.p_value, 1.0)


def test_events_without_scores_judge_the_score_feature_as_absent(scored_counter, windows):
    matrix, _ = windows["clean-1000-a"]
    stats = scored_counter.judge_vector(scored_counter.count_matrix(matrix))
    i = stats.features.index(SCORE_FEATURE)
    assert stats.psi[0, i] == 0.0 and stats.p_value[0, i] == 1.0 and stats.tier[0, i] == Tier.NONE


@pytest.mark.parametrize("change", ["one-long", "one-short-without-scores", "layout-with-score-profile"])
def test_vector_of_the_wrong_length_is_refused(scored_counter, plain_counter, windows, change):
    matrix, _ = windows["clean-1000-a"]
    judge_with, vector = {
        "one-long": (scored_counter, np.append(scored_counter.count_matrix(matrix), np.int64(0))),
        "one-short-without-scores": (scored_counter, scored_counter.count_matrix(matrix)[:-1].copy()),
        "layout-with-score-profile": (plain_counter, scored_counter.count_matrix(matrix)),
    }[change]
    assert vector.size != judge_with.size
    try:
        judge_with.judge_vector(vector)
    except Exception:  # noqa: BLE001 - any refusal is acceptable
        return
    raise AssertionError(f"a {vector.size}-element vector was judged (layout has {judge_with.size})")


def test_merge_refuses_vectors_of_different_lengths(scored_counter):
    with pytest.raises(ValueError):
        WindowCounter.merge(scored_counter.empty(), scored_counter.empty()[:-1])


def test_the_score_is_judged_at_its_own_size_when_a_version_scored_part_of_the_window(scored_counter, windows):
    # a canary: this version scored 60 of the window's 2,500 events. The score's critical PSI is that of 60
    # values (a no-drift PSI of so few is large), the features' that of 2,500, and a score too small to keep
    # its false alarms under alpha is never significant
    matrix, scores = windows["clean-2500"]
    vector = WindowCounter.merge(scored_counter.count_matrix(matrix), scored_counter.count_scores(scores[:60]))
    stats = scored_counter.judge_vector(vector)
    i = stats.features.index(SCORE_FEATURE)
    at_60, at_2500 = scored_counter.judge.critical_psi(60), scored_counter.judge.critical_psi(2500)
    assert stats.psi_critical[i] == pytest.approx(at_60[i]) and at_60[i] > at_2500[i]
    others = [j for j in range(len(stats.features)) if j != i]
    np.testing.assert_allclose(stats.psi_critical[others], at_2500[others])
    assert not stats.too_small and stats.tier[0, i] == Tier.NONE
