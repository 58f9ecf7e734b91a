"""Drift statistics: PSI, two-sample KS, chi-square, and multiple-testing corrections.

Pure numpy/scipy. Every function takes one sample/window or a batch (leading axes)
where noted, so a simulation of thousands of windows is a few array operations.

PSI (:func:`psi`) over two proportion (or count) vectors, normalised to sum 1::

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

An empty bin would make a term infinite (and a nearly empty one huge), so when
either vector has a bin below ``epsilon`` -- in practice an empty bin -- *both* are
smoothed additively: ``p -> (p + epsilon) / (1 + B * epsilon)`` with ``epsilon = 1e-4``
(:data:`PSI_EPSILON`, the value Evidently uses). Smoothing keeps PSI finite (below
``2 ln((1 + B epsilon) / epsilon)``, ~18.4 for 10 bins), non-negative, symmetric, and zero exactly when
the two vectors are equal; vectors with every bin >= ``epsilon`` get the textbook value.

>>> round(psi([0.5, 0.5], [0.6, 0.4]), 6)
0.040547
>>> psi([0.25, 0.75], [25, 75])           # counts are normalised
0.0
>>> round(psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]), 4)   # empty reference bin: finite
0.713

Under no drift, with bin counts from a window of ``n`` events and a reference of
``N`` rows, ``PSI * n_eff`` is approximately chi-square with ``B - 1`` degrees of
freedom, ``n_eff = n N / (n + N)`` (PSI is the symmetric KL divergence, whose
second-order expansion is Pearson's chi-square / n_eff): :func:`psi_critical`.

KS (:func:`ks_2samp`) equals ``scipy.stats.ks_2samp(reference, window)`` (two-sided,
``method='auto'``) in statistic and p-value, but with a presorted reference it only
sorts the window and binary-searches it into the reference: O(n log N) instead of
O((n + N) log(n + N)). The ECDF difference is evaluated at every window value and
just below it; between window values the reference ECDF is monotone, so these
points hold the supremum exactly. p-values follow scipy's choice: the exact
distribution when ``max(n, N) <= 10000`` (scipy's own routine, so the statistic is
rounded to the lattice ``h / lcm(n, N)`` as scipy does), else Smirnov's
``kstwo.sf(D, round(n N / (n + N)))``, evaluated by :func:`drift.kolmogorov.kstwo_sf`
(scipy's algorithm, vectorised: microseconds instead of up to milliseconds).

>>> ref = presort(np.arange(100_000) / 100_000)
>>> round(ks_2samp(ref, np.linspace(0.2, 0.6, 1000), reference_sorted=True).statistic, 4)
0.4

:func:`chi2_test` is ``scipy.stats.chi2_contingency`` on the 2 x K table of
reference and window counts (all-zero columns dropped, Yates' correction at one
degree of freedom). :func:`bh_adjust` (Benjamini-Hochberg) and :func:`bonferroni`
adjust p-values across features (last axis).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as _stats

from drift.errors import DriftError
from drift.kolmogorov import kstwo_sf

try:  # scipy's exact two-sample KS routine, so p-values match ks_2samp bit for bit
    from scipy.stats._stats_py import _attempt_exact_2kssamp
except ImportError:  # pragma: no cover - older/newer scipy: fall back to the asymptotic p-value
    _attempt_exact_2kssamp = None

PSI_EPSILON = 1e-4
KS_MAX_EXACT_N = 10_000  # scipy.stats.ks_2samp(method="auto") is exact up to this sample size


class KsResult(NamedTuple):
    statistic: float
    pvalue: float


class Chi2Result(NamedTuple):
    statistic: float
    pvalue: float
    dof: int


def _scalar(value: np.ndarray):
    return float(value) if np.ndim(value) == 0 else value


def _proportions(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] == 0:
        raise DriftError(f"{name}: needs at least one bin")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise DriftError(f"{name}: proportions/counts must be finite and >= 0")
    totals = array.sum(axis=-1, keepdims=True)
    if np.any(totals <= 0):
        raise DriftError(f"{name}: all bins are empty")
    return array / totals


def psi(expected, actual, *, epsilon: float = PSI_EPSILON):
    """Population Stability Index of ``actual`` against ``expected`` (last axis = bins).

    Either argument may be proportions or counts; leading axes broadcast (a batch
    of windows against one reference gives one PSI per window).
    """
    e, a = _proportions(expected, "psi expected"), _proportions(actual, "psi actual")
    if e.shape[-1] != a.shape[-1]:
        raise DriftError(f"psi: {e.shape[-1]} expected bins but {a.shape[-1]} actual bins")
    if not epsilon >= 0:
        raise DriftError(f"psi: epsilon {epsilon!r} must be >= 0")
    return _scalar(psi_unchecked(e, a, epsilon))


def psi_unchecked(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON,
                  valid: np.ndarray | None = None) -> np.ndarray:
    """:func:`psi` of already validated, normalised proportion arrays (the hot path).

    ``valid`` marks real bins when rows of different bin counts are zero-padded to
    one width; padding takes no part in the smoothing or the sum.
    """
    e, a = np.broadcast_arrays(expected, actual)
    valid = np.ones(e.shape[-1], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    empty = np.any(valid & ((e < epsilon) | (a < epsilon) | (e == 0) | (a == 0)), axis=-1, keepdims=True)
    if empty.any():
        scale = 1.0 + valid.sum(axis=-1, keepdims=True) * epsilon
        e = np.where(empty, (e + epsilon) / scale, e)
        a = np.where(empty, (a + epsilon) / scale, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (a - e) * np.log(a / e)
    return np.where(valid & (a != e), terms, 0.0).sum(axis=-1)


def effective_size(n, reference_size):
    """``n N / (n + N)``: the sample size a window-vs-reference comparison is worth."""
    n = np.asarray(n, dtype=np.float64)
    return n if reference_size is None else n * reference_size / (n + reference_size)


def psi_critical(n, reference_size, dof, alpha):
    """The PSI that a no-drift window of ``n`` events exceeds with probability ``alpha``.

    >>> round(psi_critical(1000, 84_000, 9, 0.01 / 25), 4)
    0.0306
    """
    return _scalar(_stats.chi2.isf(alpha, dof) / effective_size(n, reference_size))


def presort(values) -> np.ndarray:
    """A validated, sorted, read-only float64 copy of a reference sample, for ``reference_sorted=True``."""
    array = np.sort(_sample(values, "reference"))
    array.flags.writeable = False
    return array


def _sample(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise DriftError(f"ks_2samp: {name} is empty")
    if np.isnan(array).any():
        raise DriftError(f"ks_2samp: {name} contains NaN")
    return array


def two_sided_max(right: np.ndarray, left: np.ndarray) -> np.ndarray:
    """scipy's two-sided statistic max(D+, D-) from the ECDF differences at and just below each point."""
    d_plus = np.maximum(right.max(axis=-1), left.max(axis=-1))
    d_minus = np.clip(-np.minimum(right.min(axis=-1), left.min(axis=-1)), 0, 1)
    return np.where(d_minus > d_plus, d_minus, d_plus)


