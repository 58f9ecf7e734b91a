"""Kafka -> Kafka pass-through with no Python and no model, exactly once.

The plumbing check of the stack and the benchmark's Flink ceiling. Submit with
``streamscore submit passthrough`` or ``flink run -py jobs/passthrough.py --help``.
"""

from __future__ import annotations

import argparse

from pyflink.table import EnvironmentSettings, TableEnvironment

from jobs.kafka_tables import KafkaTableSpec, sink_ddl, source_ddl


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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = t_env.get_config()
    config.set("pipeline.name", args.job_name)
    config.set("execution.checkpointing.interval", f"{args.checkpoint_interval_ms} ms")
    config.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    t_env.execute_sql(source_ddl(KafkaTableSpec("events_in", args.source_topic, args.bootstrap), args.group_id))
    t_env.execute_sql(sink_ddl(KafkaTableSpec("events_out", args.sink_topic, args.bootstrap),
                               args.transactional_id_prefix, args.transaction_timeout_ms))
    t_env.execute_sql("INSERT INTO events_out SELECT payload FROM events_in")


if __name__ == "__main__":
    main()
