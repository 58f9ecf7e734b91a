"""Where the drift sidecar keeps its state: RocksDB (incremental checkpoints) against Flink's heap (a full copy
every checkpoint), the same labelled traffic through each in turn, on the running stack.

    python -m benchmarks.sidecar_state [--repetitions 3] [--events 60000] [--rate 2000] [--idle-s 30]

Needs the stack up and no drift sidecar running (it would share the TaskManager's CPU). The probe makes topics
of its own (deleted at the end) and a fraud scoring job on them; each run submits a sidecar with labels on,
reading from the latest offsets; sends ``--events`` labelled events at ``--rate`` (the scoring job scores them)
and their labels right after, so the label join holds both sides; then leaves the stack idle for ``--idle-s``;
then cancels it. A short run first warms the workers up and is not counted.
Per run: the TaskManager's, JobManager's and Python workers' CPU under traffic and idle, and the sidecar's
checkpoints (largest full state, largest size written by one checkpoint, longest duration, and the same
while idle). The backends alternate, so a drifting machine touches both alike. Medians (min-max) printed
and written to ``benchmarks/results/sidecar-state-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

from benchmarks.options import RESULTS
from benchmarks.procstats import ProcessSampler, stack_roles
from connectors.kafka_clients import delete_topics
from jobs.flink_cluster import ENDED_STATES, cancel_job, list_jobs, rest, wait_running
from jobs.submit import drift_config_from_settings, scoring_config_from_settings, submit_drift, submit_scoring
from streamscore.foundation.config import Settings, TopicSpec, load_settings
from streamscore.foundation.errors import ConfigError, StreamscoreError
from streamscore.foundation.vocabulary import StateBackend

ROLES = ("flink-tm", "flink-jm", "python-workers")


class CheckpointWatcher(threading.Thread):
    """Every completed checkpoint of a job, polled each second (Flink's REST history keeps only the last 10)."""

    def __init__(self, settings: Settings, job_id: str):
        super().__init__(daemon=True, name="sidecar-checkpoints")
        self.settings, self.job_id = settings, job_id
        self.completed: dict[int, dict] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(1.0):
            try:
                history = rest(self.settings, f"/jobs/{self.job_id}/checkpoints").get("history", [])
            except StreamscoreError:
                continue
            self.completed.update({c["id"]: c for c in history if c.get("status") == "COMPLETED"})

    def between(self, start_ms: int, end_ms: int) -> dict:
        """Those that ended between the two times: largest state, largest written, longest."""
        done = [c for c in list(self.completed.values()) if start_ms <= c.get("latest_ack_timestamp", 0) <= end_ms]
        if not done:
            return {"count": 0}
        return {"count": len(done), "max_state_mb": max(c["state_size"] for c in done) / 1e6,
                "max_written_mb": max(c.get("checkpointed_size", c["state_size"]) for c in done) / 1e6,
                "max_duration_ms": max(c["end_to_end_duration"] for c in done)}


@dataclass(frozen=True)
class ProbeTopics:
    events: str
    scored: str
    dead: str
    labels: str
    alerts: str
    control: str

    @classmethod
    def made(cls, settings: Settings) -> ProbeTopics:
        from connectors.kafka_clients import create_topics

        tag = uuid.uuid4().hex[:8]
        topics = cls(*(f"sidecar-state-{role}-{tag}" for role in ("events", "scored", "dead", "labels", "alerts",
                                                                  "control")))
        create_topics(settings, [TopicSpec(role, name, 1) for role, name in dataclasses.asdict(topics).items()])
        return topics

    def scoring(self, settings: Settings):
        return scoring_config_from_settings(settings, events_topic=self.events, scored_topic=self.scored,
                                            dead_letter_topic=self.dead, job_name=f"{self.events}-scoring")

    def sidecar(self, settings: Settings, name: str, backend: StateBackend):
        return drift_config_from_settings(settings, events_topic=self.events, scored_topic=self.scored,
                                          labels_topic=self.labels, alerts_topic=self.alerts,
                                          control_topic=self.control, job_name=name, state_backend=backend,
                                          startup_mode="latest-offset")


def _traffic(settings: Settings, topics: ProbeTopics, events: int, rate: float) -> None:
    from connectors.kafka_transactions import TransactionPlan, produce_transactionally
    from connectors.schema_registry import SchemaRegistry, topic_writer
    from models.demo_data import generate_labelled
    from models.demo_labels import LabelPlan, label_records
    from schemas.serde import schema_document
    from streamscore.harness.labels import produce_labels

    batch, truth = generate_labelled(events, seed=7, id_prefix=f"state-{uuid.uuid4().hex[:8]}-")
    now, topic = int(time.time() * 1000), topics.events
    for i, event in enumerate(batch):
        event["event_time"] = now + int(i * 1000 / rate)
    encode = topic_writer(SchemaRegistry(settings.schema_registry), topic, schema_document("event")).encode
    produce_transactionally(settings, topic, ((e["event_id"].encode(), encode(e), e["event_time"]) for e in batch),
                            TransactionPlan(rate=rate, transaction_size=500))
    produce_labels(settings, label_records(batch, truth, LabelPlan(delay_ms=1_000)), topic=topics.labels)


def _cpu(sampler: ProcessSampler, start: float, end: float) -> dict[str, float]:
    spent = sampler.cpu_seconds(start, end)
    return {role: round(spent.get(role, 0.0) / (end - start), 3) for role in ROLES}


def _wait_for_a_free_slot(settings: Settings, timeout_s: float = 60.0) -> None:
    """A cancelled run's slot goes back to the cluster a few seconds after the job ends."""
    deadline = time.monotonic() + timeout_s
    while rest(settings, "/overview").get("slots-available", 0) < 1:
        if time.monotonic() > deadline:
            raise ConfigError(f"no free task slot on the cluster after {timeout_s:.0f} s (cancel a job)")
        time.sleep(1)


def one_run(settings: Settings, topics: ProbeTopics, backend: StateBackend, args: argparse.Namespace) -> dict:
    from streamscore.stack import Stack

    _wait_for_a_free_slot(settings)
    job_id = submit_drift(settings, topics.sidecar(settings, f"{topics.events}-{backend}-{uuid.uuid4().hex[:4]}",
                                                   backend))
    sampler = ProcessSampler(stack_roles({h.service: h.pids for h in Stack(settings).status()}, flink=True,
                                         loop_pid=lambda: None))
    watcher = CheckpointWatcher(settings, job_id)
    sampler.start()
    watcher.start()
    try:
        wait_running(settings, job_id, timeout_s=120)
        time.sleep(5)  # its sources have their partitions before the traffic starts
        began = time.time()
        _traffic(settings, topics, args.events, args.rate)
        sent = time.time()
        time.sleep(args.idle_s)
        ended, idle_from = time.time(), sent + args.idle_s / 3  # the last labels' windows and commits first
        return {"backend": backend, "traffic_s": round(sent - began, 1), "cpu_traffic": _cpu(sampler, began, sent),
                "cpu_idle": _cpu(sampler, idle_from, ended),
                "checkpoints_traffic": watcher.between(int(began * 1000), int(sent * 1000)),
                "checkpoints_idle": watcher.between(int(idle_from * 1000), int(ended * 1000))}
    finally:
        sampler.stop()
        watcher.stop_event.set()
        cancel_job(settings, job_id, timeout_s=60)


def _median(runs: list[dict], path: tuple[str, str]) -> str:
    values = [r[path[0]].get(path[1]) for r in runs if r[path[0]].get(path[1]) is not None]
    if not values:
        return "-"
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def _runs(settings: Settings, topics: ProbeTopics, args: argparse.Namespace) -> list[dict]:
    # the first sidecar after a while starts its Python workers cold and lags behind its traffic: not counted
    one_run(settings, topics, "rocksdb", argparse.Namespace(events=min(args.events, 20_000), rate=args.rate,
                                                            idle_s=10.0))
    runs = []
    for _ in range(args.repetitions):
        for backend in get_args(StateBackend):
            runs.append(one_run(settings, topics, backend, args))
            print(json.dumps(runs[-1]), flush=True)
    return runs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.sidecar_state")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--idle-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    settings = load_settings()
    running = [j.name for j in list_jobs(settings) if j.state not in ENDED_STATES]
    if any("drift" in name for name in running):
        raise ConfigError(f"a drift sidecar runs (it would share the TaskManager's CPU): {running}")
    topics = ProbeTopics.made(settings)
    scoring = submit_scoring(settings, topics.scoring(settings))
    try:
        runs = _runs(settings, topics, args)
    finally:
        cancel_job(settings, scoring, timeout_s=60)
        delete_topics(settings, list(dataclasses.asdict(topics).values()))
    keys = [("cpu_traffic", r) for r in ROLES] + [("cpu_idle", r) for r in ROLES] + \
        [(phase, k) for phase in ("checkpoints_traffic", "checkpoints_idle")
         for k in ("max_state_mb", "max_written_mb", "max_duration_ms")]
    table = {backend: {f"{a}.{b}": _median([r for r in runs if r["backend"] == backend], (a, b)) for a, b in keys}
             for backend in get_args(StateBackend)}
    for backend, row in table.items():
        print(backend, json.dumps(row, indent=1))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"sidecar-state-{stamp}.json"
    out.write_text(json.dumps({"args": vars(args), "load_avg_at_start": os.getloadavg(), "medians": table,
                               "runs": runs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