def ks_statistic_sorted(reference_sorted: np.ndarray, window_sorted: np.ndarray) -> float:
    """Exact two-sided KS statistic of two sorted 1-D samples, O(n log N).

    One binary search of the window into the reference gives the reference ECDF
    at each window value; only values that also occur in the reference need a
    second search for the ECDF just below them.
    """
    ref, win = reference_sorted, window_sorted
    n1, n2 = ref.size, win.size
    ref_right = np.searchsorted(ref, win, side="right")
    ref_left = ref_right.copy()
    tied = ref[np.maximum(ref_right - 1, 0)] == win
    tied &= ref_right > 0
    if tied.any():
        ref_left[tied] = np.searchsorted(ref, win[tied], side="left")
    win_left, win_right = _rank_counts(win)
    right = ref_right / n1 - win_right / n2
    left = ref_left / n1 - win_left / n2
    return float(two_sided_max(right, left))


def _rank_counts(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element of a sorted 1-D array: (# values < it, # values <= it)."""
    if sorted_values.size < 2 or np.all(sorted_values[1:] != sorted_values[:-1]):
        index = np.arange(sorted_values.size)
        return index, index + 1
    return (np.searchsorted(sorted_values, sorted_values, side="left"),
            np.searchsorted(sorted_values, sorted_values, side="right"))


def _ks_exact(d: float, n1: int, n2: int) -> tuple[float, float] | None:
    if _attempt_exact_2kssamp is None:  # pragma: no cover
        return None
    success, d, prob = _attempt_exact_2kssamp(n1, n2, int(np.gcd(n1, n2)), d, "two-sided")
    return (float(d), float(np.clip(prob, 0, 1))) if success else None


def ks_pvalue(statistic, n1: int, n2: int) -> KsResult:
    """scipy's two-sided ``ks_2samp`` p-value (method='auto') for a statistic and sizes.

    Returns the statistic as scipy reports it (rounded to the lattice in exact mode);
    ``statistic`` may be an array (the asymptotic branch is then one vectorised call).
    """
    d = np.asarray(statistic, dtype=np.float64)
    if max(n1, n2) <= KS_MAX_EXACT_N:
        pairs = [_ks_exact(float(x), n1, n2) for x in d.ravel()]
        if all(pair is not None for pair in pairs):
            out = np.asarray(pairs, dtype=np.float64).reshape(d.shape + (2,))
            return KsResult(_scalar(out[..., 0]), _scalar(out[..., 1]))
    m, n = sorted([float(n1), float(n2)], reverse=True)
    prob = np.clip(kstwo_sf(d, int(np.round(m * n / (m + n)))), 0, 1)
    return KsResult(_scalar(d), _scalar(prob))


def ks_2samp(reference, window, *, reference_sorted: bool = False) -> KsResult:
    """Two-sided two-sample KS test, equal to ``scipy.stats.ks_2samp(reference, window)``.

    Pass a :func:`presort` -ed reference with ``reference_sorted=True`` to skip
    sorting (and re-validating) it on every call: then a 1,000-event window against
    a 100,000-point reference costs tens of microseconds.
    """
    ref = np.asarray(reference, dtype=np.float64) if reference_sorted else presort(reference)
    if ref.ndim != 1 or ref.size == 0:
        raise DriftError("ks_2samp: reference must be a non-empty 1-D sample")
    win = np.sort(_sample(window, "window"))
    return ks_pvalue(ks_statistic_sorted(ref, win), ref.size, win.size)


def chi2_counts(reference_counts, window_counts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch chi-square contingency tests: (statistic, p-value, dof) per window (last axis = buckets)."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    win = np.asarray(window_counts, dtype=np.float64)
    if ref.shape[-1] != win.shape[-1] or np.any(ref < 0) or np.any(win < 0):
        raise DriftError("chi2_test: counts must be non-negative with the same buckets")
    ref, win = np.broadcast_arrays(ref, win)
    observed = np.stack([ref, win], axis=-2)
    rows, cols = observed.sum(axis=-1, keepdims=True), observed.sum(axis=-2, keepdims=True)
    if np.any(rows == 0):
        raise DriftError("chi2_test: the reference or the window has no counts")
    expected = rows * cols / rows.sum(axis=-2, keepdims=True)
    keep = cols > 0
    dof = keep.sum(axis=(-2, -1)) - 1
    diff = expected - observed
    yates = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    observed = np.where((dof == 1)[..., None, None], yates, observed)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(keep, (observed - expected) ** 2 / expected, 0.0)
    statistic = np.where(dof > 0, terms.sum(axis=(-2, -1)), 0.0)
    pvalue = np.where(dof > 0, _stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
    return statistic, pvalue, dof


def chi2_test(reference_counts, window_counts) -> Chi2Result:
    """Chi-square test of a window's category counts against the reference counts.

    Equal to ``scipy.stats.chi2_contingency([reference, window])`` after dropping
    buckets empty in both.

    >>> chi2_test([500, 300, 200, 0], [40, 35, 25, 0]).dof
    2
    """
    statistic, pvalue, dof = chi2_counts(np.ravel(reference_counts), np.ravel(window_counts))
    return Chi2Result(float(statistic), float(pvalue), int(dof))


def _pvalues(pvalues) -> np.ndarray:
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim == 0 or np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise DriftError("p-values must be a non-empty array of numbers in [0, 1]")
    return p


def bonferroni(pvalues) -> np.ndarray:
    """Bonferroni-adjusted p-values, ``min(1, m p)`` over the last axis (family-wise error)."""
    p = _pvalues(pvalues)
    return np.minimum(p * p.shape[-1], 1.0)


def bh_adjust(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values over the last axis (false discovery rate).

    Equal to ``scipy.stats.false_discovery_control(p, method='bh')``.

    >>> bh_adjust([0.01, 0.04, 0.03, 0.5]).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = _pvalues(pvalues)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[..., ::-1], axis=-1)[..., ::-1]
    out = np.empty_like(p)
    np.put_along_axis(out, order, np.minimum(adjusted, 1.0), axis=-1)
    return out
