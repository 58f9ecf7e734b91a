"""Stateless judgement of event windows against a model's drift profile.

Per profiled feature (and, if a score reference is given, the prediction score):

* numeric: counts over the profile's decile bins -> PSI; KS against the profile's
  1001-point quantile grid (:mod:`drift.ecdf`), with the feature's reference row
  count as the reference size of the p-value;
* categorical: bucket counts (unknown values -> ``__OOV__``) -> PSI; chi-square
  contingency test against the reference counts (``proportions x count``).

Decision, for ``F`` judged features and a window of ``n`` events (reference ``N``)::

    n_eff        = n N / (n + N)
    psi_critical = chi2.isf(alpha / F, dof) / n_eff        dof = reference bins with mass - 1
    significant  = psi > psi_critical  and  p_adjusted <= alpha
    tier         = tier of psi by the design guide's bounds if significant, else NONE

``p_adjusted`` is the KS / chi-square p-value adjusted across the ``F`` features
(Benjamini-Hochberg by default, Bonferroni on request). Each condition alone keeps
the chance that a no-drift window raises anything below ``alpha``; together they
ask for drift that is both statistically real and material. A window whose
``psi_critical`` exceeds the SMALL bound (0.10) for some feature is *too small*:
there a fixed 0.10 threshold would fire on more than ``alpha / F`` of no-drift
windows for that feature, so it raises no tier at all and says why
(:meth:`WindowJudge.too_small_reason`). Features whose reference has a single bin
(constant) cannot be judged by PSI and are listed in :attr:`WindowJudge.skipped`.

Everything works on batches: ``judge_batch`` takes ``[windows, n, d]`` (or a
mapping of ``[windows, n]`` columns) and returns arrays ``[windows, features]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats as _stats

from drift.ecdf import GridCdf, ks_statistic_grids
from drift.errors import DriftError
from drift.settings import DriftSettings
from drift.stats import bh_adjust, bonferroni, chi2_counts, effective_size, ks_pvalue, psi_unchecked
from models.drift_profile import (
    SCORE_FEATURE,
    DriftProfile,
    FeatureProfile,
    NumericProfile,
    categorical_bucket_index,
    load_score_profile,
    numeric_bin_index,
)

CHUNK_ROWS = 50_000  # events per whole-array pass in WindowJudge.judge_batch


@dataclass(frozen=True)
class FeatureReference:
    """One judged feature: its profile, test name, reference bin counts and PSI degrees of freedom."""

    name: str
    profile: FeatureProfile
    test: str  # "KS" | "CHI2"
    size: int
    counts: np.ndarray
    dof: int


@dataclass(frozen=True)
class BatchStats:
    """Statistics and decisions for ``windows`` windows of ``n`` events (arrays ``[windows, features]``)."""

    n: int
    features: tuple[str, ...]
    tests: tuple[str, ...]
    psi: np.ndarray
    psi_critical: np.ndarray  # [features]
    statistic: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray
    tier: np.ndarray  # int8 tier codes
    too_small: bool
    reason: str

    @property
    def windows(self) -> int:
        return int(self.psi.shape[0])

    @property
    def window_tier(self) -> np.ndarray:
        return self.tier.max(axis=1)


def _reference(name: str, profile: FeatureProfile, rows: int) -> FeatureReference:
    size = int(profile.count) or int(rows)
    if size < 1:
        raise DriftError(f"drift profile of {name!r}: unknown reference size (count)")
    proportions = np.asarray(profile.proportions, dtype=np.float64)
    test = "KS" if isinstance(profile, NumericProfile) else "CHI2"
    return FeatureReference(name=name, profile=profile, test=test, size=size,
                            counts=np.rint(proportions * size), dof=int(np.count_nonzero(proportions > 0)) - 1)


def _row_bincount(index: np.ndarray, bins: int) -> np.ndarray:
    rows = index.shape[0]
    flat = (index + bins * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * bins).reshape(rows, bins)


class WindowJudge:
    """Judges windows of events against a :class:`DriftProfile`; holds no state between windows."""

    def __init__(self, profile: DriftProfile, settings: DriftSettings | None = None, *,
                 score_reference: NumericProfile | Mapping | None = None) -> None:
        self.settings = settings or DriftSettings()
        self.columns = tuple(profile.features)
        refs = [_reference(name, item, profile.rows) for name, item in profile.features.items()]
        if score_reference is not None:
            score = (score_reference if isinstance(score_reference, NumericProfile)
                     else load_score_profile(score_reference))
            refs.append(_reference(SCORE_FEATURE, score, 0))
        self.references = tuple(ref for ref in refs if ref.dof >= 1)
        self.skipped = tuple(ref.name for ref in refs if ref.dof < 1)
        if not self.references:
            raise DriftError("drift profile: no feature has more than one reference bin")
        self.alpha_per_feature = self.settings.alpha / len(self.references)
        self._chi2_quantile = _stats.chi2.isf(self.alpha_per_feature, [ref.dof for ref in self.references])
        self._sizes = np.asarray([ref.size for ref in self.references], dtype=np.float64)
        self.has_scores = score_reference is not None
        self._pad()

    def _pad(self) -> None:
        """Zero-padded ``[features, bins]`` arrays, so each window takes a few whole-array passes."""
        bins = [ref.counts.size for ref in self.references]
        self.valid = np.arange(max(bins)) < np.asarray(bins)[:, None]  # [features, max bins]: real bins
        self.expected = np.zeros(self.valid.shape)  # reference proportions, zero-padded
        self._reference_counts = np.zeros(self.valid.shape)
        for i, ref in enumerate(self.references):
            self.expected[i, :bins[i]] = ref.profile.proportions
            self._reference_counts[i, :bins[i]] = ref.counts
        self._numeric = np.asarray([i for i, ref in enumerate(self.references) if ref.test == "KS"], dtype=int)
        self._categorical = np.asarray([i for i, ref in enumerate(self.references) if ref.test == "CHI2"], dtype=int)
        self._cdfs = [GridCdf.from_quantiles(self.references[i].profile.quantiles) for i in self._numeric]

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(ref.name for ref in self.references)

    @property
    def padded_shape(self) -> tuple[int, int]:
        """``(features, max bins)``: the shape of one window's zero-padded bin counts."""
        return self.valid.shape

    def reference(self, name: str) -> FeatureReference:
        """The judged feature called ``name``."""
        for ref in self.references:
            if ref.name == name:
                return ref
        raise DriftError(f"drift judge: no judged feature {name!r}")

    def critical_psi(self, n: int) -> np.ndarray:
        """Per judged feature, the PSI a no-drift window of ``n`` events exceeds with probability alpha/F."""
        return self._chi2_quantile / effective_size(n, self._sizes)

    def minimum_window(self) -> int | None:
        """Smallest window whose critical PSI is within the SMALL bound for every feature (None: none is)."""
        bound = self.settings.tier_bounds[0]
        needed = self._chi2_quantile / bound  # the n_eff each feature needs
        if np.any(needed >= self._sizes):
            return None
        n = int(np.max(np.ceil(needed * self._sizes / (self._sizes - needed))))
        while np.max(self.critical_psi(n)) > bound:
            n += 1
        return n

    def too_small_reason(self, n: int) -> str:
        """Why a window of ``n`` events cannot raise a tier, or "" when it can."""
        critical = self.critical_psi(n)
        worst, bound = int(np.argmax(critical)), self.settings.tier_bounds[0]
        if critical[worst] <= bound:
            return ""
        minimum = self.minimum_window()
        usable = f"the smallest usable window is {minimum} events" if minimum else "no window size is usable"
        return (f"window of {n} events is too small to keep false alarms under {self.settings.alpha:.0%}: "
                f"without drift the PSI of {self.references[worst].name!r} exceeds {critical[worst]:.3f}, "
                f"above the {bound:.2f} SMALL bound, in {self.alpha_per_feature:.2g} of windows; {usable}")

    def judge(self, window, scores=None) -> BatchStats:
        """Judge one window: a ``[n, d]`` matrix in profile order or a mapping name -> ``[n]`` column."""
        columns = self._columns(window, scores, batch=False)
        return self.decide(next(iter(columns.values())).shape[1], *self._statistics(columns))

    def judge_batch(self, windows, scores=None, *, chunk_rows: int = CHUNK_ROWS) -> BatchStats:
        """Judge ``[windows, n, d]`` (or name -> ``[windows, n]``) equal-sized windows at once.

        Windows are processed ``chunk_rows`` events at a time: whole-array passes over
        a few MB stay in cache and beat one pass over hundreds of MB.
        """
        columns = self._columns(windows, scores, batch=True)
        count, n = next(iter(columns.values())).shape
        step = max(1, chunk_rows // max(n, 1))
        parts = [self._statistics({name: column[start:start + step] for name, column in columns.items()})
                 for start in range(0, count, step)]
        return self.decide(n, *(np.concatenate(arrays) for arrays in zip(*parts)))

    def _statistics(self, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(PSI, test statistic, raw p-value), each ``[windows, features]``."""
        count, n = next(iter(columns.values())).shape
        if n < 1:
            raise DriftError("drift window: no events")
        counts = np.zeros((count,) + self.padded_shape)
        statistic, pvalue = np.empty((count, len(self.references))), np.empty((count, len(self.references)))
        if self._numeric.size:
            self._numeric_tests(columns, counts, statistic, pvalue)
        if self._categorical.size:
            self._categorical_tests(columns, counts, statistic, pvalue)
        return psi_unchecked(self.expected, counts / n, self.settings.psi_epsilon, self.valid), statistic, pvalue

    def _numeric_tests(self, columns, counts, statistic, pvalue) -> None:
        """Bin counts and KS of every numeric feature at once (in place)."""
        refs = [self.references[i] for i in self._numeric]
        values = np.stack([np.asarray(columns[ref.name], dtype=np.float64) for ref in refs])
        nan = np.isnan(values).any(axis=(1, 2))
        if nan.any():
            raise DriftError(f"drift window: feature {refs[int(np.argmax(nan))].name!r} has NaN values")
        values.sort(axis=-1)
        for i, ref, column in zip(self._numeric, refs, values):
            counts[:, i, :ref.counts.size] = _row_bincount(numeric_bin_index(ref.profile.edges, column),
                                                           ref.counts.size)
        statistic[:, self._numeric] = ks_statistic_grids(self._cdfs, values).T
        n = values.shape[-1]
        for size in np.unique(self._sizes[self._numeric]):
            group = self._numeric[self._sizes[self._numeric] == size]
            result = ks_pvalue(statistic[:, group], int(size), n)
            statistic[:, group], pvalue[:, group] = result.statistic, result.pvalue

    def _categorical_tests(self, columns, counts, statistic, pvalue) -> None:
        """Bucket counts and chi-square of every categorical feature at once (in place)."""
        for i in self._categorical:
            ref = self.references[i]
            column = columns[ref.name]
            index = categorical_bucket_index(ref.profile.buckets[:-1], column.ravel()).reshape(column.shape)
            counts[:, i, :ref.counts.size] = _row_bincount(index, ref.counts.size)
        chi2, p, _ = chi2_counts(self._reference_counts[self._categorical], counts[:, self._categorical, :])
        statistic[:, self._categorical], pvalue[:, self._categorical] = chi2, p

    def decide(self, n: int, psi_values: np.ndarray, statistic: np.ndarray, pvalue: np.ndarray,
               sizes: np.ndarray | None = None) -> BatchStats:
        """Decisions from ``[windows, features]`` PSI, statistics and raw p-values of ``n``-event windows.

        ``sizes``: per feature, the values its statistics came from when that is not ``n`` (the score of a
        version that scored only part of the window: a canary). A feature's critical PSI is that of its own
        size, and a feature too small to keep its false alarms under alpha is never significant."""
        settings = self.settings
        adjusted = (bh_adjust if settings.correction == "bh" else bonferroni)(pvalue)
        critical = self.critical_psi(n if sizes is None else np.maximum(sizes, 1))
        reason = self.too_small_reason(n)
        usable = critical <= settings.tier_bounds[0]  # all True when the window is not too small and sizes == n
        significant = (psi_values > critical) & (adjusted <= settings.alpha) & usable & (not reason)
        tier = np.where(significant, settings.psi_tier(psi_values), 0).astype(np.int8)
        return BatchStats(n=n, features=self.features, tests=tuple(ref.test for ref in self.references),
                          psi=psi_values, psi_critical=critical, statistic=statistic, p_value=pvalue,
                          p_adjusted=adjusted, significant=significant, tier=tier, too_small=bool(reason),
                          reason=reason)

    def _columns(self, windows, scores, batch: bool) -> dict[str, np.ndarray]:
        names = [ref.name for ref in self.references if ref.name != SCORE_FEATURE]
        if isinstance(windows, Mapping):
            missing = [name for name in names if name not in windows]
            if missing:
                raise DriftError(f"drift window: missing feature columns {missing}")
            columns = {name: np.asarray(windows[name]) for name in names}
        else:
            matrix = np.asarray(windows)
            if matrix.ndim != (3 if batch else 2) or matrix.shape[-1] != len(self.columns):
                raise DriftError(f"drift window: shape {matrix.shape} is not "
                                 f"[{'windows, ' if batch else ''}n, {len(self.columns)}]")
            columns = {name: matrix[..., self.columns.index(name)] for name in names}
        if self.has_scores:
            if scores is None:
                raise DriftError("drift window: this judge watches prediction scores; pass scores")
            columns[SCORE_FEATURE] = np.asarray(scores)
        columns = {name: (column if batch else column[None, ...]) for name, column in columns.items()}
        if len({column.shape for column in columns.values()}) != 1 or next(iter(columns.values())).ndim != 2:
            raise DriftError("drift window: columns must be equally long 1-D vectors (batch: [windows, n])")
        return columns

