"""Drift sidecars on the real stack, fed with a known drift: shared by the drift and scale-out tests."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import get_args

from topic_reads import decoder_of, demo_events_writer

from connectors.kafka_reads import read_topic
from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from jobs.flink_cluster import cancel_jobs, rest
from jobs.submit import drift_config_from_settings, scoring_config_from_settings, submit_drift, submit_together
from models.demo_data import DriftSpec, generate_events
from streamscore.foundation.vocabulary import StateBackend

TOTAL, DRIFT_AFTER = 30_000, 15_000
TIERS = ("NONE", "SMALL", "MODERATE", "SEVERE")


TAIL_MARGIN_MS = 3_000  # event time the tail runs past the last drifted window's closing, for noise


def produce_with_drift(settings, topic: str, prefix: str, tail_ms: int = 0) -> int:
    """30,000 live events; device_trust_score shifts by 1 reference std dev from event 15,000 on,
    then undrifted events for ``tail_ms`` of event time past the last drifted one (they move the
    watermark past the last drifted time windows; count windows see the drift end, which closes no
    trigger and opens no episode). The tail is measured in event time, not in events: a producer
    behind its schedule catches up in a burst, which packs more events into less event time.
    Returns the send time (ms) of the first drifted event."""
    encode = demo_events_writer(settings, topic).encode
    drift = [DriftSpec("device_trust_score", "shift", 1.0, start_after=DRIFT_AFTER)]
    events = generate_events(TOTAL, seed=21, id_prefix=prefix, drift=drift)
    stamps = {}

    def stamped(event: dict) -> tuple[bytes, bytes, int]:
        event["event_time"] = int(time.time() * 1000)
        return event["event_id"].encode(), encode(event), event["event_time"]

    def items():
        for i, event in enumerate(events):
            item = stamped(event)
            if i == DRIFT_AFTER:
                stamps["first_drifted"] = item[2]
            yield item
        if tail_ms <= 0:
            return
        tail_until = item[2] + tail_ms
        for chunk in itertools.count():
            for event in generate_events(10_000, seed=22 + chunk, id_prefix=f"{prefix}tail{chunk}-"):
                item = stamped(event)
                yield item
                if item[2] >= tail_until:
                    return

    produce_transactionally(settings, topic, items(), TransactionPlan(rate=5000, transaction_size=250))
    return stamps["first_drifted"]


def closing_tail_ms(config) -> int:
    """Event time past the last drifted event that closes its time window: the window, the sidecar's
    out-of-orderness and allowed lateness, and a margin."""
    return config.window_ms + config.max_out_of_orderness_ms + config.allowed_lateness_ms + TAIL_MARGIN_MS


def read_all(settings, topic: str, serde_name: str, settle_s: float) -> list[dict]:
    decode = decoder_of(settings, serde_name)
    return [decode(r.value) for r in read_topic(settings, topic, idle_timeout_s=settle_s)]


class _Rescaler(threading.Thread):
    """Rescales one running sidecar while the events flow: ``after_s`` in, stop it with a savepoint and
    restore it at parallelism 2 on the other state backend, then (once it runs, ``hold_s`` later) stop and
    restore it at 1 on the one it started on: a savepoint moves between RocksDB and the heap both ways."""

    def __init__(self, settings, config, jobs: list[str], index: int, after_s: float = 4.0, hold_s: float = 5.0):
        super().__init__(daemon=True)
        self.settings, self.config, self.jobs, self.index = settings, config, jobs, index
        self.after_s, self.hold_s = after_s, hold_s
        self.restored: list[tuple[int, str]] = []  # (parallelism, the state backend Flink reports)
        self.submitted: list[str] = []  # every job it started, cancelled by run_sidecars whatever happens
        self.error: BaseException | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        from streamscore.harness.fault_actions import FaultContext, stop_with_savepoint
        from streamscore.stack import Stack

        try:
            if self.stopped.wait(self.after_s):
                return
            other = next(b for b in get_args(StateBackend) if b != self.config.state_backend)
            for parallelism, backend in ((2, other), (1, self.config.state_backend)):
                ctx = FaultContext(Stack(self.settings), self.settings, self.config, self.jobs[self.index])
                location = stop_with_savepoint(ctx)
                job_id = submit_drift(self.settings, self.config.with_changes(
                    parallelism=parallelism, state_backend=backend), savepoint=location)
                self.submitted.append(job_id)
                self.jobs[self.index] = job_id
                reported = rest(self.settings, f"/jobs/{job_id}/checkpoints/config").get("state_backend", "")
                self.restored.append((parallelism, reported))
                if self.stopped.wait(self.hold_s):
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by run_sidecars
            self.error = exc


def run_sidecars(settings, fresh_topics, sidecars: dict[str, dict], *, partitions: int = 1,
                 scoring_parallelism: int = 1, rescaled: str | None = None) -> tuple[dict[str, tuple[list, list]], int]:
    """One scoring job and one drift sidecar per entry of ``sidecars`` (name -> config overrides), each
    with its own alert and control topics, on the same drifted events (with time windows: then a tail
    of undrifted ones that closes the last drifted windows); the sidecar named ``rescaled`` goes from
    parallelism 1 to 2 and back through savepoints while the events flow. Returns name -> (alerts,
    triggers), and when the drift began."""
    events, scored, dead = fresh_topics("events", "scored", "dead", partitions=partitions)
    tag = uuid.uuid4().hex[:8]
    outputs = {name: fresh_topics("alerts", "control") for name in sidecars}
    configs = [scoring_config_from_settings(
        settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead, job_name=f"it-score-{tag}",
        startup_mode="earliest-offset", parallelism=scoring_parallelism)]
    configs += [drift_config_from_settings(
        settings, events_topic=events, scored_topic=scored, alerts_topic=alerts_topic,
        control_topic=control_topic, job_name=f"it-drift-{name}-{tag}", startup_mode="earliest-offset",
        window_events=1000, window_ms=2000, **sidecars[name])
        for name, (alerts_topic, control_topic) in outputs.items()]
    tail_ms = max([closing_tail_ms(c) for c in configs[1:] if c.window_kind == "time"], default=0)
    index = 1 + list(outputs).index(rescaled) if rescaled else 0
    jobs = submit_together(settings, configs)  # all run, or none is left running
    rescaler = _Rescaler(settings, configs[index], jobs, index) if rescaled else None
    try:
        if rescaler:
            rescaler.start()
        drift_started_ms = produce_with_drift(settings, events, f"d{tag}-", tail_ms=tail_ms)
        if rescaler:
            rescaler.join(300)
            restored = [(p, "RocksDB" in reported) for p, reported in rescaler.restored]
            on_rocksdb = configs[index].state_backend == "rocksdb"
            assert rescaler.error is None and restored == [(2, not on_rocksdb), (1, on_rocksdb)], \
                (rescaler.error, rescaler.restored)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(read_all(settings, control, "control", 2)
                                                      for _, control in outputs.values()):
            time.sleep(2)
        time.sleep(5)  # windows still closing would add alerts now; then read everything once
        found = {name: (read_all(settings, alerts, "drift_alert", 5), read_all(settings, control, "control", 5))
                 for name, (alerts, control) in outputs.items()}
    finally:
        if rescaler and rescaler.is_alive():
            rescaler.stopped.set()
            rescaler.join(180)
        # quietly: a job the rescaler stopped has finished already
        cancel_jobs(settings, list({*jobs, *(rescaler.submitted if rescaler else ())}), quietly=True)
    return found, drift_started_ms


SCORE = "prediction_score"


def judged_features(alerts: list, triggers: list) -> tuple:
    """What a sidecar decided about the event features, without its job name (which its window ids
    carry). The prediction score is left out: its counts come from the scored topic, which arrives
    in bursts at each checkpoint's commit, and a burst later than the idle timeout lands after its
    window closed, whatever the parallelism (docs/drift.md, Limitations)."""
    return (sorted((a["feature"], a["window_start"], a["window_end"], a["window_size"], a["tier"],
                    round(a["value"], 9)) for a in alerts if a["feature"] != SCORE),
            sorted((t["tier"], tuple(r for r in t["reasons"] if SCORE not in r)) for t in triggers))


def assert_one_episode_and_trigger(window_kind: str, alerts: list, triggers: list, drift_started_ms: int) -> None:
    assert alerts, f"{window_kind} windows: no drift alert after a 1-sigma shift"
    assert all(a["window_end"] > drift_started_ms for a in alerts), \
        [(window_kind, a["feature"], a["window_start"], a["window_end"], drift_started_ms) for a in alerts]
    assert "device_trust_score" in {a["feature"] for a in alerts}, window_kind
    assert len({a["alert_id"] for a in alerts}) == len(alerts), f"{window_kind}: an alert was delivered twice"
    # the shifted feature stays drifted: one episode, alerted once per tier it reaches
    # (the first window may mix clean and drifted events, so a later one can escalate the episode;
    # a borderline feature such as the prediction score may close and reopen an episode)
    shifted = sorted((a for a in alerts if a["feature"] == "device_trust_score"), key=lambda a: a["window_start"])
    ranks = [TIERS.index(a["tier"]) for a in shifted]
    assert ranks == sorted(set(ranks)), [(window_kind, a["tier"], a["window_start"]) for a in shifted]
    assert all(a["model_name"] == "fraud" and a["window_size"] >= 1000 for a in alerts)
    if window_kind == "time":
        assert all(a["window_start"] % 2000 == 0 and a["window_end"] - a["window_start"] == 2000 for a in alerts)

    assert len(triggers) == 1, (window_kind, triggers)
    trigger = triggers[0]
    assert trigger["kind"] == "RETRAIN_TRIGGER" and trigger["model_version"] == "1.0.0"
    assert trigger["tier"] in ("SMALL", "MODERATE", "SEVERE")
    assert any("device_trust_score" in reason for reason in trigger["reasons"])
