"""Kafka tables for Flink SQL: a read_committed raw source with its coordinates, exactly-once raw sinks, and
typed tables in Flink's `avro-confluent` format (the pass-through on the Confluent wire)."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.job_secrets import job_kafka_properties
from streamscore.foundation.errors import ConfigError
from streamscore.foundation.vocabulary import TransactionNaming


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


def _create(table: str, columns: str, options: dict[str, str]) -> str:
    """The CREATE TABLE statement, with the job's Kafka security properties last."""
    return f"CREATE TABLE {table} (\n  {columns}\n) WITH (\n  {_with({**options, **_security_options()})}\n)"


def _topic(spec: KafkaTableSpec) -> dict[str, str]:
    return {"connector": "kafka", "topic": spec.topic, "properties.bootstrap.servers": spec.bootstrap}


@dataclass(frozen=True)
class SinkDelivery:
    """How a sink writes: exactly once, in Kafka transactions its checkpoints commit (their ids named by
    ``naming``, docs/design.md), or at least once."""

    transactional_id_prefix: str
    transaction_timeout_ms: int
    exactly_once: bool = True
    naming: TransactionNaming = "pooling"

    def options(self) -> dict[str, str]:
        options = {"sink.delivery-guarantee": "exactly-once" if self.exactly_once else "at-least-once",
                   "sink.transactional-id-prefix": self.transactional_id_prefix,
                   "properties.transaction.timeout.ms": str(self.transaction_timeout_ms),
                   "properties.linger.ms": "5", "properties.compression.type": "lz4"}
        if self.exactly_once:
            options["sink.transaction-naming-strategy"] = self.naming.upper()
        return options


def source_ddl(spec: KafkaTableSpec, group_id: str, startup: str = "group-offsets",
               extra: dict[str, str] | None = None, watermark_delay_ms: int | None = None) -> str:
    """Raw bytes plus topic/partition/offset/timestamp; offsets live in Flink checkpoints.

    With ``watermark_delay_ms`` the Kafka timestamp (the event time) is the rowtime, with a
    bounded out-of-orderness watermark.
    """
    options = {**_topic(spec), "properties.group.id": group_id, "properties.isolation.level": "read_committed",
               "scan.startup.mode": startup, "properties.auto.offset.reset": "earliest", "format": "raw"}
    if startup == "group-offsets":
        options["properties.auto.offset.reset"] = "earliest"
    options.update(extra or {})
    watermark = ""
    if watermark_delay_ms is not None:
        watermark = (f",\n  WATERMARK FOR src_timestamp AS src_timestamp - INTERVAL "
                     f"'{watermark_delay_ms / 1000:.3f}' SECOND")
    return _create(spec.table, "payload BYTES,\n  src_topic STRING METADATA FROM 'topic' VIRTUAL,\n  "
                               "src_partition INT METADATA FROM 'partition' VIRTUAL,\n  "
                               "src_offset BIGINT METADATA FROM 'offset' VIRTUAL,\n  "
                               f"src_timestamp TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL{watermark}", options)


def sink_ddl(spec: KafkaTableSpec, delivery: SinkDelivery, keyed: bool = False, with_timestamp: bool = True) -> str:
    """Raw bytes value (and key); EXACTLY_ONCE commits Kafka transactions on Flink checkpoints."""
    options = {**_topic(spec), "format": "raw",
               **delivery.options()}
    columns = "payload BYTES"
    if keyed:  # key + value (+ the Kafka timestamp: the source record's, so event time flows through)
        columns = "msg_key BYTES, payload BYTES"
        if with_timestamp:
            columns += ", event_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'"
        options.update({"key.format": "raw", "key.fields": "msg_key", "value.format": "raw",
                        "value.fields-include": "EXCEPT_KEY"})
        del options["format"]
    return _create(spec.table, columns, options)


@dataclass(frozen=True)
class ConfluentTable:
    """A Kafka table in Flink's own ``avro-confluent`` format: typed columns from a record schema."""

    spec: KafkaTableSpec
    schema: dict  # the Avro record schema the topic carries (the source's reader schema)
    registry_url: str
    key_field: str  # a STRING field, also written as the Kafka key (readers identify records by it)


_AVRO_SQL = {"string": "STRING", "enum": "STRING", "int": "INT", "long": "BIGINT", "double": "DOUBLE",
             "float": "FLOAT", "boolean": "BOOLEAN", "bytes": "BYTES"}


def _sql_type(avro: object) -> str:
    """Flink SQL's type of one Avro field type (a ``["null", T]`` union: nullable T)."""
    if isinstance(avro, list):
        rest = [t for t in avro if t != "null"]
        if len(rest) != 1 or len(avro) != 2:
            raise ConfigError(f"only [null, T] unions map to a Flink column, got {avro}")
        return _sql_type(rest[0]).removesuffix(" NOT NULL")
    logical = avro.get("logicalType") if isinstance(avro, dict) else None
    if logical == "timestamp-millis":
        return "TIMESTAMP(3) NOT NULL"
    name = avro.get("type") if isinstance(avro, dict) else avro
    if name not in _AVRO_SQL:
        raise ConfigError(f"no Flink column type for the Avro type {avro}")
    return f"{_AVRO_SQL[name]} NOT NULL"


def confluent_columns(schema: dict) -> str:
    return ",\n  ".join(f"`{f['name']}` {_sql_type(f['type'])}" for f in schema["fields"])


def confluent_source_ddl(table: ConfluentTable, group_id: str) -> str:
    """Read committed, from the earliest offsets; the writer schema by the id in each record (the registry),
    resolved to ``table.schema`` (given explicitly: an enum field is not readable as the derived string)."""
    import json

    options = {**_topic(table.spec), "properties.group.id": group_id, "properties.isolation.level": "read_committed",
               "scan.startup.mode": "earliest-offset", "format": "avro-confluent",
               "avro-confluent.url": table.registry_url, "avro-confluent.schema": json.dumps(table.schema)}
    return _create(table.spec.table, confluent_columns(table.schema), options)


def confluent_sink_ddl(table: ConfluentTable, delivery: SinkDelivery) -> str:
    """Exactly-once (or at-least-once); the value's schema derived from the columns (Flink's writer cannot
    write an enum from a string) and registered under ``<topic>-value``; the key is ``key_field`` as UTF-8 bytes."""
    options = {**_topic(table.spec), "key.format": "raw", "key.fields": table.key_field,
               "value.format": "avro-confluent", "value.avro-confluent.url": table.registry_url,
               "value.fields-include": "ALL",
               **delivery.options()}
    return _create(table.spec.table, confluent_columns(table.schema), options)
