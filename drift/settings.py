"""Drift severity tiers (the design guide's retraining table) and detector settings.

=========  ===============  ==============  ==================================
Tier       PSI              Accuracy drop   Action
=========  ===============  ==============  ==================================
SMALL      0.10 - 0.15      < 2 %           ``automated_retraining``
MODERATE   0.15 - 0.25      2 - 5 %         ``human_review``
SEVERE     > 0.25           > 5 %           ``emergency_rollback_or_retrain``
=========  ===============  ==============  ==================================

A PSI below 0.10 is "no significant change" in the guide; here it never raises a
tier, however significant it is statistically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from drift.errors import DriftError
from drift.stats import PSI_EPSILON

CORRECTIONS = ("bh", "bonferroni")


class Tier(IntEnum):
    """Severity of a drift finding; ordered, so ``max()`` gives the worst."""

    NONE = 0
    SMALL = 1
    MODERATE = 2
    SEVERE = 3

    @property
    def action(self) -> str:
        return _ACTIONS[self]


_ACTIONS = {Tier.NONE: "none", Tier.SMALL: "automated_retraining", Tier.MODERATE: "human_review",
            Tier.SEVERE: "emergency_rollback_or_retrain"}


@dataclass(frozen=True)
class DriftSettings:
    """How windows are judged and when alerts and triggers are emitted.

    * ``window_size``: events per window the sidecar cuts (the statistics use each
      window's actual length).
    * ``alpha``: family-wise false-alarm target per window, across all features.
      PSI critical values use Bonferroni (``alpha / features``); the KS and
      chi-square p-values are adjusted with ``correction`` (``"bh"`` or ``"bonferroni"``).
    * ``tier_bounds``: PSI lower bounds of SMALL, MODERATE and SEVERE (SEVERE is ``>``).
    * Triggers need the tier in ``confirm_k`` of the last ``confirm_m`` judged
      windows (SEVERE: ``severe_confirm_k``); after a trigger, ``cooldown_windows``
      windows emit no trigger of the same or a lower tier.
    * A feature's alert episode (and the window-level incident) closes after
      ``clear_windows`` consecutive windows without a tier.
    """

    window_size: int = 1000
    alpha: float = 0.01
    correction: str = "bh"
    tier_bounds: tuple[float, float, float] = (0.10, 0.15, 0.25)
    confirm_k: int = 2
    confirm_m: int = 3
    severe_confirm_k: int = 1
    cooldown_windows: int = 10
    clear_windows: int = 3
    psi_epsilon: float = PSI_EPSILON

    def __post_init__(self) -> None:
        if not isinstance(self.window_size, int) or self.window_size < 1:
            raise DriftError(f"DriftSettings.window_size: {self.window_size!r} is not a positive integer")
        if not 0.0 < self.alpha < 1.0:
            raise DriftError(f"DriftSettings.alpha: {self.alpha!r} is not in (0, 1)")
        if self.correction not in CORRECTIONS:
            raise DriftError(f"DriftSettings.correction: {self.correction!r} is not one of {CORRECTIONS}")
        bounds = tuple(self.tier_bounds)
        if len(bounds) != 3 or not 0.0 < bounds[0] < bounds[1] < bounds[2]:
            raise DriftError(f"DriftSettings.tier_bounds: {bounds!r} is not three increasing positive PSIs")
        if not 1 <= self.confirm_k <= self.confirm_m or not 1 <= self.severe_confirm_k <= self.confirm_m:
            raise DriftError("DriftSettings.confirm_k/severe_confirm_k: need 1 <= k <= confirm_m")
        for name in ("cooldown_windows", "clear_windows"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < (1 if name == "clear_windows" else 0):
                raise DriftError(f"DriftSettings.{name}: {getattr(self, name)!r} is out of range")
        if not self.psi_epsilon >= 0:
            raise DriftError(f"DriftSettings.psi_epsilon: {self.psi_epsilon!r} must be >= 0")

    def psi_tier(self, psi_values) -> np.ndarray:
        """Tier codes (0..3) of PSI values by ``tier_bounds``, ignoring significance."""
        small, moderate, severe = self.tier_bounds
        values = np.asarray(psi_values, dtype=np.float64)
        return ((values >= small).astype(np.int8) + (values >= moderate) + (values > severe)).astype(np.int8)
