"""The model lifecycle during a fault run (the soak): promotions and rollbacks while faults hit the job.

The run's scoring job follows the run's control topic (where the drift sidecar's triggers go too)
and starts on ``<name>:1.0.0`` from a temporary registry holding three versions whose models score
differently (``streamscore.harness.versions``). ``LifecycleDriver`` promotes and rolls back through
the lifecycle CLI's own path (``streamscore.lifecycle.control.apply_change``) every ``every_s``.
Afterwards ``check_versions`` reads the announced changes back and checks every scored record: its
version is the one in force at its event time (a replay after a fault must choose the same), and,
for a sample, its score is that version's model's score computed directly with ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

from connectors.schema_registry import writer_of
from streamscore.foundation.config import Settings
from streamscore.foundation.vocabulary import PRIMARY_KINDS, LifecycleAction
from streamscore.harness.traffic import TrafficPlan
from streamscore.harness.versions import register_distinct_versions, version_scores
from streamscore.lifecycle import control as control_protocol

FIRST_VERSION = "1.0.0"
# the changes, in a cycle: each promotion names its version, a rollback returns to the one before
CHANGES: tuple[tuple[LifecycleAction, str | None], ...] = (
    (LifecycleAction.PROMOTE, "1.1.0"), (LifecycleAction.PROMOTE, "1.2.0"),
    (LifecycleAction.ROLLBACK, None), (LifecycleAction.PROMOTE, "1.0.0"))
RETRIES, RETRY_WAIT_S = 3, 10.0  # a change published while the broker restarts is tried again
SCORE_SAMPLE_EVERY = 97  # every 97th scored record's score is recomputed


@dataclass(frozen=True)
class LifecycleModels:
    """The run's model name and its temporary registry."""

    name: str
    registry_dir: Path

    @classmethod
    def create(cls, tag: str, base: str = "fraud") -> LifecycleModels:
        """Three versions of the demo model ``base`` (fraud or sensor) under a name of the run's own."""
        root = Path(tempfile.mkdtemp(prefix="streamscore-lifecycle-"))
        name = f"lifecycle-{tag}"
        try:
            register_distinct_versions(root, name, base=base)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(name, root)

    @property
    def first_ref(self) -> str:
        return f"{self.name}:{FIRST_VERSION}"

    def remove(self, settings: Settings) -> None:
        from connectors.redis_client import redis_client

        with contextlib.suppress(Exception):  # the pointer is a convenience; the stack may be gone
            redis_client(settings).delete(control_protocol.pointer_key(self.name))
        shutil.rmtree(self.registry_dir, ignore_errors=True)


class LifecycleDriver(threading.Thread):
    """Applies ``CHANGES`` in a cycle, one every ``every_s``, until stopped; records what failed."""

    def __init__(self, settings: Settings, models: LifecycleModels, control_topic: str, every_s: float):
        super().__init__(daemon=True)
        self.settings, self.models, self.control_topic, self.every_s = settings, models, control_topic, every_s
        # the control schema's id, asked now: changes published during a registry outage need no registry
        writer_of(settings.schema_registry, control_topic, "control")
        self.stopped = threading.Event()
        self.applied = 0
        self.errors: list[str] = []

    def run(self) -> None:
        step = 0
        try:
            while not self.stopped.wait(self.every_s):
                action, version = CHANGES[step % len(CHANGES)]
                ref = f"{self.models.name}:{version}" if version else self.models.name
                self._apply(control_protocol.LifecycleChange(action, ref, control_topic=self.control_topic,
                                                             registry_dir=str(self.models.registry_dir)))
                step += 1
        except Exception as exc:  # noqa: BLE001 - a dead driver is reported, never silent
            self.errors.append(f"lifecycle driver stopped: {type(exc).__name__}: {exc}")

    def _announced(self) -> int | None:
        """How many promotions and rollbacks of the run's model control holds now (None: unreadable)."""
        try:
            return len(_in_force(control_protocol.read_control(self.settings, self.control_topic),
                                 self.models.name)[0])
        except Exception:  # noqa: BLE001 - the broker may be down: the caller waits and asks again
            return None

    def _apply(self, change: control_protocol.LifecycleChange) -> None:
        """Apply ``change``; after a failure (a broker restart, an unknown commit outcome) look at control
        first, so a change that did land is never announced twice (a second rollback would go further back)."""
        before = self._announced()
        for attempt in range(1, RETRIES + 1):
            try:
                control_protocol.apply_change(self.settings, change)
                self.applied += 1
                return
            except Exception as exc:  # noqa: BLE001 - Kafka errors too: recorded below
                failure = f"{change.action.value} {change.ref}: {type(exc).__name__}: {exc}"
            if self.stopped.wait(RETRY_WAIT_S):
                self.errors.append(f"{failure} (run ended before a retry)")
                return
            now = self._announced()
            if before is not None and now is not None and now > before:
                self.applied += 1  # it landed after all (a late or unconfirmed commit)
                return
            if attempt == RETRIES:
                self.errors.append(failure)

    def stop(self, timeout_s: float = RETRIES * (RETRY_WAIT_S + 30.0)) -> None:
        self.stopped.set()
        self.join(timeout_s)
        if self.is_alive():
            self.errors.append(f"lifecycle driver still busy {timeout_s:.0f} s after the run ended")


