"""Tiering a drop in accuracy (the design guide's second column), for labelled windows.

==========  ===============  ==================================
Tier        accuracy drop    action
==========  ===============  ==================================
SMALL       < 2 points       ``automated_retraining``
MODERATE    2 - 5 points     ``human_review``
SEVERE      > 5 points       ``emergency_rollback_or_retrain``
==========  ===============  ==================================

Like PSI, a drop counts only when it is significant for the window's size: a
one-sided z-test of the window accuracy against the reference, with the
binomial standard error ``sqrt(a (1 - a) (1/n + 1/n_ref))`` (``a`` = reference
accuracy; ``1/n_ref`` dropped when the reference size is unknown). For a metric
that is not a proportion (AUC) pass its ``standard_error`` explicitly.

>>> judge_accuracy(0.95, 0.88, 2000).tier.name
'SEVERE'
>>> judge_accuracy(0.95, 0.94, 100).tier.name     # 1 point on 100 labels is noise
'NONE'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _stats

from drift.errors import DriftError
from drift.settings import Tier

ACCURACY_BOUNDS = (0.02, 0.05)  # MODERATE from 2 points, SEVERE above 5 points


@dataclass(frozen=True)
class AccuracyVerdict:
    """A window's accuracy against the reference: drop, its z and p-value, and the tier."""

    reference: float
    observed: float
    n: int
    drop: float
    standard_error: float
    z: float
    p_value: float
    significant: bool
    tier: Tier
    min_detectable_drop: float  # the smallest drop this window size can call significant

    @property
    def action(self) -> str:
        return self.tier.action


def _standard_error(reference: float, observed: float, n: int, reference_n: int | None) -> float:
    """Of the drop under no change. Against a measured reference (``reference_n`` events): the two-proportion
    test's pooled accuracy, so a reference of 1.0 (a perfect held-out set) does not make one error significant;
    against a reference known exactly: the one-sample test's."""
    if reference_n:
        pooled = (reference * reference_n + observed * n) / (reference_n + n)
        return math.sqrt(max(pooled * (1.0 - pooled), 1e-12) * (1.0 / n + 1.0 / reference_n))
    return math.sqrt(max(reference * (1.0 - reference), 1e-12) / n)


def judge_accuracy(reference: float, observed: float, n: int, *, alpha: float = 0.01,
                   reference_n: int | None = None, standard_error: float | None = None,
                   bounds: tuple[float, float] = ACCURACY_BOUNDS) -> AccuracyVerdict:
    """Tier the drop from ``reference`` to ``observed`` accuracy (fractions) over ``n`` labelled events."""
    for name, value in (("reference", reference), ("observed", observed)):
        if not 0.0 <= value <= 1.0:
            raise DriftError(f"judge_accuracy: {name} {value!r} is not a fraction in [0, 1]")
    if n < 1 or not 0.0 < alpha < 1.0:
        raise DriftError(f"judge_accuracy: need n >= 1 and 0 < alpha < 1 (got n={n}, alpha={alpha})")
    if standard_error is None:
        standard_error = _standard_error(reference, observed, n, reference_n)
    drop = reference - observed
    z = drop / standard_error
    p_value = float(_stats.norm.sf(z))
    significant = drop > 0 and p_value <= alpha
    tier = Tier.NONE
    if significant:
        tier = Tier.SEVERE if drop > bounds[1] else Tier.MODERATE if drop >= bounds[0] else Tier.SMALL
    return AccuracyVerdict(reference, observed, n, drop, standard_error, z, p_value, significant, tier,
                           float(standard_error * _stats.norm.isf(alpha)))
