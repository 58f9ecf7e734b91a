"""Overload: twice the scoring job's capacity for minutes, then back to half of it.

``streamscore chaos --overload`` runs, on fresh topics with one exactly-once scoring job:

1. **capacity**: a burst sent as fast as the producer can; the job's capacity is the rate at which
   its scored records became visible (the first 20 % left out as warm-up);
2. **before**: half the capacity for ``calm_s``: the usual latency;
3. **overload**: ``factor`` x the capacity for ``overload_s``: Flink's backpressure (sampled from its
   REST API), latency growing with the backlog, the processes' memory (which must stay bounded: the
   backlog waits in Kafka, not in the job), and how long the backlog takes to drain once it ends;
4. **after**: half the capacity again: the latency must be back to what it was before.

Every phase's records are accounted by identity (none lost, none twice); ``_checks`` says what passes.
The report goes to ``benchmarks/results/overload-<UTC>.json``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from connectors.kafka_clients import create_topics, delete_topics
from jobs.flink_cluster import cancel_job, rest
from jobs.submit import scoring_config_from_settings, submit_scoring
from streamscore.foundation.config import Settings, TopicSpec
from streamscore.foundation.errors import StreamscoreError
from streamscore.harness.accounting import account, read_identities
from streamscore.harness.resources import ResourceSampler
from streamscore.harness.traffic import TrafficPlan, TrafficReport, TrafficTopics, run_traffic

WARMUP_SHARE = 0.2
MIN_SPAN_S = 3.0  # the capacity burst must be scored over at least three checkpoint commits


@dataclass(frozen=True)
class OverloadPlan:
    model: str = "fraud-wide:1.0.0"  # the expensive demo model (~7k events/s here): the job, not the
    # harness's producer, is the bottleneck, and 2x its capacity for minutes fits the harness's memory
    factor: float = 2.0
    overload_s: float = 180.0
    calm_s: float = 30.0
    burst: int = 80_000  # events sent as fast as possible to measure the capacity


@dataclass(frozen=True)
class PhaseResult:
    name: str
    target_rate: float
    sent_rate: float  # what the producer achieved
    produced: int
    missing: int
    duplicates: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    drain_s: float  # after the last send, until every record was visible
    p99_by_10s: tuple[float, ...] = ()  # by send time: how latency grew
    rss_max_mib: dict | None = None


class _BackpressureSampler(threading.Thread):
    """The source vertex's backpressure ratio, level and busy ratio (the highest over its subtasks) every
    ``every_s``. The source and the Python scoring step are chained into that vertex, so an overloaded
    job shows there as busy, not as backpressured: the backlog waits in Kafka."""

    def __init__(self, settings: Settings, job_id: Callable[[], str], every_s: float = 5.0):
        super().__init__(daemon=True)
        self.settings, self.job_id, self.every_s = settings, job_id, every_s
        self.samples: list[tuple[float, float, str, float]] = []  # (time s, ratio, level, busy ratio)
        self.stop_event = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        while not self.stop_event.wait(self.every_s):
            try:
                job_id = self.job_id()
                vertex = rest(self.settings, f"/jobs/{job_id}")["vertices"][0]["id"]
                answer = rest(self.settings, f"/jobs/{job_id}/vertices/{vertex}/backpressure")
            except Exception:  # noqa: BLE001 - a missed sample is a gap, not a failure
                continue
            subtasks = answer.get("subtasks") or []
            ratio = max((s.get("ratio", 0.0) for s in subtasks), default=0.0)
            busy = max((s.get("busyRatio", 0.0) for s in subtasks), default=0.0)
            level = answer.get("backpressureLevel", answer.get("backpressure-level", "unknown"))
            self.samples.append((round(time.monotonic() - began, 1), ratio, level, busy))


def run_overload(settings: Settings, plan: OverloadPlan, out_dir: Path) -> tuple[dict, Path]:
    """The four phases on fresh topics; returns the report and where it was written."""
    tag = uuid.uuid4().hex[:8]
    names = {role: f"overload-{role}-{tag}" for role in ("events", "scored", "dead")}
    topics = TrafficTopics(names["events"], names["scored"], names["dead"])
    config = scoring_config_from_settings(settings, events_topic=topics.events, scored_topic=topics.scored,
                                          dead_letter_topic=topics.dead, job_name=f"overload-{tag}",
                                          startup_mode="earliest-offset", model=plan.model)
    _ensure_model(plan.model)
    began = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    job: list[str] = []
    sampler = ResourceSampler(settings, lambda: job[0] if job else "", every_s=5.0)
    pressure = _BackpressureSampler(settings, lambda: job[0] if job else "")
    try:
        create_topics(settings, [TopicSpec(r, n, 2) for r, n in names.items()])
        job.append(submit_scoring(settings, config))
        sampler.start()
        pressure.start()
        capacity = _capacity(settings, topics, plan, tag)
        phases = [_phase(settings, topics, sampler, name, rate, seconds, f"o{tag}{name[0]}-")
                  for name, rate, seconds in (("before", capacity / 2, plan.calm_s),
                                              ("overload", capacity * plan.factor, plan.overload_s),
                                              ("after", capacity / 2, plan.calm_s))]
    finally:
        pressure.stop_event.set()
        resources = sampler.stop() if sampler.is_alive() else None
        with contextlib.suppress(StreamscoreError):
            if job:
                cancel_job(settings, job[0])
        with contextlib.suppress(StreamscoreError):
            delete_topics(settings, list(names.values()))
    report = {"plan": asdict(plan), "capacity_events_per_s": round(capacity, 1),
              "phases": [asdict(p) for p in phases], "backpressure": pressure.samples,
              "resources": resources, "checks": _checks(phases)}
    report["passed"] = all(report["checks"].values())
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"overload-{began}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return report, path


def _ensure_model(ref: str) -> None:
    """``fraud-wide`` is built on demand (about a minute), as ``streamscore bench`` builds it."""
    from models.build_heavy import WIDE_NAME, build_wide
    from models.registry import DEFAULT_ROOT

    if ref == f"{WIDE_NAME}:1.0.0" and not (DEFAULT_ROOT / WIDE_NAME / "1.0.0").is_dir():
        print(f"building {ref} (the deliberately expensive demo model; about a minute) ...", flush=True)
        build_wide()


def _capacity(settings: Settings, topics: TrafficTopics, plan: OverloadPlan, tag: str) -> float:
    """Scored records per second while the job worked through a burst (warm-up left out)."""
    burst = run_traffic(settings, TrafficPlan(plan.burst, f"o{tag}c-", malformed_every=0,
                                              transaction_size=1000, timeout_s=300), topics)
    seen = np.sort(np.array([at for _, at in burst.arrivals]))
    kept = seen[int(len(seen) * WARMUP_SHARE):]
    kept = kept[kept > kept[0]] if len(kept) else kept  # the first kept commit's records arrived before it began
    span_s = (kept[-1] - kept[0]) / 1000.0 if len(kept) >= 2 else 0.0
    if span_s < MIN_SPAN_S:
        raise ValueError(f"overload: the capacity burst was scored over {span_s:.1f} s, too few commits to "
                         f"measure (need {MIN_SPAN_S:.0f} s: a larger burst)")
    return min(len(kept) / span_s, plan.burst / max(burst.produce_seconds, 1e-3))


def _checks(phases: list[PhaseResult]) -> dict[str, bool]:
    """What the run must show: nothing lost or duplicated, the TaskManagers' and Python workers' memory
    during the overload within 25 % of before it (the backlog waits in Kafka, not in the job), and the
    latency after it back within twice the p99 before it (plus one second of slack)."""
    before, overload, after = phases
    memory = all(overload.rss_max_mib.get(g, 0.0) <= 1.25 * before.rss_max_mib.get(g, 0.0) + 64.0
                 for g in ("taskmanagers", "python_workers")) if before.rss_max_mib and overload.rss_max_mib else False
    recovered = bool(before.p99_ms and after.p99_ms and after.p99_ms <= 2 * before.p99_ms + 1000.0)
    return {"none_lost_or_duplicated": all(p.missing == 0 and p.duplicates == 0 for p in phases),
            "memory_bounded": memory, "latency_recovered": recovered}


def _phase(settings: Settings, topics: TrafficTopics, sampler: ResourceSampler, name: str, rate: float,
           seconds: float, prefix: str) -> PhaseResult:
    start_s = time.monotonic() - sampler.began
    count = int(rate * seconds)
    report = run_traffic(settings, TrafficPlan(count, prefix, rate=rate, malformed_every=0,
                                               transaction_size=max(1, int(rate // 20)), timeout_s=900), topics)
    identities = read_identities(settings, topics.events, report.valid_ids, ())
    found = account(identities, report.scored, report.scored_duplicates, report.dead_letters)
    latencies = np.array(report.latencies_ms) if report.latencies_ms else None
    return PhaseResult(
        name, round(rate, 1), round(count / report.produce_seconds, 1) if report.produce_seconds else 0.0,
        report.produced, found.missing, found.duplicates,
        *(round(float(np.percentile(latencies, q)), 1) if latencies is not None else None for q in (50, 99)),
        round(float(latencies.max()), 1) if latencies is not None else None,
        round(report.drain_seconds, 1), _p99_by_10s(report), sampler.max_since(start_s))


def _p99_by_10s(report: TrafficReport) -> tuple[float, ...]:
    """p99 latency of the events sent in each 10 s of the phase, in order."""
    if not report.arrivals:
        return ()
    sent = np.array([t for t, _ in report.arrivals], dtype=np.float64)
    latency = np.array([at - t for t, at in report.arrivals])
    buckets = ((sent - sent.min()) // 10_000).astype(int)
    return tuple(round(float(np.percentile(latency[buckets == b], 99)), 1) for b in np.unique(buckets))
