"""Drift monitoring: reference profiles, drift statistics and sample-size-aware decisions.

* :mod:`models.drift_profile` -- the reference profile stored in the model card.
* :mod:`drift.stats` -- :func:`psi`, :func:`ks_2samp` (scipy-equal, presorted reference),
  :func:`chi2_test`, :func:`bh_adjust`, :func:`bonferroni`.
* :mod:`drift.judge` / :mod:`drift.decision` -- per-window tests judged against
  their no-drift distribution at the window's size, tiers, alerts and triggers.
* :mod:`drift.accuracy` -- tiering of accuracy drops; ``python -m drift.simulate``
  regenerates the tables of ``docs/drift.md``.

Pure numpy/scipy: nothing here imports Flink or Kafka.
"""

from drift.accuracy import AccuracyVerdict, judge_accuracy
from drift.decision import Alert, DriftDetector, FeatureTest, Trigger, WindowVerdict
from drift.errors import DriftError
from drift.judge import WindowJudge
from drift.settings import DriftSettings, Tier
from drift.stats import bh_adjust, bonferroni, chi2_test, ks_2samp, presort, psi, psi_critical
from models.drift_profile import build_profile, load_profile, load_score_profile, score_profile

__all__ = [
    "AccuracyVerdict", "Alert", "DriftDetector", "DriftError", "DriftSettings", "FeatureTest", "Tier",
    "Trigger", "WindowJudge", "WindowVerdict", "bh_adjust", "bonferroni", "build_profile", "chi2_test",
    "judge_accuracy", "ks_2samp", "load_profile", "load_score_profile", "presort", "psi", "psi_critical",
    "score_profile",
]
