"""One measured run of one system: drain a preloaded backlog, then latency under open-loop load.

1. **Drain**: ``backlog`` events are preloaded into a fresh input topic, the system starts and
   reads it from the beginning. Throughput = records visible at the read_committed sink after
   the first commit (+50 ms) / time from then to the last one: startup, model load, JIT and the
   first commit or checkpoint (the warm-up) are excluded.
2. **Latency**: on the same, now warm, system an open-loop sender sends at 50 % of the
   throughput just measured; latency = first visible at the sink - intended send time. The
   first 20 % of the sending span is warm-up and excluded. With ``--latency-loads`` more phases
   follow, each at a lower fraction of that throughput (the curve of latency against load).
3. **Accounting**: every backlog and latency event must be visible exactly once (distinct ids):
   any lost or duplicated event makes the run void.
"""

from __future__ import annotations

import gc
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from benchmarks import system_specs, systems
from benchmarks.feed import EventPool, preload, send_open_loop_apart
from benchmarks.procstats import ProcessSampler, stack_roles
from benchmarks.sink import SinkCollector, account
from connectors.kafka_clients import create_topics, delete_topics
from streamscore.foundation.config import Settings, TopicSpec
from streamscore.foundation.errors import StreamscoreError

WARMUP_FRACTION = 0.2
HALF_LOAD = 0.5  # the latency phase the targets read: half the rate just drained


class BenchError(StreamscoreError):
    """A benchmark run could not be carried out."""


@dataclass(frozen=True)
class RunParams:
    backlog: int
    latency_seconds: float
    latency_max_events: int
    commit_interval_ms: int = 1000
    stall_s: float = 60.0
    # further latency phases after the half-load one, each at this fraction of the drained rate (the curve of
    # latency against load: up to what load a latency target holds)
    extra_loads: tuple[float, ...] = ()


