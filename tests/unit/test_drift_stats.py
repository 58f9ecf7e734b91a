"""Unit tests of drift/stats.py, drift/kolmogorov.py and drift/ecdf.py: the drift statistics."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from drift import DriftError, bh_adjust, bonferroni, chi2_test, ks_2samp, presort, psi, psi_critical
from drift.ecdf import GridCdf, ks_statistic_grid
from drift.kolmogorov import kstwo_sf
from drift.stats import PSI_EPSILON, chi2_counts, ks_pvalue
from models.drift_profile import _sorted_quantile_grid

# --- PSI -------------------------------------------------------------------------------------------


def test_psi_equals_the_closed_form():
    assert psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(0.1 * math.log(1.2) - 0.1 * math.log(0.8), abs=1e-15)
    e, a = np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.25, 0.25, 0.25, 0.25])
    assert psi(e, a) == pytest.approx(float(np.sum((a - e) * np.log(a / e))), rel=1e-14)
    assert psi([10, 20, 30, 40], [5, 5, 5, 5]) == pytest.approx(psi(e, a), rel=1e-14)  # counts are normalised


def test_psi_smooths_empty_bins_with_the_documented_epsilon():
    e, a = np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.4, 0.1])
    def smooth(p):
        return (p + PSI_EPSILON) / (1 + 3 * PSI_EPSILON)
    expected = float(np.sum((smooth(a) - smooth(e)) * np.log(smooth(a) / smooth(e))))
    assert psi(e, a) == pytest.approx(expected, rel=1e-14)
    assert math.isfinite(psi(e, a))
    assert psi(e, a, epsilon=0.0) == math.inf


def test_psi_broadcasts_over_windows():
    reference = np.array([0.2, 0.3, 0.5])
    windows = np.array([[20, 30, 50], [30, 30, 40], [0, 50, 50]])
    assert np.allclose(psi(reference, windows), [psi(reference, row) for row in windows])


@pytest.mark.parametrize("expected, actual", [([], []), ([0.5, 0.5], [1.0]), ([-0.1, 1.1], [0.5, 0.5]),
                                              ([0, 0], [0.5, 0.5]), ([np.nan, 1], [0.5, 0.5])])
def test_psi_rejects_bad_vectors(expected, actual):
    with pytest.raises(DriftError):
        psi(expected, actual)


_vectors = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=12)


@settings(max_examples=300, deadline=None)
@given(_vectors, st.data())
def test_psi_properties(first, data):
    second = data.draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=len(first), max_size=len(first)))
    if sum(first) <= 0 or sum(second) <= 0:
        return
    value = psi(first, second)
    assert math.isfinite(value) and value >= 0.0  # smoothing keeps it finite, PSI is never negative
    assert psi(first, first) == 0.0
    assert value == pytest.approx(psi(second, first), rel=1e-9, abs=1e-15)  # symmetric
    e, a = np.asarray(first) / sum(first), np.asarray(second) / sum(second)
    if np.max(np.abs(e - a)) > 1e-6:
        assert value > 0.0  # zero only when the two distributions are equal


def test_psi_critical_is_the_chi_square_quantile_over_n_eff():
    n, reference = 1000, 84_000
    expected = stats.chi2.isf(0.0004, 9) / (n * reference / (n + reference))
    assert psi_critical(n, reference, 9, 0.0004) == pytest.approx(expected, rel=1e-12)
    assert psi_critical(n, None, 9, 0.0004) == pytest.approx(stats.chi2.isf(0.0004, 9) / n, rel=1e-12)


# --- KS ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reference_size", [1_000, 10_000, 100_000])
@pytest.mark.parametrize("window_size", [100, 500, 1000, 5000])
def test_ks_2samp_equals_scipy(reference_size, window_size):
    rng = np.random.default_rng(reference_size + window_size)
    reference = rng.normal(size=reference_size)
    sorted_reference = presort(reference)
    for shift in (0.0, 0.03, 0.1, 0.5):
        window = rng.normal(shift, 1.0, window_size)
        ours = ks_2samp(sorted_reference, window, reference_sorted=True)
        theirs = stats.ks_2samp(reference, window)
        assert abs(ours.statistic - theirs.statistic) <= 1e-9
        assert abs(ours.pvalue - theirs.pvalue) <= 1e-9
        assert ours == ks_2samp(reference, window)  # unsorted reference: sorted on the fly


@pytest.mark.parametrize("window_size", [100, 1000])
def test_ks_2samp_equals_scipy_with_ties(window_size):
    rng = np.random.default_rng(window_size)
    reference = rng.poisson(3.0, 20_000).astype(float)
    for rate in (3.0, 3.2):
        window = rng.poisson(rate, window_size).astype(float)
        ours, theirs = ks_2samp(reference, window), stats.ks_2samp(reference, window)
        assert abs(ours.statistic - theirs.statistic) <= 1e-9 and abs(ours.pvalue - theirs.pvalue) <= 1e-9
        swapped = stats.ks_2samp(window, reference)
        assert abs(ours.pvalue - swapped.pvalue) <= 1e-9


def test_ks_2samp_rejects_empty_and_nan():
    with pytest.raises(DriftError):
        ks_2samp([1.0, 2.0], [])
    with pytest.raises(DriftError):
        ks_2samp([1.0, 2.0], [1.0, np.nan])


def test_ks_2samp_against_a_presorted_reference_is_well_under_a_millisecond():
    rng = np.random.default_rng(0)
    reference, window = presort(rng.normal(size=100_000)), rng.normal(0.02, 1.0, 1000)
    ks_2samp(reference, window, reference_sorted=True)
    best = math.inf
    for _ in range(30):
        start = time.perf_counter()
        ks_2samp(reference, window, reference_sorted=True)
        best = min(best, time.perf_counter() - start)
    assert best < 1e-3


@pytest.mark.parametrize("n", [1, 3, 10, 50, 100, 140, 141, 500, 988, 4760, 20_000])
def test_kstwo_sf_equals_scipy(n):
    xs = np.concatenate([np.linspace(0.0, 1.0, 41), np.geomspace(0.3 / n, 0.9, 60),
                         [0.5 / n, 1.0 / n, 0.5, 1 - 1 / n, min(1.0, 2 / math.sqrt(n))]])
    assert np.max(np.abs(kstwo_sf(xs, n) - stats.kstwo.sf(xs, n))) <= 1e-9


def test_ks_pvalue_is_vectorised():
    statistics = np.array([0.01, 0.03, 0.05, 0.2])
    result = ks_pvalue(statistics, 84_000, 1000)
    assert np.allclose(result.pvalue, [ks_pvalue(d, 84_000, 1000).pvalue for d in statistics], rtol=0, atol=1e-15)


# --- KS against the profile's quantile grid -----------------------------------------------------------


def _brute_grid_ks(grid: np.ndarray, window: np.ndarray) -> float:
    """sup |F_grid - F_window| by evaluating both at and around every point that matters."""
    probabilities = np.linspace(0.0, 1.0, grid.size)

    def cdf(x: float) -> float:  # right-continuous inverse of the piecewise-linear quantile function
        at_or_below = np.flatnonzero(grid <= x)
        if at_or_below.size == 0:
            return 0.0
        i = at_or_below[-1]
        if i == grid.size - 1:
            return 1.0
        return probabilities[i] + (x - grid[i]) / (grid[i + 1] - grid[i]) * (probabilities[i + 1] - probabilities[i])

    points = np.unique(np.concatenate([window, grid]))
    best = 0.0
    for x in points:
        below = np.nextafter(x, -np.inf)
        best = max(best, abs(cdf(x) - np.mean(window <= x)), abs(cdf(below) - np.mean(window <= below)))
    return best


@pytest.mark.parametrize("kind", ["continuous", "integers", "boolean"])
def test_grid_ks_is_exact_against_the_grid_cdf(kind):
    rng = np.random.default_rng(5)
    draw = {"continuous": lambda n: rng.normal(size=n), "integers": lambda n: rng.poisson(2.0, n).astype(float),
            "boolean": lambda n: (rng.random(n) < 0.3).astype(float)}[kind]
    grid = _sorted_quantile_grid(np.sort(draw(5000)))
    for _ in range(3):
        window = draw(200)
        assert ks_statistic_grid(grid, window) == pytest.approx(_brute_grid_ks(grid, window), abs=1e-12)


@pytest.mark.parametrize("kind", ["continuous", "integers", "rounded"])
def test_grid_ks_is_within_its_error_bound_of_the_full_reference(kind):
    rng = np.random.default_rng(11)
    draw = {"continuous": lambda n, s: rng.normal(s, 1.0, n),
            "integers": lambda n, s: rng.poisson(3.0 + s, n).astype(float),
            "rounded": lambda n, s: np.round(rng.lognormal(s, 1.0, n), 1)}[kind]
    reference = draw(84_000, 0.0)
    grid = _sorted_quantile_grid(np.sort(reference))
    for shift in (0.0, 0.05, 0.2):
        window = draw(1000, shift)
        bound = 1 / 1000 + 1 / reference.size
        assert abs(ks_statistic_grid(grid, window) - stats.ks_2samp(reference, window).statistic) <= bound


def test_grid_cdf_limits():
    cdf = GridCdf.from_quantiles([0.0, 0.0, 1.0, 1.0, 1.0])  # mass 1/4 at 0, then linear, then mass at 1
    left, right = cdf.evaluate(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]))
    assert np.allclose(right, [0.0, 0.25, 0.375, 1.0, 1.0])
    assert np.allclose(left, [0.0, 0.0, 0.375, 0.5, 1.0])


# --- chi-square and multiple testing ----------------------------------------------------------------


@pytest.mark.parametrize("reference, window", [
    ([500, 300, 150, 50], [40, 35, 20, 5]),
    ([500, 300, 150, 0], [40, 35, 20, 3]),  # a bucket unseen in the reference (OOV)
    ([500, 300, 0, 0], [40, 35, 0, 0]),  # empty in both: dropped
    ([800, 200], [70, 30]),  # one degree of freedom: Yates' correction
    ([800, 200, 5], [60, 40, 0]),
])
def test_chi2_test_equals_scipy_contingency(reference, window):
    table = np.array([reference, window])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table)
    ours = chi2_test(reference, window)
    assert ours.statistic == pytest.approx(expected.statistic, rel=1e-12, abs=1e-12)
    assert abs(ours.pvalue - expected.pvalue) <= 1e-12 and ours.dof == expected.dof


def test_chi2_counts_batches_and_degenerate_tables():
    reference = np.array([500.0, 300.0, 200.0])
    windows = np.array([[50, 30, 20], [70, 20, 10], [100, 0, 0]])
    statistic, pvalue, dof = chi2_counts(reference, windows)
    for row, s, p, d in zip(windows, statistic, pvalue, dof):
        assert (s, p, d) == pytest.approx(tuple(chi2_test(reference, row)), rel=1e-12)
    assert tuple(chi2_test([10, 0], [5, 0])) == (0.0, 1.0, 0)
    with pytest.raises(DriftError):
        chi2_test([10, 5], [0, 0])


def test_bh_and_bonferroni():
    rng = np.random.default_rng(2)
    for _ in range(20):
        p = rng.random(25) ** 3
        assert np.allclose(bh_adjust(p), stats.false_discovery_control(p, method="bh"), rtol=0, atol=1e-15)
        assert np.allclose(bonferroni(p), np.minimum(25 * p, 1.0))
    batch = rng.random((4, 25))
    assert np.allclose(bh_adjust(batch), [bh_adjust(row) for row in batch])
    with pytest.raises(DriftError):
        bh_adjust([0.5, 1.5])