@dataclass(frozen=True)
class LifecycleCheck:
    """What the lifecycle did during the run, and whether every record carries the right model."""

    changes: int  # promotions and rollbacks announced on control
    failed_changes: tuple[str, ...]
    records_by_version: dict[str, int]
    wrong_version: int  # records whose version is not the one in force at their event time
    scores_checked: int
    wrong_score: int  # sampled records whose score is not their version's model's score
    examples: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not (self.wrong_version or self.wrong_score)


def check_versions(settings: Settings, models: LifecycleModels, control_topic: str, scored: dict[str, dict],
                   traffic: TrafficPlan, failed: tuple[str, ...] = ()) -> LifecycleCheck:
    """Every scored record against the versions announced on ``control_topic``; a sample's scores
    against ONNX Runtime run directly on the same events."""
    starts, versions = _in_force(control_protocol.read_control(settings, control_topic), models.name)
    counts: dict[str, int] = {}
    wrong = []
    for event_id, record in scored.items():
        counts[record["model_version"]] = counts.get(record["model_version"], 0) + 1
        if record["model_version"] != versions[bisect_right(starts, record["event_time"])]:
            wrong.append(event_id)
    checked, wrong_scores = _check_scores(models, scored, traffic)
    return LifecycleCheck(len(starts), failed, counts, len(wrong), checked, len(wrong_scores),
                          tuple((wrong + wrong_scores)[:5]))


def _in_force(messages: list[dict], name: str) -> tuple[list[int], list[str]]:
    """(effective times, versions): the version in force at time t is versions[bisect_right(starts, t)]."""
    changes = []
    for message in messages:  # in log order; sorted by effective time as the router sorts them
        if message.get("kind") in PRIMARY_KINDS and message.get("model_name") == name:
            payload = json.loads(message["payload_json"])
            changes.append((payload["effective_from_ms"], payload["version"]))
    changes.sort(key=lambda change: change[0])  # stable: equal times keep log order
    return [t for t, _ in changes], [FIRST_VERSION, *(v for _, v in changes)]


def _check_scores(models: LifecycleModels, scored: dict[str, dict], traffic: TrafficPlan) -> tuple[int, list[str]]:
    sample, id_field = {}, traffic.wire.id_field
    for i, event in enumerate(traffic.events()):
        if i % SCORE_SAMPLE_EVERY == 0 and event[id_field] in scored:
            sample[event[id_field]] = event
    wrong = []
    by_version: dict[str, list[str]] = {}
    for event_id in sample:
        by_version.setdefault(scored[event_id]["model_version"], []).append(event_id)
    for version, ids in by_version.items():
        expected = version_scores(models.registry_dir, models.name, version, [sample[i] for i in ids])
        wrong += [i for i, score in zip(ids, expected) if abs(scored[i]["score"] - score) > 1e-6]
    return len(sample), wrong

