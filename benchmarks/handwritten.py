"""The loops most teams write first, as baselines: confluent-kafka consume -> (decode -> ONNX ->) produce,
in Kafka transactions committed every ``commit_interval_ms`` together with the consumer offsets
(exactly-once for a single process: no state, no recovery, no scale-out).

- ``max_batch=1``: one model call per record (the per-record loop);
- ``max_batch=N``: up to N records per call, through the same BatchScorer as the Flink job;
- ``score=False``: no decode and no model, records copied as they are (the Kafka pass-through limit).

Each runs until ``should_stop()`` says so; ``streamscore bench`` runs them in a worker process
(``python -m benchmarks.worker``) so their CPU and memory are measured apart.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer

from connectors.kafka_clients import client_config
from streamscore.foundation.config import Settings


@dataclass(frozen=True)
class LoopPlan:
    """What one loop reads, writes and runs (``score=False``: records copied as they are, no model)."""

    source: str
    scored: str
    dead: str
    max_batch: int = 1
    score: bool = True
    commit_interval_ms: int = 1000
    model: str = "fraud:1.0.0"  # a bound model: its events on the Confluent wire, decoded here in Python


def batch_scorer(settings: Settings, plan: LoopPlan):
    """The project's BatchScorer for ``plan.model``; a bound model's on the Confluent wire, its schemas
    registered under the topics' subjects as ``streamscore submit`` registers them."""
    from jobs.batch_scorer import BatchScorer, ScorerSetup
    from models.registry import load_model
    from models.runtime import OnnxScorer

    model = load_model(plan.model)
    wire = _confluent_wire(settings, plan, model.card) if model.card.event_schema is not None else None
    return BatchScorer(model, OnnxScorer(model), ScorerSetup(job="handwritten", source_topic=plan.source, wire=wire))


def _confluent_wire(settings: Settings, plan: LoopPlan, card):
    from connectors.schema_registry import SchemaRegistry, register_subject, register_topic_schemas, subject_for
    from jobs.job_wire import RegistryWire, build_wire

    registry = SchemaRegistry(settings.schema_registry)
    ids = register_topic_schemas(registry, {"scored": plan.scored, "dead_letter": plan.dead})
    events_id = register_subject(registry, subject_for(plan.source), dict(card.event_schema.schema))
    return build_wire(RegistryWire(url=settings.schema_registry.url, events_schema_id=events_id,
                                   scored_schema_id=ids[subject_for(plan.scored)],
                                   dead_letter_schema_id=ids[subject_for(plan.dead)]), card)


def _clients(settings: Settings, source: str) -> tuple[Consumer, Producer]:
    group = f"bench-loop-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(client_config(settings) | {"group.id": group, "isolation.level": "read_committed",
                                                   "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.subscribe([source])
    producer = Producer(client_config(settings) | {"transactional.id": group, "linger.ms": 5,
                                                   "compression.type": "lz4"})
    producer.init_transactions(30)
    return consumer, producer


def run_loop(settings: Settings, plan: LoopPlan, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Consume -> process -> produce in transactions; returns the records processed."""
    scorer = batch_scorer(settings, plan) if plan.score else None
    consumer, producer = _clients(settings, plan.source)
    done, last_commit = 0, time.monotonic()
    producer.begin_transaction()
    while not should_stop():
        msgs = [m for m in consumer.consume(num_messages=plan.max_batch, timeout=0.05) if m.error() is None]
        if msgs:
            _process(producer, scorer, msgs, plan.scored, plan.dead)
            done += len(msgs)
        if (time.monotonic() - last_commit) * 1000 >= plan.commit_interval_ms:
            _commit(producer, consumer)
            last_commit = time.monotonic()
    _commit(producer, consumer)
    consumer.close()
    return done


def _process(producer: Producer, scorer, msgs, scored: str, dead: str) -> None:
    if scorer is None:
        for m in msgs:
            _produce(producer, scored, m.value(), m.key())
        return
    result = scorer.score([m.value() for m in msgs], [m.partition() for m in msgs], [m.offset() for m in msgs])
    for ok, key, body in zip(result.is_scored, result.keys, result.bodies):
        _produce(producer, scored if ok else dead, body, key)


def _produce(producer: Producer, topic: str, value: bytes, key: bytes) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key)
            return
        except BufferError:
            producer.poll(0.01)


def _commit(producer: Producer, consumer: Consumer) -> None:
    """The consumed offsets go into the same transaction as the produced records."""
    assignment = consumer.assignment()
    if assignment:
        producer.send_offsets_to_transaction(consumer.position(assignment), consumer.consumer_group_metadata())
    producer.commit_transaction(30)
    producer.begin_transaction()
