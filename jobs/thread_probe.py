"""EXPERIMENT (reverted after its run): the scoring step in PyFlink's THREAD mode.

The records the JVM decoded go to a keyed Python process function that runs inside the TaskManager
(pemja), one record a call, no Beam bundle and no gRPC hand-over. It gathers a micro-batch (max batch
size, or a processing-time timer at max delay after its first record), scores it with the very
``ScoreDecodedBatch.eval`` of the process-mode path, and emits its rows. Buffered records live in a
Python list, not in Flink state: a failure loses the open batch (the probe measures speed, not
recovery).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pyflink.common import Configuration, Row, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.table import StreamTableEnvironment

from jobs.kafka_tables import KafkaTableSpec, sink_ddl, source_ddl
from jobs.scoring_config import ScoringJobConfig

OUT_TYPE = Types.ROW_NAMED(["is_scored", "msg_key", "body", "ts_ms"],
                           [Types.BOOLEAN(), Types.PRIMITIVE_ARRAY(Types.BYTE()),
                            Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG()])


class _Context:
    def __init__(self, runtime_context: RuntimeContext):
        self._rc = runtime_context

    def get_metric_group(self):
        return self._rc.get_metrics_group()


class ThreadScorer(KeyedProcessFunction):
    def __init__(self, config: ScoringJobConfig):
        self.config = config

    def open(self, runtime_context: RuntimeContext):
        from jobs.scoring_job import ScoreDecodedBatch

        self.step = ScoreDecodedBatch(self.config)
        self.step.open(_Context(runtime_context))
        self.rows: list = []

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        if not self.rows:
            ctx.timer_service().register_processing_time_timer(
                ctx.timer_service().current_processing_time() + self.config.max_delay_ms)
        self.rows.append(value)
        if len(self.rows) >= self.config.max_batch_size:
            yield from self._flush()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        if self.rows:
            yield from self._flush()

    def _flush(self):
        rows, self.rows = self.rows, []
        columns = list(zip(*rows))
        millis = np.asarray(columns[3], dtype=np.int64)
        series = [pd.Series(c) for c in columns[:3]]
        out = self.step.eval(*series, pd.Series(millis.astype("datetime64[ms]")),
                             *[pd.Series(c) for c in columns[4:]])
        for scored, key, body, ms in zip(out["is_scored"], out["msg_key"], out["body"], millis.tolist()):
            yield Row(bool(scored), key, body, ms)


def build_thread_pipeline(config: ScoringJobConfig):
    from jobs.jvm_decode import decoded_scoring_view

    env_conf = Configuration()
    env_conf.set_string("python.execution-mode", "thread")
    env_conf.set_string("pipeline.object-reuse", "true")
    env_conf.set_string("pipeline.name", config.job_name)
    if config.decoder_jar:
        env_conf.set_string("pipeline.jars", config.decoder_jar)
    env = StreamExecutionEnvironment.get_execution_environment(env_conf)
    env.set_parallelism(config.parallelism)
    env.enable_checkpointing(config.checkpoint_interval_ms)
    t_env = StreamTableEnvironment.create(env)
    if config.decoder_jar:
        t_env.get_config().set("pipeline.jars", config.decoder_jar)
    source = KafkaTableSpec("events_in", config.events_topic, config.bootstrap)
    t_env.execute_sql(source_ddl(source, config.consumer_group, startup=config.startup_mode))
    for table, topic, suffix in (("scored_out", config.scored_topic, "scored"),
                                 ("dead_letter_out", config.dead_letter_topic, "dead-letter")):
        t_env.execute_sql(sink_ddl(KafkaTableSpec(table, topic, config.bootstrap),
                                   f"{config.transactional_prefix}-{suffix}", config.transaction_timeout_ms,
                                   exactly_once=config.exactly_once, keyed=True))
    # the decoded view without the scoring call: its SELECT list is the function's arguments
    view = decoded_scoring_view(t_env, config, "events_in", "PROBE")
    args = view[len("SELECT PROBE("):view.index(") AS r, src_timestamp FROM")]
    inner = view[view.index(" FROM (SELECT ") + len(" FROM "):]
    millis = ("CAST(TIMESTAMPDIFF(SECOND, TO_TIMESTAMP_LTZ(0, 3), src_timestamp) AS BIGINT) * 1000 "
              "+ EXTRACT(MILLISECOND FROM src_timestamp)")
    args = args.replace("src_timestamp", millis, 1)
    table = t_env.sql_query(f"SELECT {args} FROM {inner}")
    decoded = t_env.to_data_stream(table)
    scored = decoded.key_by(lambda row: 0, key_type=Types.INT()).process(ThreadScorer(config), output_type=OUT_TYPE)
    t_env.create_temporary_view("scored_batch", t_env.from_data_stream(scored))
    statements = t_env.create_statement_set()
    for sink, where in (("scored_out", "is_scored"), ("dead_letter_out", "NOT is_scored")):
        statements.add_insert_sql(f"INSERT INTO {sink} SELECT msg_key, body, TO_TIMESTAMP_LTZ(ts_ms, 3) "
                                  f"FROM scored_batch WHERE {where}")
    return statements
