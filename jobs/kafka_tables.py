"""Kafka tables for Flink SQL: a read_committed raw source with its coordinates, exactly-once raw sinks."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.job_secrets import job_kafka_properties


@dataclass(frozen=True)
class KafkaTableSpec:
    table: str
    topic: str
    bootstrap: str


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _security_options() -> dict[str, str]:
    """The Kafka client security properties the submitter left for this job ({} for PLAINTEXT)."""
    return {f"properties.{key}": value for key, value in job_kafka_properties().items()}


def _with(options: dict[str, str]) -> str:
    return ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in options.items())


def source_ddl(spec: KafkaTableSpec, group_id: str, startup: str = "group-offsets",
               extra: dict[str, str] | None = None, watermark_delay_ms: int | None = None) -> str:
    """Raw bytes plus topic/partition/offset/timestamp; offsets live in Flink checkpoints.

    With ``watermark_delay_ms`` the Kafka timestamp (the event time) is the rowtime, with a
    bounded out-of-orderness watermark.
    """
    options = {
        "connector": "kafka",
        "topic": spec.topic,
        "properties.bootstrap.servers": spec.bootstrap,
        "properties.group.id": group_id,
        "properties.isolation.level": "read_committed",
        "scan.startup.mode": startup,
        "properties.auto.offset.reset": "earliest",
        "format": "raw",
        **_security_options(),
    }
    if startup == "group-offsets":
        options["properties.auto.offset.reset"] = "earliest"
    options.update(extra or {})
    watermark = ""
    if watermark_delay_ms is not None:
        watermark = (f",\n  WATERMARK FOR src_timestamp AS src_timestamp - INTERVAL "
                     f"'{watermark_delay_ms / 1000:.3f}' SECOND")
    return f"""CREATE TABLE {spec.table} (
  payload BYTES,
  src_topic STRING METADATA FROM 'topic' VIRTUAL,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  src_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL{watermark}
) WITH (
  {_with(options)}
)"""


def sink_ddl(spec: KafkaTableSpec, transactional_id_prefix: str, transaction_timeout_ms: int,
             exactly_once: bool = True, keyed: bool = False, with_timestamp: bool = True) -> str:
    """Raw bytes value (and key); EXACTLY_ONCE commits Kafka transactions on Flink checkpoints."""
    options = {
        "connector": "kafka",
        "topic": spec.topic,
        "properties.bootstrap.servers": spec.bootstrap,
        "format": "raw",
        "sink.delivery-guarantee": "exactly-once" if exactly_once else "at-least-once",
        "sink.transactional-id-prefix": transactional_id_prefix,
        "properties.transaction.timeout.ms": str(transaction_timeout_ms),
        "properties.linger.ms": "5",
        "properties.compression.type": "lz4",
        **_security_options(),
    }
    columns = "payload BYTES"
    if keyed:  # key + value (+ the Kafka timestamp: the source record's, so event time flows through)
        columns = "msg_key BYTES, payload BYTES"
        if with_timestamp:
            columns += ", event_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'"
        options.update({"key.format": "raw", "key.fields": "msg_key", "value.format": "raw",
                        "value.fields-include": "EXCEPT_KEY"})
        del options["format"]
    return f"CREATE TABLE {spec.table} (\n  {columns}\n) WITH (\n  {_with(options)}\n)"
