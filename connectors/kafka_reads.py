"""Reading topics: a read_committed consumer, and a whole topic (or what it holds so far) as records."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from connectors.kafka_clients import client_config, existing_topics
from connectors.kafka_errors import KafkaClientError
from streamscore.foundation.config import Settings


@dataclass(frozen=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple


FIRST_ANSWER_GRACE_S = 10.0  # read_topic: how long to wait for the broker's first answer before "idle" counts


def read_committed_consumer(settings: Settings, group_id: str | None = None, **overrides) -> Consumer:
    conf = client_config(settings) | {
        "group.id": group_id or f"streamscore-reader-{uuid.uuid4().hex[:12]}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
    conf.update(overrides)
    return Consumer(conf)


def read_topic(settings: Settings, topic: str, *, max_records: int | None = None,
               idle_timeout_s: float = 5.0, from_beginning: bool = True,
               follow: bool = False, isolation_level: str = "read_committed") -> Iterator[ConsumedRecord]:
    """Read committed records of ``topic`` (``isolation_level="read_uncommitted"``: also records of
    open and aborted transactions). Stops at the end of every partition (unless ``follow``),
    after ``max_records``, or after ``idle_timeout_s`` with nothing new."""
    partitions = existing_topics(settings).get(topic)  # before the consumer: a failure here leaks none
    if partitions is None:
        raise KafkaClientError(f"topic {topic!r} does not exist at {settings.kafka_bootstrap}")
    start = {} if from_beginning else {"auto.offset.reset": "latest"}
    consumer = read_committed_consumer(settings, **start, **{"isolation.level": isolation_level})
    try:
        consumer.assign([TopicPartition(topic, p, -2 if from_beginning else -1) for p in range(partitions)])
    except BaseException:
        consumer.close()
        raise
    yield from _drain(consumer, partitions, max_records, idle_timeout_s, follow)


def _drain(consumer: Consumer, partitions: int, max_records: int | None, idle_timeout_s: float,
           follow: bool) -> Iterator[ConsumedRecord]:
    at_end: set[int] = set()
    count, last_data, began, answered = 0, time.monotonic(), time.monotonic(), False
    try:
        while max_records is None or count < max_records:
            msgs = consumer.consume(num_messages=1000, timeout=0.5)
            # idle only counts once the broker answered (a first fetch can take seconds on a busy
            # machine), or after FIRST_ANSWER_GRACE_S with no answer at all
            idle_since = last_data if answered else max(last_data, began + FIRST_ANSWER_GRACE_S - idle_timeout_s)
            if not msgs and not follow and time.monotonic() - idle_since > idle_timeout_s:
                return
            for msg in msgs:
                answered = True
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    raise KafkaClientError(f"consume failed: {err.str()}")
                at_end.discard(msg.partition())
                last_data = time.monotonic()
                count += 1
                yield ConsumedRecord(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                                     msg.timestamp()[1], tuple(msg.headers() or ()))
                if max_records is not None and count >= max_records:
                    return
            if not follow and len(at_end) == partitions:
                return
    finally:
        consumer.close()
