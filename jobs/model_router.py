"""Which model version scores a record: a pure function of its event time and the control log.

The scoring job follows the ``control`` topic without restart. Lifecycle messages for the
job's model name (``MODEL_PROMOTED``/``MODEL_ROLLED_BACK``, ``SHADOW_ATTACHED``/``SHADOW_DETACHED``,
``CANARY_WEIGHT``) each carry ``effective_from_ms`` in ``payload_json``. They form a
:class:`Schedule`; a record with event time ``t`` is scored by

- the primary version: the latest promotion with ``effective_from_ms <= t`` (before any, the
  job's configured version); or the canary version when a canary is in force at ``t`` and the
  record's stable bucket (blake2b of its event id, mod 100) is below the canary's percent;
- and, in shadow, by the challenger attached at ``t`` (if any).

**Why replays route identically (deterministic replay).** The issue asks that the version of
each record be "decided once and kept in state". Here the control log *is* that durable state,
and the decision is a pure function of it and the record's event time, so nothing else needs
keeping -- provided every decision sees every message that can apply to it:

1. ``streamscore models promote`` (and every lifecycle command) stamps
   ``effective_from_ms = publish time + activation delay`` (default 10 s) and commits its
   transaction within ``guard`` (half the delay) of the publish time, or reports a late commit.
2. The router's view of control is as of a wall time ``w``: the reader asked the broker for the
   last stable offset of every partition *after* ``w`` and consumed up to it (read_committed),
   so every message committed before ``w`` is in the view.
3. Before deciding for a record with event time ``t``, the router requires
   ``t <= w + delay - guard``. A message that applies to ``t`` has
   ``effective_from <= t``, so it was published by ``t - delay`` and committed by
   ``t - delay + guard <= w``: it is in the view. If the view is too old, the router waits for
   the reader to catch up (bounded; then :class:`ControlLagError`, a clear failure).
4. Messages only ever add later changes; a replay after recovery has a view at least as new
   as the first run's, and messages committed since then have ``effective_from`` beyond the
   condition of step 3 for every record decided before. So the replay routes each record to
   the same versions as the first attempt, and the sinks' transactions make that output
   visible once.

Assumptions, stated: clocks of the publishing host and the TaskManagers agree within the
guard; the control topic keeps its history (no deletion by retention: use ``retention.ms=-1``
or compaction-free long retention); a message never arrives with ``effective_from`` earlier
than its publish time + delay (the CLI guarantees it; hand-written messages must too).

Pure Python: no pyflink, no Kafka (the reading thread is :mod:`jobs.control_follower`).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from streamscore.foundation.errors import StreamscoreError
from streamscore.foundation.vocabulary import ControlKind

DEFAULT_ACTIVATION_DELAY_MS = 10_000
PRIMARY, SHADOW, CANARY = "primary", "shadow", "canary"
KIND_ROLES = {ControlKind.MODEL_PROMOTED: PRIMARY, ControlKind.MODEL_ROLLED_BACK: PRIMARY,
              ControlKind.SHADOW_ATTACHED: SHADOW, ControlKind.SHADOW_DETACHED: SHADOW,
              ControlKind.CANARY_WEIGHT: CANARY}


VIEW_LAG_MARGIN_MS = 2_000  # the control view's lag behind the clock: the follower's 0.5 s poll and a read round


class ControlLagError(StreamscoreError):
    """The router's view of the control topic is too old to decide a record's version."""


@dataclass(frozen=True, order=True)
class Change:
    """One lifecycle change, ordered by when it takes effect, then by its place in the log."""

    effective_from_ms: int
    sequence: tuple[int, int]  # (partition, offset): ties in effective time go to the later message
    role: str  # PRIMARY, SHADOW or CANARY
    version: str | None  # None: shadow detached
    percent: int = 0  # canary only


@dataclass(frozen=True)
class Route:
    """What scores records at one instant: the primary, an optional canary split, a shadow."""

    primary: str
    shadow: str | None = None
    canary: str | None = None
    canary_percent: int = 0

    def version_for(self, event_id: str) -> str:
        if self.canary and self.canary_percent > 0 and canary_bucket(event_id) < self.canary_percent:
            return self.canary
        return self.primary


def canary_bucket(event_id: str) -> int:
    """A stable bucket 0..99 of an event id (same on every worker, run and Python version)."""
    digest = hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def change_from_control(message: dict, sequence: tuple[int, int], model_name: str) -> Change | None:
    """The lifecycle change a decoded control message announces for ``model_name``, else None.

    Retrain triggers, other models and messages without ``effective_from_ms`` are not changes."""
    role = KIND_ROLES.get(message.get("kind"))
    if role is None or message.get("model_name") != model_name:
        return None
    return _read_change(message, sequence, role)


def is_lifecycle_message_of(message: dict, model_name: str) -> bool:
    """Whether ``message`` is meant as a lifecycle change of ``model_name`` (well-formed or not)."""
    return message.get("kind") in KIND_ROLES and message.get("model_name") == model_name


def _read_change(message: dict, sequence: tuple[int, int], role: str) -> Change | None:
    """The change a lifecycle message's payload describes; None when it is malformed (not JSON, no
    effective time, a percent that is no number in 0..100): no hand-written message may fail the job."""
    try:
        payload = json.loads(message.get("payload_json") or "{}")
        effective = int(payload["effective_from_ms"])
        percent = int(payload.get("percent", 0)) if role == CANARY else 0
        version = payload.get("version", message.get("model_version"))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, OverflowError):  # int(Infinity)
        return None
    if message["kind"] == ControlKind.SHADOW_DETACHED:
        version = None
    if (role == CANARY and not 0 <= percent <= 100) or not isinstance(version, str | None):
        return None
    if version is None and role != SHADOW:  # only a shadow can be "none": a champion or canary needs a version
        return None
    return Change(effective, sequence, role, version, percent)


class Schedule:
    """Every known change per role, sorted; :meth:`at` answers for one event time."""

    def __init__(self, base_version: str) -> None:
        self.base_version = base_version
        self._changes: dict[str, list[Change]] = {PRIMARY: [], SHADOW: [], CANARY: []}
        self._times: dict[str, list[int]] = {PRIMARY: [], SHADOW: [], CANARY: []}  # effective times, sorted
        self._seen: set[tuple[int, int]] = set()

    def add(self, change: Change) -> None:
        if change.sequence in self._seen:  # re-read after a reconnect: idempotent
            return
        self._seen.add(change.sequence)
        changes = self._changes[change.role]
        bisect.insort(changes, change)
        self._times[change.role] = [c.effective_from_ms for c in changes]

    def _latest(self, role: str, event_time_ms: int) -> Change | None:
        changes = self._changes[role]
        index = bisect.bisect_right(self._times[role], event_time_ms)
        return changes[index - 1] if index else None

    def at(self, event_time_ms: int) -> Route:
        """The route of a record of this event time. A promotion or rollback ends any canary before it (the
        canary's share would otherwise stay with its version through every later change of the champion)."""
        primary = self._latest(PRIMARY, event_time_ms)
        shadow = self._latest(SHADOW, event_time_ms)
        canary = self._latest(CANARY, event_time_ms)
        if canary is not None and primary is not None and \
                (primary.effective_from_ms, primary.sequence) > (canary.effective_from_ms, canary.sequence):
            canary = None
        return Route(primary=primary.version if primary else self.base_version,
                     shadow=shadow.version if shadow else None,
                     canary=canary.version if canary and canary.percent else None,
                     canary_percent=canary.percent if canary else 0)

    def change_times(self) -> list[int]:
        return sorted({c.effective_from_ms for changes in self._changes.values() for c in changes})


@dataclass(frozen=True)
class RoutePlan:
    """Per record of a batch: its primary version and its shadow version (or None)."""

    primary: list[str]
    shadow: list[str | None]


class ModelRouter:
    """The schedule plus how recent the view of control is; the reading thread feeds :meth:`apply`."""

    def __init__(self, model_name: str, base_version: str, *, activation_delay_ms: int = DEFAULT_ACTIVATION_DELAY_MS,
                 max_wait_ms: int = 30_000, clock_ms: Callable[[], int] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.model_name = model_name
        self.schedule = Schedule(base_version)
        self.delay_ms, self.guard_ms = activation_delay_ms, activation_delay_ms // 2
        self.max_wait_ms = max_wait_ms
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._sleep = sleep
        self._lock = threading.Lock()
        self.view_wall_ms: int | None = None  # control read to its end as fetched after this wall time
        self.reader_error: str | None = None

    def apply(self, changes: Iterable[Change], view_wall_ms: int) -> None:
        with self._lock:
            for change in changes:
                self.schedule.add(change)
            self.view_wall_ms = max(view_wall_ms, self.view_wall_ms or view_wall_ms)
            self.reader_error = None

    def reader_failed(self, reason: str) -> None:
        self.reader_error = reason

    def covers(self, event_time_ms: int) -> bool:
        """The catch-up rule: may a record of this event time be decided with the current view?"""
        view = self.view_wall_ms
        return view is not None and event_time_ms <= view + self.delay_ms - self.guard_ms

    @property
    def reach_ms(self) -> int:
        """How far ahead of the clock an event time can be and still be covered within ``max_wait_ms``: a
        fresh view is at most the clock, and lags it by up to a poll interval and a read round, hence the
        margin (a record stamped within it would wait out ``max_wait_ms`` and fail the task)."""
        return self.delay_ms - self.guard_ms + self.max_wait_ms - VIEW_LAG_MARGIN_MS

    def beyond_reach(self, event_times: Sequence[int]) -> np.ndarray:
        """Which event times no wait could cover now: stamped more than :attr:`reach_ms` ahead of this
        clock (a producer's clock far ahead, or a bad stamp). Bad input, not a control lag: the scorer
        dead-letters them, where waiting would fail the task, and its replay, again and again."""
        return np.asarray(event_times, dtype=np.int64) > self._clock_ms() + self.reach_ms

    def wait_until_covered(self, event_time_ms: int) -> None:
        began = self._clock_ms()
        while not self.covers(event_time_ms):
            waited = self._clock_ms() - began
            if waited > self.max_wait_ms:
                view = self.view_wall_ms
                raise ControlLagError(
                    f"model router for {self.model_name!r}: cannot decide the version of a record with event time "
                    f"{event_time_ms}: control is read only as of {view} (needs >= "
                    f"{event_time_ms - self.delay_ms + self.guard_ms}) after waiting {waited} ms"
                    + (f"; the control reader fails: {self.reader_error}" if self.reader_error else ""))
            self._sleep(0.01)

    def plan(self, event_times: Sequence[int], event_ids: Sequence[str]) -> RoutePlan:
        """Versions for each record of a batch, after catching up with control if needed."""
        if len(event_times):
            self.wait_until_covered(max(event_times))
        with self._lock:
            routes: dict[int, Route] = {}
            primary, shadow = [], []
            for t, event_id in zip(event_times, event_ids):
                route = routes.get(t) or routes.setdefault(t, self.schedule.at(t))
                primary.append(route.version_for(event_id))
                shadow.append(route.shadow)
        return RoutePlan(primary, shadow)


def version_groups(versions: Sequence[str | None]) -> list[tuple[str, np.ndarray]]:
    """(version, row indices) for each distinct non-null version, in first-seen order."""
    groups: dict[str, list[int]] = {}
    for k, version in enumerate(versions):
        if version is not None:
            groups.setdefault(version, []).append(k)
    return [(version, np.asarray(index, dtype=np.intp)) for version, index in groups.items()]
