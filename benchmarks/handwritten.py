"""The loops most teams write first, as baselines: confluent-kafka consume -> decode -> ONNX -> produce,
in Kafka transactions committed every ``commit_interval_ms`` together with the consumer offsets
(exactly-once for a single process: no state, no recovery, no scale-out).

- ``per_record``: one model call per record (``max_batch=1``);
- ``batched``: up to ``max_batch`` records per call, through the same BatchScorer as the Flink job.

    python -m benchmarks.handwritten --events 50000
"""

from __future__ import annotations

import argparse
import time
import uuid

from confluent_kafka import Consumer, Producer

from connectors.kafka_clients import (
    client_config,
    create_topics,
    delete_topics,
    produce_transactionally,
    read_topic,
)
from jobs.batch_scorer import BatchScorer
from models.demo_data import generate_events
from models.registry import load_model
from models.runtime import OnnxScorer
from schemas import serde_for
from streamscore.config import TopicSpec, load_settings


def run_loop(settings, source: str, scored: str, dead: str, expected: int, *, max_batch: int,
             commit_interval_ms: int = 1000, idle_timeout_s: float = 10.0) -> dict:
    model = load_model("fraud:1.0.0")
    scorer = BatchScorer(model, OnnxScorer(model), job="handwritten", source_topic=source)
    group = f"bench-loop-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(client_config(settings) | {"group.id": group, "isolation.level": "read_committed",
                                                   "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([source])
    producer = Producer(client_config(settings) | {"transactional.id": group, "linger.ms": 5,
                                                   "compression.type": "lz4"})
    producer.init_transactions(30)
    done, began, last_data, last_commit = 0, None, time.monotonic(), time.monotonic()
    producer.begin_transaction()
    while done < expected and time.monotonic() - last_data < idle_timeout_s:
        msgs = [m for m in consumer.consume(num_messages=max_batch, timeout=0.1) if m.error() is None]
        if msgs:
            began = began or time.monotonic()
            last_data = time.monotonic()
            result = scorer.score([m.value() for m in msgs], [m.partition() for m in msgs],
                                  [m.offset() for m in msgs])
            for ok, key, body in zip(result.is_scored, result.keys, result.bodies):
                producer.produce(scored if ok else dead, body, key=key)
            done += len(msgs)
        if (time.monotonic() - last_commit) * 1000 >= commit_interval_ms or done >= expected:
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata())
            producer.commit_transaction(30)
            producer.begin_transaction()
            last_commit = time.monotonic()
    producer.abort_transaction(10)
    consumer.close()
    seconds = time.monotonic() - (began or time.monotonic())
    return {"system": f"handwritten max_batch={max_batch}", "events": done,
            "events_per_s": done / seconds if seconds else float("nan")}


def preload(settings, tag: str, count: int) -> tuple[str, str, str]:
    names = (f"bench-hw-events-{tag}", f"bench-hw-scored-{tag}", f"bench-hw-dead-{tag}")
    create_topics(settings, [TopicSpec(r, n, 2) for r, n in zip(("events", "scored", "dead"), names)])
    encode = serde_for("event").encode_trusted
    items = ((e["event_id"].encode(), encode(e), None) for e in generate_events(count, seed=3, id_prefix=f"h{tag}-"))
    produce_transactionally(settings, names[0], items, transaction_size=5000)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handwritten")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 512])
    args = parser.parse_args(argv)
    settings = load_settings()
    for max_batch in args.batches:
        tag = uuid.uuid4().hex[:8]
        names = preload(settings, tag, args.events)
        try:
            row = run_loop(settings, *names, args.events, max_batch=max_batch)
            out = sum(1 for _ in read_topic(settings, names[1], idle_timeout_s=5))
            row["scored_distinct_check"] = out
            print(row, flush=True)
        finally:
            delete_topics(settings, list(names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
