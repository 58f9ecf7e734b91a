"""Fault runs: exactly-once checked under the faults that happen in production.

One run: fresh topics, the scoring job, ``count`` events with unique ids produced at a steady
rate, one fault injected a third of the way in, then a read_committed account of every id:
scored or dead-lettered exactly once, never both, none missing. ``streamscore chaos`` runs it
against the local stack; ``tests/integration/test_faults.py`` runs it in the suite.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, replace

from connectors.kafka_clients import create_topics, delete_topics
from jobs.flink_cluster import cancel_job
from jobs.submit import drift_config_from_settings, scoring_config_from_settings, submit_drift, submit_scoring
from models.demo_data import DriftSpec
from streamscore.foundation.config import Settings, TopicSpec
from streamscore.foundation.errors import StreamscoreError
from streamscore.harness.fault_kinds import FaultKind
from streamscore.harness.traffic import TrafficPlan, TrafficReport, TrafficTopics, run_traffic
from streamscore.stack import Stack
from streamscore.stack.process import descendants, read_pid_file, running_pid, stop_process


@dataclass
class FaultContext:
    """What a fault may act on: the stack, and the job (which a savepoint restart replaces)."""

    stack: Stack
    settings: Settings
    config: object
    job_id: str
    restarted_with: str = ""


@dataclass(frozen=True)
class FaultReport:
    fault: str
    produced: int
    scored: int
    dead_lettered: int
    duplicates: int
    missing: int
    in_both: int
    recovery_s: float | None
    fault_at_s: float
    cache: dict | None = None  # cache faults: lookups, hits, errors (job metrics) and the job's log events
    alerts: int = 0  # drift alerts the sidecar committed during the run
    triggers: int = 0
    drift_duplicates: int = 0  # alerts or triggers committed twice
    recounted: int = 0  # the live collector stalled this many times and a fresh read_committed read took over

    @property
    def passed(self) -> bool:
        return self.missing == 0 and self.duplicates == 0 and self.in_both == 0 and self.drift_duplicates == 0

    def line(self) -> str:
        recovery = f"{self.recovery_s:.1f}s" if self.recovery_s is not None else "n/a"
        cache = "" if self.cache is None else (
            f", cache lookups {self.cache['lookups']}, errors {self.cache['errors']}, "
            f"log {'/'.join(self.cache['log_events']) or 'none'}")
        return (f"{self.fault}: produced {self.produced}, scored {self.scored}, dead-lettered {self.dead_lettered}, "
                f"duplicates {self.duplicates}, missing {self.missing}, in both {self.in_both}, "
                f"recovery {recovery}, drift alerts {self.alerts} / triggers {self.triggers} "
                f"(duplicated {self.drift_duplicates}){cache}"
                f"{f', recounted {self.recounted}x by a fresh read' if self.recounted else ''}"
                f" -> {'PASS' if self.passed else 'FAIL'}")


def _taskmanager_spec(stack: Stack):
    flink = stack.service("flink")
    return flink.process_spec("taskmanager")


def kill_taskmanager(ctx: FaultContext) -> None:
    """kill -9 the TaskManager, then start a new one (the job recovers from its last checkpoint)."""
    stack = ctx.stack
    spec = _taskmanager_spec(stack)
    pid = running_pid(spec)
    if pid is None:
        raise StreamscoreError("chaos: no TaskManager of this stack is running")
    tree = descendants(pid)
    os.kill(pid, signal.SIGKILL)
    for child, _ in tree:  # the whole process tree dies, as with a lost host or container;
        try:  # PyFlink's Python workers would otherwise linger as orphans
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(2)
    stack.up(only=["flink"])


def kill_python_worker(ctx: FaultContext) -> None:
    """kill -9 one Python worker process of the TaskManager (the task fails and restarts)."""
    recorded = read_pid_file(_taskmanager_spec(ctx.stack).pid_file)
    workers = [pid for pid, _ in descendants(recorded[0])] if recorded else []
    python = [pid for pid in workers if b"pyflink.fn_execution" in _cmdline(pid)]  # the worker, not its launcher
    if not python:
        raise StreamscoreError("chaos: no Python worker process found under the TaskManager")
    os.kill(python[0], signal.SIGKILL)


def restart_kafka(ctx: FaultContext, down_s: float = 5.0) -> None:
    """Stop the broker (SIGTERM), keep it down ``down_s`` seconds, start it again on the same data."""
    kafka = ctx.stack.service("kafka")
    for spec in kafka.prepare():
        stop_process(spec)
    time.sleep(down_s)
    ctx.stack.up(only=["kafka"])


def redis_outage(ctx: FaultContext, down_s: float = 30.0) -> None:
    """Stop Redis (the job's prediction cache) for ``down_s`` seconds, then start it again: the
    cache bypasses itself with a metric and a log line, and scoring goes on without it."""
    redis = ctx.stack.service("redis")
    for spec in redis.prepare():
        stop_process(spec)
    time.sleep(down_s)
    ctx.stack.up(only=["redis"])


def savepoint_restart(ctx: FaultContext) -> None:
    """Stop the job with a savepoint, start it again from it with a quarter of the max batch size."""
    location = cancel_job(ctx.settings, ctx.job_id, savepoint_dir=str(ctx.stack.service("flink").home.savepoint_dir))
    config = ctx.config.with_changes(max_batch_size=max(1, ctx.config.max_batch_size // 4))
    ctx.job_id = submit_scoring(ctx.settings, config, savepoint=location)
    ctx.restarted_with = f"max batch size {ctx.config.max_batch_size} -> {config.max_batch_size} from {location}"


FAULTS = {FaultKind.KILL_TASKMANAGER: kill_taskmanager, FaultKind.KILL_PYTHON_WORKER: kill_python_worker,
          FaultKind.RESTART_KAFKA: restart_kafka, FaultKind.SAVEPOINT_RESTART: savepoint_restart,
          FaultKind.REDIS_OUTAGE: redis_outage}
CACHE_FAULTS = (FaultKind.REDIS_OUTAGE,)  # run with the Redis prediction cache on


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def run_fault(settings: Settings, fault: str, *, count: int = 200_000, rate: float = 5000.0,
              timeout_s: float = 300.0) -> FaultReport:
    """The scoring job and the drift sidecar on fresh topics, ``count`` events (a 1-sigma drift in
    the second half, so the sidecar alerts), one fault, then every id and every alert accounted."""
    if fault not in FAULTS:
        raise StreamscoreError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    stack, tag = Stack(settings), uuid.uuid4().hex[:8]
    topics = {role: f"chaos-{role}-{tag}" for role in ("events", "scored", "dead", "alerts", "control")}
    create_topics(settings, [TopicSpec(r, n, 2 if r in ("events", "scored") else 1) for r, n in topics.items()])
    config = scoring_config_from_settings(settings, events_topic=topics["events"], scored_topic=topics["scored"],
                                          dead_letter_topic=topics["dead"], job_name=f"chaos-{tag}",
                                          startup_mode="earliest-offset", cache_enabled=fault in CACHE_FAULTS)
    drift = drift_config_from_settings(settings, events_topic=topics["events"], scored_topic=topics["scored"],
                                       alerts_topic=topics["alerts"], control_topic=topics["control"],
                                       labels_topic="", job_name=f"chaos-drift-{tag}", startup_mode="earliest-offset")
    drift_job = submit_drift(settings, drift)
    ctx = FaultContext(stack, settings, config, submit_scoring(settings, config))
    # a third of the way in; an outage that lasts (Redis, 30 s) starts earlier, so that traffic
    # outlives it and shows the recovery too
    delay_s = 5.0 if fault in CACHE_FAULTS else count / rate / 3
    injector = _Injector(FAULTS[fault], ctx, delay_s=delay_s)
    try:
        injector.start()
        plan = TrafficPlan(count, f"c{tag}-", rate=rate, malformed_every=1000,
                           transaction_size=max(1, int(rate // 20)), timeout_s=timeout_s,
                           drift=[DriftSpec("device_trust_score", "shift", 1.0, start_after=count // 2)])
        report = run_traffic(settings, plan, TrafficTopics(topics["events"], topics["scored"], topics["dead"]))
        injector.join()
        cache = _cache_evidence(settings, config.job_name) if fault in CACHE_FAULTS else None
        drift_counts = _drift_outputs(settings, topics["alerts"], topics["control"])
    finally:
        for job_id in (ctx.job_id, drift_job):
            _cancel_quietly(settings, job_id)
        delete_topics(settings, list(topics.values()))
    if injector.error:
        raise StreamscoreError(f"chaos: injecting {fault} failed: {injector.error}")
    return replace(_account(fault, report, injector), cache=cache, **drift_counts)


def _drift_outputs(settings: Settings, alerts_topic: str, control_topic: str, settle_s: float = 8.0) -> dict:
    """Alerts and triggers the sidecar committed, and how many of them repeat an id already seen."""
    from connectors.kafka_clients import read_topic
    from schemas import serde_for

    time.sleep(settle_s)  # the last windows close, and a duplicate would be committed by now
    alerts = [serde_for("drift_alert").decode(r.value)["alert_id"] for r in read_topic(settings, alerts_topic,
                                                                                        idle_timeout_s=3)]
    triggers = [serde_for("control").decode(r.value)["message_id"] for r in read_topic(settings, control_topic,
                                                                                        idle_timeout_s=3)]
    return {"alerts": len(alerts), "triggers": len(triggers),
            "drift_duplicates": len(alerts) - len(set(alerts)) + len(triggers) - len(set(triggers))}


def _cache_evidence(settings: Settings, job_name: str, wait_s: float = 15.0) -> dict:
    """The job's cache metrics (once they are reported) and its cache log events, in order."""
    from jobs.flink_metrics import scrape

    deadline, metrics = time.monotonic() + wait_s, {}
    while time.monotonic() < deadline:
        metrics = scrape(settings, job_name)
        if metrics.get("cache_errors", {}).get(""):
            break
        time.sleep(1)
    return {"lookups": int(metrics.get("cache_lookups", {}).get("", 0)),
            "errors": int(metrics.get("cache_errors", {}).get("", 0)),
            "log_events": cache_log_events(settings, job_name)}


def cache_log_events(settings: Settings, job_name: str) -> list[str]:
    """The job's ``prediction_cache_*`` log events (unavailable, recovered...) in the TaskManager log, in order."""
    return [line.split('"event": "', 1)[1].split('"', 1)[0] for line in _taskmanager_log_lines(settings, job_name)
            if '"event": "prediction_cache_' in line]


def _taskmanager_log_lines(settings: Settings, job_name: str) -> list[str]:
    lines = []
    for path in sorted(settings.log_dir.glob("flink-*taskexecutor*.log")):
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines += [line for line in fh if f'"job": "{job_name}"' in line]
    return lines


class _Injector(threading.Thread):
    def __init__(self, action, ctx: FaultContext, delay_s: float):
        super().__init__(daemon=True)
        self.action, self.ctx, self.delay_s = action, ctx, delay_s
        self.fault_ms: int | None = None
        self.error: str | None = None

    def run(self) -> None:
        time.sleep(self.delay_s)
        self.fault_ms = int(time.time() * 1000)
        try:
            self.action(self.ctx)
        except Exception as exc:  # noqa: BLE001 - reported by run_fault
            self.error = str(exc)


def _cancel_quietly(settings: Settings, job_id: str) -> None:
    with contextlib.suppress(StreamscoreError):
        cancel_job(settings, job_id)


def _account(fault: str, report: TrafficReport, injector: _Injector) -> FaultReport:
    valid, malformed_ids = set(report.valid_ids), len(report.malformed)
    scored = set(report.scored)
    dead_ids = {d["event_id"] for d in report.dead_letters if d.get("event_id")}
    in_both = len(scored & dead_ids)
    missing = len(valid - scored) + max(0, malformed_ids - len(report.dead_letters))
    duplicates = report.scored_duplicates + max(0, len(report.dead_letters) - malformed_ids)
    return FaultReport(fault, report.produced, len(scored), len(report.dead_letters), duplicates, missing,
                       in_both, _recovery_s(report, injector.fault_ms), (injector.fault_ms or 0) / 1000.0,
                       recounted=report.recounted)


def _recovery_s(report: TrafficReport, fault_ms: int | None) -> float | None:
    """The worst end-to-end latency of events sent from 2 s before the fault on: how long the
    fault held records back (with no fault it is the usual p100, about one checkpoint interval)."""
    if fault_ms is None:
        return None
    held = [arrival - event_time for event_time, arrival in report.arrivals if event_time >= fault_ms - 2000]
    return max(held) / 1000.0 if held else None
