"""The drift detector: window verdicts, per-feature alerts, and hysteresis for triggers.

:class:`DriftDetector` wraps a stateless :class:`~drift.judge.WindowJudge` and keeps
the little state the sidecar needs between windows:

* **Alerts** are per feature and immediate: the first window in which a feature
  reaches a tier (significant *and* PSI >= 0.10, see :mod:`drift.judge`) opens an
  *episode* for it and emits one :class:`Alert`. While the episode is open, the
  same or a lower tier emits nothing (no duplicates); a higher tier emits one
  escalation alert. The episode closes after ``clear_windows`` consecutive
  windows without a tier for that feature (listed in ``WindowVerdict.resolved``).
* **Triggers** (the action of the design guide's table) need confirmation: a tier
  counts as confirmed when at least ``confirm_k`` of the last ``confirm_m``
  judged windows reached it (SEVERE: ``severe_confirm_k``, default 1, so an
  emergency is never delayed). A trigger is emitted when the confirmed tier is
  above the tier already triggered in the open *incident*; the incident closes
  after ``clear_windows`` clean windows. For ``cooldown_windows`` after a trigger,
  no trigger of the same or a lower tier is emitted, even for a new incident;
  an escalation still goes through.

So a 0.5-sigma shift is *alerted* in its first window, while a retraining is
only triggered once the drift has held for two of three windows. Windows that
are too small for the settings (see :meth:`WindowJudge.too_small_reason`) raise
no tier, are reported with ``too_small=True`` and the reason, and are left out of
the hysteresis altogether (they are neither drift nor evidence of its absence).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from drift.detector_state import decode_state, encode_state
from drift.judge import BatchStats, WindowJudge
from drift.settings import DriftSettings, Tier
from models.drift_profile import DriftProfile, NumericProfile, load_profile


@dataclass(frozen=True)
class FeatureTest:
    """One feature's tests in one window.

    ``test`` is ``"KS"`` (numeric) or ``"CHI2"`` (categorical) with its ``statistic``,
    raw ``p_value`` and ``p_adjusted`` (across features); ``psi`` is judged against
    ``psi_critical``, the no-drift threshold for this window size.
    """

    feature: str
    test: str
    statistic: float
    p_value: float
    p_adjusted: float
    psi: float
    psi_critical: float
    significant: bool
    tier: Tier


@dataclass(frozen=True)
class Alert:
    """A feature entered a drift episode (or escalated within one)."""

    feature: str
    tier: Tier
    window_id: int
    psi: float
    p_adjusted: float
    escalation: bool = False

    @property
    def action(self) -> str:
        return self.tier.action


@dataclass(frozen=True)
class Trigger:
    """A confirmed drift incident: do ``action`` (automated retraining, human review, emergency)."""

    tier: Tier
    action: str
    window_id: int
    features: tuple[str, ...]
    rule: str


@dataclass(frozen=True)
class WindowVerdict:
    """Everything the detector concluded about one window."""

    window_id: int
    size: int
    tests: tuple[FeatureTest, ...]
    tier: Tier
    too_small: bool = False
    reason: str = ""
    alerts: tuple[Alert, ...] = ()
    trigger: Trigger | None = None
    resolved: tuple[str, ...] = ()

    def test(self, feature: str) -> FeatureTest:
        return next(t for t in self.tests if t.feature == feature)


@dataclass
class _Episode:
    tier: Tier
    clean: int = 0


@dataclass
class _Incident:
    tier: Tier = Tier.NONE
    clean: int = 0
    cooldown: int = 0
    last_trigger: Tier = Tier.NONE
    history: deque = field(default_factory=deque)


def feature_tests(stats: BatchStats, row: int = 0) -> tuple[FeatureTest, ...]:
    """The :class:`FeatureTest` of every feature in window ``row`` of a batch."""
    return tuple(
        FeatureTest(feature=name, test=stats.tests[i], statistic=float(stats.statistic[row, i]),
                    p_value=float(stats.p_value[row, i]), p_adjusted=float(stats.p_adjusted[row, i]),
                    psi=float(stats.psi[row, i]), psi_critical=float(stats.psi_critical[i]),
                    significant=bool(stats.significant[row, i]), tier=Tier(int(stats.tier[row, i])))
        for i, name in enumerate(stats.features))


class DriftDetector:
    """Judges consecutive windows against a model's drift profile and decides what to emit."""

    def __init__(self, profile: DriftProfile | Mapping, settings: DriftSettings | None = None, *,
                 score_reference: NumericProfile | Mapping | None = None) -> None:
        profile = profile if isinstance(profile, DriftProfile) else load_profile(profile)
        self.judge = WindowJudge(profile, settings, score_reference=score_reference)
        self.settings = self.judge.settings
        self._episodes: dict[str, _Episode] = {}
        self._incident = _Incident(history=deque(maxlen=self.settings.confirm_m))
        self._next_id = 0

    @classmethod
    def for_card(cls, card, settings: DriftSettings | None = None) -> DriftDetector:
        """A detector for a :class:`~models.card.ModelCard`: its ``drift_profile`` and, if the
        profile carries a ``"score"`` entry (:func:`~models.drift_profile.score_profile`), the scores too."""
        raw = card.drift_profile
        return cls(load_profile(raw), settings, score_reference=raw.get("score") or None)

    def observe(self, window, *, scores=None, window_id: int | None = None) -> WindowVerdict:
        """Judge the next window (``[n, d]`` in profile order, or name -> column) and update state."""
        stats = self.judge.judge(window, scores)
        return self.advance(stats, 0, window_id)

    def advance(self, stats: BatchStats, row: int = 0, window_id: int | None = None) -> WindowVerdict:
        """Feed window ``row`` of already computed statistics (e.g. from ``judge_batch``)."""
        window_id = self._next_id if window_id is None else int(window_id)
        self._next_id = window_id + 1
        tests = feature_tests(stats, row)
        if stats.too_small:
            return WindowVerdict(window_id, stats.n, tests, Tier.NONE, True, stats.reason)
        tier = max((t.tier for t in tests), default=Tier.NONE)
        alerts, resolved = self._update_episodes(window_id, tests)
        trigger = self._update_incident(window_id, tier, tests)
        return WindowVerdict(window_id, stats.n, tests, tier, False, "", alerts, trigger, resolved)

    def _update_episodes(self, window_id: int, tests) -> tuple[tuple[Alert, ...], tuple[str, ...]]:
        alerts, resolved = [], []
        for test in tests:
            episode = self._episodes.get(test.feature)
            if test.tier > Tier.NONE:
                if episode is None or test.tier > episode.tier:
                    alerts.append(Alert(test.feature, test.tier, window_id, test.psi, test.p_adjusted,
                                        escalation=episode is not None))
                self._episodes[test.feature] = _Episode(max(test.tier, episode.tier if episode else Tier.NONE))
            elif episode is not None:
                episode.clean += 1
                if episode.clean >= self.settings.clear_windows:
                    del self._episodes[test.feature]
                    resolved.append(test.feature)
        return tuple(alerts), tuple(resolved)

    def _confirmed(self) -> Tier:
        history, s = self._incident.history, self.settings
        for tier in (Tier.SEVERE, Tier.MODERATE, Tier.SMALL):
            needed = s.severe_confirm_k if tier == Tier.SEVERE else s.confirm_k
            if sum(1 for seen in history if seen >= tier) >= needed:
                return tier
        return Tier.NONE

    def _update_incident(self, window_id: int, tier: Tier, tests) -> Trigger | None:
        incident, s = self._incident, self.settings
        incident.history.append(tier)
        confirmed = self._confirmed()
        cooled = incident.cooldown == 0 or confirmed > incident.last_trigger
        incident.cooldown = max(0, incident.cooldown - 1)
        trigger = None
        if confirmed > incident.tier and cooled:
            drivers = tuple(t.feature for t in sorted(tests, key=lambda t: -t.psi) if t.tier > Tier.NONE)
            needed = s.severe_confirm_k if confirmed == Tier.SEVERE else s.confirm_k
            trigger = Trigger(confirmed, confirmed.action, window_id, drivers,
                              f"{confirmed.name} in {needed} of the last {s.confirm_m} windows")
            incident.tier, incident.last_trigger, incident.cooldown = confirmed, confirmed, s.cooldown_windows
        incident.clean = incident.clean + 1 if tier == Tier.NONE else 0
        if incident.clean >= s.clear_windows:
            incident.tier = Tier.NONE
        return trigger

    def snapshot(self) -> bytes:
        """The detector's state between windows (episodes, incident, next window id) as versioned JSON
        (:mod:`drift.detector_state`), for a stream processor's checkpointed state; the profile and
        settings are not part of it."""
        return encode_state(self._episodes, self._incident, self._next_id)

    def restore(self, snapshot: bytes | None) -> None:
        """Continue from a :meth:`snapshot` (None: start afresh). Anything else, a pre-JSON pickle
        snapshot included (never unpickled), raises :class:`~drift.errors.DriftError` and leaves
        the state alone."""
        if snapshot is None:
            episodes, incident, next_id = {}, {}, 0
        else:
            episodes, incident, next_id = decode_state(snapshot)
        history = deque(incident.pop("history", ()), maxlen=self.settings.confirm_m)
        self._episodes = {name: _Episode(**fields) for name, fields in episodes.items()}
        self._incident = _Incident(**incident, history=history)
        self._next_id = next_id

    @property
    def open_episodes(self) -> dict[str, Tier]:
        """Features with an open drift episode and the highest tier reached in it."""
        return {name: episode.tier for name, episode in self._episodes.items()}
