"""Kafka -> Kafka pass-through with no Python and no model, exactly once (or ``--at-least-once``).

The plumbing check of the stack and the benchmark's Flink ceilings: raw bytes copied as they are, or
(``--avro-schema``) records of that schema read and written in Flink's own ``avro-confluent`` format,
decoded and encoded in the JVM through the registry, as a Flink SQL user would copy a Confluent-wire
topic. Submit with ``streamscore submit passthrough`` or ``flink run -py jobs/passthrough.py --help``.
"""

from __future__ import annotations

import argparse
import json

from pyflink.table import EnvironmentSettings, TableEnvironment

from jobs.kafka_tables import (
    ConfluentTable,
    KafkaTableSpec,
    SinkDelivery,
    confluent_sink_ddl,
    confluent_source_ddl,
    sink_ddl,
    source_ddl,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="passthrough")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source-topic", required=True)
    parser.add_argument("--sink-topic", required=True)
    parser.add_argument("--group-id", default="streamscore-passthrough")
    parser.add_argument("--transactional-id-prefix", default="streamscore-passthrough")
    parser.add_argument("--checkpoint-interval-ms", type=int, default=2000)
    parser.add_argument("--transaction-timeout-ms", type=int, default=600_000)
    parser.add_argument("--job-name", default="streamscore-passthrough")
    parser.add_argument("--at-least-once", action="store_true",
                        help="at-least-once sinks (no transactions): the latency floor of an ALO job")
    parser.add_argument("--avro-schema", help="JSON of the Avro record schema the topic carries: read and write "
                                              "it in the avro-confluent format (default: raw bytes)")
    parser.add_argument("--registry-url", help="the Confluent-compatible registry API (with --avro-schema)")
    parser.add_argument("--key-field", help="the STRING field written as the Kafka key (with --avro-schema)")
    parser.add_argument("--jars", default="", help="';'-separated jar URIs the job needs (the avro-confluent format)")
    args = parser.parse_args(argv)
    if args.avro_schema and not (args.registry_url and args.key_field):
        parser.error("--avro-schema needs --registry-url and --key-field")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = t_env.get_config()
    config.set("pipeline.name", args.job_name)
    config.set("execution.checkpointing.interval", f"{args.checkpoint_interval_ms} ms")
    config.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    if args.jars:
        config.set("pipeline.jars", args.jars)
    source, sink = KafkaTableSpec("events_in", args.source_topic, args.bootstrap), \
        KafkaTableSpec("events_out", args.sink_topic, args.bootstrap)
    delivery = SinkDelivery(args.transactional_id_prefix, args.transaction_timeout_ms, not args.at_least_once)
    if args.avro_schema:
        schema = json.loads(args.avro_schema)
        t_env.execute_sql(confluent_source_ddl(ConfluentTable(source, schema, args.registry_url, args.key_field),
                                               args.group_id))
        t_env.execute_sql(confluent_sink_ddl(ConfluentTable(sink, schema, args.registry_url, args.key_field),
                                             delivery))
        _report(args, t_env.execute_sql("INSERT INTO events_out SELECT * FROM events_in"))
        return
    t_env.execute_sql(source_ddl(source, args.group_id))
    t_env.execute_sql(sink_ddl(sink, delivery))
    _report(args, t_env.execute_sql("INSERT INTO events_out SELECT payload FROM events_in"))


def _report(args: argparse.Namespace, result) -> None:
    """The job id, on stdout, as the scoring and drift jobs print theirs (their submitters read it)."""
    print(f"streamscore: job {args.job_name} started with JobID {result.get_job_client().get_job_id()}", flush=True)


if __name__ == "__main__":
    main()
