"""Reading what a running job wrote: once all of it is there, not at the first end of partition."""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.kafka_reads import read_topic
from connectors.schema_registry import SchemaRegistry, topic_reader, topic_writer
from schemas.serde import schema_document


def read_until(settings, topic: str, count: int, decode: Callable[[bytes], object],
               timeout_s: float = 120.0) -> list:
    """The topic's committed records (decoded) once it holds ``count``, or whatever it holds at the
    deadline (the test's assertions then say what is missing). A single read stops at the end of
    the partition, which a job still working (a busy machine) has not reached yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [decode(r.value) for r in read_topic(settings, topic, max_records=count, idle_timeout_s=5)]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(1.0)


def read_with_flink_sql(settings, topic: str, columns: str, select: str, expected: int = 0) -> list[tuple]:
    """What a Flink SQL user reads from a Confluent-wire topic: a bounded Kafka table in Flink's own
    ``avro-confluent`` format (its reader schema derived from ``columns``), on an embedded MiniCluster.
    Read again (three times at most) while it gives fewer than ``expected`` rows: one suite run on 2 busy
    cores read 2,996 of the 2,999 records a read_committed consumer had just read (cause not found), so a
    short read is retried; a record Flink cannot read fails every attempt, and the test with it."""
    rows: list[tuple] = []
    for _ in range(3):
        rows = _flink_sql_read(settings, topic, columns, select)
        if len(rows) >= expected:
            break
        time.sleep(3.0)
    return rows


def _flink_sql_read(settings, topic: str, columns: str, select: str) -> list[tuple]:
    import uuid

    from pyflink.table import EnvironmentSettings, TableEnvironment

    from jobs.flink_home import avro_confluent_format_jar, connector_jars

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    jars = [connector_jars(settings)[0], avro_confluent_format_jar(settings)]
    t_env.get_config().set("pipeline.jars", ";".join(jar.resolve().as_uri() for jar in jars))
    t_env.get_config().set("parallelism.default", "1")
    t_env.execute_sql(f"""CREATE TEMPORARY TABLE read_back ({columns}) WITH (
      'connector' = 'kafka', 'topic' = '{topic}', 'properties.bootstrap.servers' = '{settings.kafka_bootstrap}',
      'properties.group.id' = 'it-read-back-{uuid.uuid4().hex[:8]}', 'properties.isolation.level' = 'read_committed',
      'scan.startup.mode' = 'earliest-offset', 'scan.bounded.mode' = 'latest-offset',
      'format' = 'avro-confluent', 'avro-confluent.url' = '{settings.schema_registry.url}')""")
    with t_env.execute_sql(f"SELECT {select} FROM read_back").collect() as results:
        return [tuple(row) for row in results]


def transactional_ids(settings, prefix: str, timeout_s: float = 60.0) -> set[str]:
    """Every transactional id starting with ``prefix`` that the broker's transaction log holds: the
    keys of the internal ``__transaction_state`` topic (a 2-byte version, then the id as a string
    with a 2-byte length), read up to the end offsets it had when asked (running jobs keep writing)."""
    import struct

    from confluent_kafka import TopicPartition

    from connectors.kafka_reads import read_committed_consumer

    consumer = read_committed_consumer(settings, **{"enable.partition.eof": False})
    found, deadline = set(), time.monotonic() + timeout_s
    try:
        partitions = consumer.list_topics("__transaction_state", timeout=10).topics["__transaction_state"].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition("__transaction_state", p), timeout=10)[1]
                for p in partitions}
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition("__transaction_state", p, -2) for p in pending])
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                if msg.offset() >= ends[msg.partition()] - 1:
                    pending.discard(msg.partition())
                if msg.key() and len(msg.key()) > 4:
                    (length,) = struct.unpack(">h", msg.key()[2:4])
                    found.add(msg.key()[4:4 + length].decode())
    finally:
        consumer.close()
    return {i for i in found if i.startswith(prefix)}


def demo_events_writer(settings, topic: str):
    """The demo fraud events' serde on ``topic``'s Confluent wire (their schema registered under TOPIC-value)."""
    return topic_writer(SchemaRegistry(settings.schema_registry), topic, schema_document("event"))


def decoder_of(settings, name: str) -> Callable[[bytes], dict]:
    """How ``name``'s records are read: through the registry (the Confluent wire every topic carries)."""
    return topic_reader(SchemaRegistry(settings.schema_registry), name).decode