@contextmanager
def collector_gc_paused() -> Iterator[None]:
    """No automatic cyclic garbage collection in the benchmark's process while it measures (one collection at
    the end): the sink collector keeps an object per arrival (10^5 to 10^6 a run), and a full collection walking
    them stalled the collector's thread for ~100 ms, latency the system under test never caused."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        gc.collect()


def measure(settings: Settings, spec: system_specs.SystemSpec, pool: EventPool, params: RunParams,
            stack_pids: dict[str, tuple[int, ...]]) -> dict:
    with collector_gc_paused():
        return _measure(settings, spec, pool, params, stack_pids)


def _measure(settings: Settings, spec: system_specs.SystemSpec, pool: EventPool, params: RunParams,
             stack_pids: dict[str, tuple[int, ...]]) -> dict:
    tag = uuid.uuid4().hex[:8]
    topics = system_specs.Topics(f"bench-in-{tag}", f"bench-out-{tag}", f"bench-dead-{tag}")
    create_topics(settings, [TopicSpec(r, n, spec.partitions) for r, n in
                             zip(("events", "scored", "dead"), (topics.source, topics.scored, topics.dead))])
    backlog = pool.backlog(params.backlog, spec.repeat, spec.model, spec.confluent)
    row = {"system": spec.key, "label": spec.label, "group": spec.group, "backlog": len(backlog),
           "commit_interval_ms": params.commit_interval_ms, "max_batch": spec.max_batch,
           "max_delay_ms": spec.max_delay_ms, "exactly_once": spec.exactly_once,
           "parallelism": spec.parallelism, "partitions": spec.partitions, "apparatus_nice": spec.apparatus_nice}
    collector = sampler = running = None
    try:
        row["preload_s"] = round(preload(settings, topics.source, backlog), 2)
        keyed = set() if spec.kind == "flink-passthrough" and not spec.model else {topics.scored}
        if spec.kind in ("flink-scoring", "loop-score"):  # their dead letters are keyed by event id too (any wire)
            keyed.add(topics.dead)
        collector = SinkCollector(settings, [topics.scored, topics.dead], keyed, nice=spec.apparatus_nice)
        collector.start()
        holder: list[systems.RunningSystem] = []
        sampler = ProcessSampler(stack_roles(stack_pids, flink=spec.kind.startswith("flink"),
                                             loop_pid=lambda: holder[0].loop_pid if holder else None))
        sampler.start()
        running = systems.start(settings, spec, topics, params.commit_interval_ms)
        holder.append(running)
        started_at = running.started_at(settings)
        row.update(_drain(collector, sampler, running, len(backlog), params, started_at))
        latency_ids: set[str] = set()
        if row["drained"]:
            latency_ids = _latency_phases(settings, row, LatencyRun(collector, pool, topics, params, spec),
                                          len(backlog))
        systems.stop(settings, running)
        running = None
        sampler.stop()
        row["peak_rss_mb"] = {k: round(v, 1) for k, v in sampler.peak_rss_mb().items()}
        time.sleep(1.0)  # a late duplicate would show up here
        collector.stop()
        _account(row, collector, backlog.ids() | latency_ids, topics.dead)
    finally:
        if running is not None:
            systems.stop(settings, running)
        for thread in (sampler, collector):
            if thread is not None and thread.is_alive():
                thread.stop()
        delete_topics(settings, [topics.source, topics.scored, topics.dead])
    return row


def _drain(collector: SinkCollector, sampler: ProcessSampler, running: systems.RunningSystem, count: int,
           params: RunParams, started_at: float) -> dict:
    drained = collector.wait_for(count, stall_s=params.stall_s, timeout_s=params.stall_s + 600)
    if not running.alive():
        raise BenchError(f"{running.spec.key}: the worker process died (see .streamscore/logs/bench-*.log)")
    times = np.array([a.at for a in collector.arrivals[:count]])
    if len(times) < 2:
        return {"drained": False, "events_per_s": None}
    start, end = times.min() + 0.05, times.max()
    window = times[times > start]
    with_startup = end - start < 2 * params.commit_interval_ms / 1000.0
    if with_startup:  # too few commits to leave the first one out: count from the system's start
        start, window = started_at, times
    rate = len(window) / (end - start)
    cpu = sampler.cpu_seconds(start, end)
    return {"drained": drained, "events_per_s": round(rate, 1), "drain_window_s": round(end - start, 2),
            "drain_measured_events": len(window), "drain_includes_startup": bool(with_startup),
            "cpu_s_by_role": {k: round(v, 3) for k, v in cpu.items()},
            "cpu_s_per_million": round(sum(cpu.values()) / max(1, len(window)) * 1e6, 1)}


@dataclass(frozen=True)
class LatencyRun:
    """What the latency phases of one run share: the collector, the events, the topics, the plan, the system."""

    collector: SinkCollector
    pool: EventPool
    topics: system_specs.Topics
    params: RunParams
    spec: system_specs.SystemSpec


def _latency_phases(settings: Settings, row: dict, run: LatencyRun, backlog: int) -> set[str]:
    """The half-load phase (its figures in ``row``, as the targets read them), then one phase per extra load
    (``row["latency_by_load"]``, keyed by the fraction; the half load's too); returns every id sent."""
    phase, ids = _latency(settings, run, HALF_LOAD * row["events_per_s"], backlog)
    row.update(phase)
    if run.params.extra_loads:
        row["latency_by_load"] = {f"{HALF_LOAD:g}": {k: phase[k] for k in LOAD_FIELDS}}
    for number, load in enumerate(run.params.extra_loads, start=1):
        extra, sent = _latency(settings, run, load * row["events_per_s"], backlog + len(ids), number)
        row["latency_by_load"][f"{load:g}"] = {k: extra[k] for k in LOAD_FIELDS}
        ids |= sent
    return ids


LOAD_FIELDS = ("latency_rate", "latency_events", "latency_measured", "latency_lost", "latency_complete",
               "sender_max_lag_ms", "p50_ms", "p95_ms", "p99_ms")


def _latency(settings: Settings, run: LatencyRun, rate: float, expected_before: int,
             number: int = 0) -> tuple[dict, set[str]]:
    """One open-loop phase at ``rate`` (the run's phase ``number``): its latency figures, and the ids it sent."""
    rate = max(10.0, rate)
    collector, spec = run.collector, run.spec
    count = int(max(100, min(run.params.latency_max_events, rate * run.params.latency_seconds)))
    events = run.pool.latency(count, spec.repeat, spec.model, spec.confluent, phase=number)
    if spec.kind == "flink-scoring":
        collector.keep_values.set()  # the scored records' scoring times: the split below
    sent = send_open_loop_apart(settings, run.topics.source, events, rate, nice=spec.apparatus_nice)
    complete = collector.wait_for(expected_before + count, stall_s=min(30.0, run.params.stall_s), timeout_s=120)
    collector.keep_values.clear()
    first = _first_arrivals(list(collector.arrivals), events.ids())
    keep = int(count * WARMUP_FRACTION)
    measured = [(first[k.decode()], sent.intended_ms[i]) for i, k in enumerate(events.keys)
                if i >= keep and k.decode() in first]
    p50, p95, p99 = _percentiles([a.at * 1000.0 - intended for a, intended in measured])
    phase = {"sender_nice": sent.nice, "reader_nice": collector.nice_in_force,
             "latency_rate": round(rate, 1), "latency_events": count, "latency_measured": len(measured),
             "sender_max_lag_ms": round(sent.max_lag_ms, 1), "latency_complete": complete,
             "latency_lost": count - len(first),
             "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1), "p99_ms": round(float(p99), 1)}
    if spec.kind == "flink-scoring":  # its scored records carry their input's Kafka timestamp: the actual send
        p50, _, p99 = _percentiles([a.at * 1000.0 - a.timestamp_ms for a, _ in measured if a.timestamp_ms])
        phase.update({"p50_from_send_ms": round(float(p50), 1), "p99_from_send_ms": round(float(p99), 1)})
        phase.update(_step_split(settings, measured, run.topics.scored, spec.parallelism))
    return phase, events.ids()


def _step_split(settings: Settings, measured: list, scored_topic: str, parallelism: int) -> dict:
    """:func:`benchmarks.latency_split.split` of the measured scored records (their values kept meanwhile); a
    record that cannot be read back leaves the split out with the reason, never the run void."""
    from benchmarks.latency_split import ScoredSample, split
    from connectors.schema_registry import reader_of

    reader = reader_of(settings.schema_registry, "scored")
    samples = []
    try:
        for arrival, intended in measured:
            if arrival.kept_value is not None and arrival.topic == scored_topic:
                record = reader.decode(arrival.kept_value)
                samples.append(ScoredSample(intended, record["scored_time"], record["batch_id"],
                                            arrival.at * 1000.0))
    except StreamscoreError as exc:  # a SerdeError, the registry away: a side measurement, not the run's
        return {"step_split_error": str(exc)}
    return split(samples, with_cycle=parallelism == 1)


def _percentiles(latencies: list[float]):
    return np.percentile(latencies, [50, 95, 99]) if latencies else (np.nan,) * 3


def _first_arrivals(arrivals, wanted: set[str]) -> dict:
    """Event id -> its first :class:`~benchmarks.sink.Arrival` among ``arrivals``."""
    from benchmarks.sink import IdReader

    reader, first = IdReader(), {}
    for arrival in arrivals:
        event_id = reader.event_id(arrival)
        if event_id in wanted:
            first.setdefault(event_id, arrival)
    return first


def _account(row: dict, collector: SinkCollector, expected: set[str], dead_topic: str) -> None:
    acc = account(collector.arrivals, expected, dead_topic)
    row.update({"expected": acc.expected, "arrivals": len(collector.arrivals), "distinct": acc.distinct,
                "lost": acc.lost,
                "duplicates": acc.duplicates, "dead_lettered": acc.dead_lettered,
                "void": not acc.clean or not row.get("drained")})
