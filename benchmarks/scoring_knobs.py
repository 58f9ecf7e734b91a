"""Scoring job throughput and latency on the local stack, for several max batch sizes, side by side.

For each batch size, in one run and on the same generated events:
- drain: N events are preloaded into a fresh topic, then the job starts from the earliest offset;
  throughput = N / (last - first arrival at a read_committed consumer of ``scored``);
- latency: an open-loop producer at a fixed rate stamps each event with its send time;
  latency = visible at a read_committed consumer - send time (p50 / p95 / p99).

    python -m benchmarks.scoring_knobs --batch-sizes 1 512 --drain 50000 --rate 2000
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from connectors.kafka_clients import create_topics, delete_topics
from connectors.kafka_reads import read_topic
from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from jobs.flink_cluster import cancel_job
from jobs.job_wire import RegistryWire
from jobs.submit import scoring_config_from_settings, submit_scoring
from models.demo_data import generate_events
from schemas import serde_for
from streamscore.foundation.config import TopicSpec, load_settings
from streamscore.harness.traffic import TrafficPlan, TrafficTopics, run_traffic


def _topics(settings, tag: str) -> tuple[str, str, str]:
    names = (f"bench-events-{tag}", f"bench-scored-{tag}", f"bench-dead-{tag}")
    create_topics(settings, [TopicSpec(r, n, 2) for r, n in zip(("events", "scored", "dead"), names)])
    return names


def drain_throughput(settings, batch_size: int, count: int, **knobs) -> dict:
    tag = uuid.uuid4().hex[:8]
    events, scored, dead = _topics(settings, tag)
    encode = serde_for("event").encode_trusted
    items = ((e["event_id"].encode(), encode(e), None)
             for e in generate_events(count, seed=3, id_prefix=f"b{tag}-"))
    produce_transactionally(settings, events, items, TransactionPlan(transaction_size=5000))
    config = scoring_config_from_settings(settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead,
                                          job_name=f"bench-{tag}", max_batch_size=batch_size,
                                          startup_mode="earliest-offset",
                                          registry=RegistryWire(framing="single-object"), **knobs)
    job_id = submit_scoring(settings, config)
    try:
        arrivals = []
        for _ in read_topic(settings, scored, max_records=count, idle_timeout_s=60, follow=True):
            arrivals.append(time.monotonic())
    finally:
        cancel_job(settings, job_id)
        delete_topics(settings, [events, scored, dead])
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    return {"batch_size": batch_size, "events": count, "received": len(arrivals),
            "events_per_s": (len(arrivals) - 1) / span if span else float("nan")}


def latency_at_rate(settings, batch_size: int, count: int, rate: float, **knobs) -> dict:
    tag = uuid.uuid4().hex[:8]
    events, scored, dead = _topics(settings, tag)
    config = scoring_config_from_settings(settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead,
                                          job_name=f"bench-lat-{tag}", max_batch_size=batch_size,
                                          startup_mode="earliest-offset", **knobs)
    job_id = submit_scoring(settings, config)
    try:
        plan = TrafficPlan(count, f"l{tag}-", rate=rate, malformed_every=0, transaction_size=max(1, int(rate // 100)))
        report = run_traffic(settings, plan, TrafficTopics(events, scored, dead))
    finally:
        cancel_job(settings, job_id)
        delete_topics(settings, [events, scored, dead])
    return {"batch_size": batch_size, "rate": rate, "scored": len(report.scored),
            "checkpoint_ms": config.checkpoint_interval_ms, "max_delay_ms": config.max_delay_ms,
            **{k: round(v, 1) for k, v in report.latency_percentiles().items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scoring_knobs")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 512])
    parser.add_argument("--drain", type=int, default=50_000, help="backlog events per drain run")
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s of the latency runs")
    parser.add_argument("--latency-events", type=int, default=10_000)
    args = parser.parse_args(argv)
    settings = load_settings()
    rows = []
    for size in args.batch_sizes:
        drain = drain_throughput(settings, size, args.drain)
        latency = latency_at_rate(settings, size, args.latency_events, args.rate)
        rows.append({**drain, **latency})
        print(json.dumps(rows[-1]), flush=True)
    print("\n| max batch | drain events/s | rate | p50 ms | p95 ms | p99 ms | checkpoint ms | max delay ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch_size']} | {r['events_per_s']:.0f} | {r['rate']:.0f} | {r.get('p50')} | {r.get('p95')} "
              f"| {r.get('p99')} | {r['checkpoint_ms']} | {r['max_delay_ms']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
