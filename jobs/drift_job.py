"""The drift sidecar: windows of features (``events``) and predictions (``scored``) judged against the
reference profile frozen with the model; alerts to ``drift-alerts``, retraining triggers to ``control``.

Topology (Table API, then DataStream for the stateful part):

1. Two Kafka sources, read_committed, with the Kafka timestamp (= event time) as rowtime and a
   bounded out-of-orderness watermark.
2. A vectorized (Arrow) function per source turns each micro-batch into *partial window counts*
   (per feature: PSI bin counts and KS grid-cell counts, see ``drift.window_counts``) keyed by the
   event-time window each record falls in; rows without a partial are filtered out, so roughly
   one row per batch and window crosses into the stateful step, whatever the traffic.
   Sources and counting run at ``config.parallelism``: each subtask counts its own partitions.
3. With a labels topic: labels joined to scored records by event id, counted per Arrow batch and
   bucket of label time into labelled partials.
4. A keyed process function (``jobs.drift_windows``; one key: one judgement per window, whatever the
   parallelism) merges partials in Flink state (checkpointed), closes a window when the watermark
   passes its end plus the allowed lateness (time windows) or when it holds the configured number
   of events (count windows; labelled windows over whole buckets of label time, ``jobs.label_windows``),
   judges it, applies hysteresis / cooldown / episodes (``drift.decision``, state kept in Flink),
   and emits Avro alerts and triggers.
5. Two Kafka EXACTLY_ONCE sinks.
"""

from __future__ import annotations

import argparse

import pandas as pd
from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from jobs.drift_config import DriftJobConfig
from jobs.drift_windows import DriftWindows
from jobs.kafka_tables import KafkaTableSpec, SinkDelivery, sink_ddl, source_ddl

PARTIAL_TYPE = DataTypes.ROW([
    DataTypes.FIELD("window_start", DataTypes.BIGINT()),
    DataTypes.FIELD("n", DataTypes.BIGINT()),
    DataTypes.FIELD("counts", DataTypes.BYTES()),
    DataTypes.FIELD("labelled", DataTypes.BOOLEAN()),  # a labelled partial: window_start is its label-time bucket
])
SCORED_IDS_TYPE = DataTypes.ROW([
    DataTypes.FIELD("event_id", DataTypes.STRING()),
    DataTypes.FIELD("score", DataTypes.DOUBLE()),
    DataTypes.FIELD("predicted", DataTypes.INT()),
])
LABEL_IDS_TYPE = DataTypes.ROW([
    DataTypes.FIELD("event_id", DataTypes.STRING()),
    DataTypes.FIELD("label", DataTypes.INT()),
    DataTypes.FIELD("label_ms", DataTypes.BIGINT()),
])
OUTPUT_TYPE = Types.ROW_NAMED(["sink", "msg_key", "payload"],
                              [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()),
                               Types.PRIMITIVE_ARRAY(Types.BYTE())])


class PartialCounts(ScalarFunction):
    """One Arrow batch of ``events`` or ``scored`` payloads -> partial counts per window (first rows)."""

    def __init__(self, config: DriftJobConfig, source: str):
        self.config, self.source = config, source
        self.logic = None

    def open(self, function_context: FunctionContext):
        from jobs.drift_logic import SidecarLogic

        self.logic = SidecarLogic.for_model(self.config)

    def eval(self, payload: pd.Series, ts: pd.Series) -> pd.DataFrame:
        window_ms = self.config.window_ms if self.config.window_kind == "time" else 0
        millis = _epoch_millis(ts)
        partials = self.logic.partials(self.source, payload.tolist(), millis, window_ms)
        return _partials_frame(partials, len(payload), labelled=False)


class DecodeScoredIds(ScalarFunction):
    """Arrow batches of ``scored`` payloads -> the join's columns (event_id None = skip: another model's record)."""

    def __init__(self, config: DriftJobConfig):
        self.config = config
        self.logic = None

    def open(self, function_context: FunctionContext):
        from jobs.drift_logic import SidecarLogic

        self.logic = SidecarLogic.for_model(self.config)

    def eval(self, payload: pd.Series) -> pd.DataFrame:
        ids, scores, predicted = self.logic.decode_scored_ids(payload.tolist())
        return pd.DataFrame({"event_id": ids, "score": scores, "predicted": predicted})


class DecodeLabelIds(DecodeScoredIds):
    """Arrow batches of ``labels`` payloads -> the join's columns (event_id None = skip: a rejected record,
    counted by reason and logged with its partition and offset)."""

    def open(self, function_context: FunctionContext):
        from jobs.job_metrics import LabelReadMetrics
        from streamscore.foundation.logs import configure_logging, get_logger

        super().open(function_context)
        self.metrics = LabelReadMetrics(function_context.get_metric_group(), self.logic.model_name,
                                        self.logic.model_version)
        configure_logging(stream="stdout")  # a Python worker's stdout becomes INFO lines of the TaskManager log
        self.log = get_logger("streamscore.drift", job=self.config.job_name, model=self.config.model)

    def eval(self, payload: pd.Series, ts: pd.Series, partition: pd.Series, offset: pd.Series) -> pd.DataFrame:
        decoded = self.logic.decode_label_ids(payload.tolist())
        self.metrics.record(len(payload), decoded.rejected)
        for facts in decoded.rejection_facts(self.config.labels_topic, partition.to_numpy(), offset.to_numpy()):
            self.log.warning("label_rejected", **facts)
        return pd.DataFrame({"event_id": decoded.ids, "label": decoded.labels, "label_ms": _epoch_millis(ts)})


class LabelledPartial(ScalarFunction):
    """Joined (score, predicted, actual, label time) rows of one Arrow batch -> one partial count vector per
    bucket of label time present (first rows)."""

    def __init__(self, config: DriftJobConfig):
        self.config = config
        self.cutter = self.joined = None

    def open(self, function_context: FunctionContext):
        from jobs.job_metrics import labels_joined_counter
        from jobs.label_windows import LabelWindowCutter
        from models.registry import parse_ref

        self.cutter = LabelWindowCutter(self.config.label_bucket_ms, self.config.label_window_events)
        model = parse_ref(self.config.model)
        self.joined = labels_joined_counter(function_context.get_metric_group(), model.name, model.version)

    def eval(self, score: pd.Series, predicted: pd.Series, actual: pd.Series, label_ms: pd.Series) -> pd.DataFrame:
        from jobs.drift_logic import SidecarLogic

        self.joined.inc(len(score))
        partials = SidecarLogic.label_partials((score.to_numpy(), predicted.to_numpy(), actual.to_numpy()),
                                               label_ms.to_numpy(), self.cutter)
        return _partials_frame(partials, len(score), labelled=True)


def _partials_frame(partials: list[tuple[int, int, bytes]], n: int, *, labelled: bool) -> pd.DataFrame:
    """A batch's ``n`` result rows: its partials (window start or bucket, size, counts) in the first rows,
    the rest empty (n = 0, filtered out before the stateful step)."""
    starts, sizes, blobs = [0] * n, [0] * n, [b""] * n
    for i, (start, size, blob) in enumerate(partials[:n]):
        starts[i], sizes[i], blobs[i] = start, size, blob
    return pd.DataFrame({"window_start": starts, "n": sizes, "counts": blobs, "labelled": [labelled] * n})


def _epoch_millis(ts: pd.Series):
    """Arrow TIMESTAMP_LTZ values -> int64 epoch milliseconds."""
    values = pd.to_datetime(ts, utc=True).dt.tz_convert(None).to_numpy()
    return values.astype("datetime64[ms]").astype("int64")


def labels_enabled(config: DriftJobConfig) -> bool:
    """Labels are joined when a labels topic is configured and the model card holds the reference accuracy."""
    if not config.labels_topic:
        return False
    from models.registry import load_model

    if load_model(config.model, root=config.registry_dir).card.training.test_accuracy is None:
        print(f"streamscore: labels topic {config.labels_topic!r} ignored: model {config.model} has no "
              f"training.test_accuracy in its card (the reference labelled windows are judged against)", flush=True)
        return False
    return True


def _register_sources(t_env: StreamTableEnvironment, config: DriftJobConfig, with_labels: bool) -> None:
    sources = [("events_in", config.events_topic), ("scored_in", config.scored_topic)]
    if with_labels:
        sources.append(("labels_in", config.labels_topic))
    for table, topic in sources:
        t_env.execute_sql(source_ddl(KafkaTableSpec(table, topic, config.bootstrap), f"{config.job_name}-{table}",
                                     startup=config.startup_mode,
                                     watermark_delay_ms=config.max_out_of_orderness_ms))
    for table, topic, suffix in (("alerts_out", config.alerts_topic, "alerts"),
                                 ("control_out", config.control_topic, "control")):
        delivery = SinkDelivery(f"{config.job_name}-{suffix}", config.transaction_timeout_ms,
                                naming=config.transaction_naming)
        t_env.execute_sql(sink_ddl(KafkaTableSpec(table, topic, config.bootstrap), delivery, keyed=True,
                                   with_timestamp=False))


def _labelled_partials(t_env: StreamTableEnvironment, config: DriftJobConfig):
    """Labels joined to scored records by event id (a regular join in Flink SQL, state kept for
    ``label_wait_ms``), then counted per Arrow batch and bucket of the label's time (its Kafka timestamp)
    into labelled partials."""
    for name, function, result_type in (("scored_ids", DecodeScoredIds, SCORED_IDS_TYPE),
                                        ("label_ids", DecodeLabelIds, LABEL_IDS_TYPE)):
        t_env.create_temporary_function(f"decode_{name}", udf(function(config), result_type=result_type,
                                                               func_type="pandas"))
    t_env.create_temporary_function("labelled_partial", udf(LabelledPartial(config), result_type=PARTIAL_TYPE,
                                                             func_type="pandas"))
    t_env.execute_sql("CREATE TEMPORARY VIEW scored_ids AS SELECT d.event_id AS event_id, d.score AS score, "
                      "d.predicted AS predicted FROM (SELECT decode_scored_ids(payload) AS d FROM scored_in) "
                      "WHERE d.event_id IS NOT NULL")
    t_env.execute_sql("CREATE TEMPORARY VIEW label_ids AS SELECT d.event_id AS event_id, d.label AS label, "
                      "d.label_ms AS label_ms FROM (SELECT decode_label_ids(payload, src_timestamp, src_partition, "
                      "src_offset) AS d FROM labels_in) WHERE d.event_id IS NOT NULL")
    joined = t_env.sql_query(
        "SELECT p.window_start, p.n, p.counts, p.labelled FROM (SELECT labelled_partial(s.score, s.predicted, "
        "l.label, l.label_ms) AS p FROM scored_ids s JOIN label_ids l ON s.event_id = l.event_id) WHERE p.n > 0")
    return t_env.to_data_stream(joined)


def build(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, config: DriftJobConfig):
    with_labels = labels_enabled(config)
    _register_sources(t_env, config, with_labels)
    partial_streams = []
    for table, source in (("events_in", "events"), ("scored_in", "scored")):
        fn = udf(PartialCounts(config, source), result_type=PARTIAL_TYPE, func_type="pandas")
        t_env.create_temporary_function(f"partial_{source}", fn)
        partials = t_env.sql_query(
            f"SELECT p.window_start, p.n, p.counts, p.labelled FROM "
            f"(SELECT partial_{source}(payload, src_timestamp) AS p FROM {table}) WHERE p.n > 0")
        partial_streams.append(t_env.to_data_stream(partials))
    if with_labels:
        partial_streams.append(_labelled_partials(t_env, config))
    merged = partial_streams[0].union(*partial_streams[1:])
    outputs = merged.key_by(lambda row: 0, key_type=Types.INT()).process(DriftWindows(config), output_type=OUTPUT_TYPE)
    out_table = t_env.from_data_stream(outputs)
    t_env.create_temporary_view("drift_out", out_table)
    statements = t_env.create_statement_set()
    statements.add_insert_sql("INSERT INTO alerts_out SELECT msg_key, payload FROM drift_out WHERE sink = 'alerts'")
    statements.add_insert_sql("INSERT INTO control_out SELECT msg_key, payload FROM drift_out WHERE sink = 'control'")
    return statements


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="drift_job")
    parser.add_argument("--config", required=True, help="DriftJobConfig as JSON")
    parser.add_argument("--connector-jar", default=None)
    parser.add_argument("--wait", action="store_true")
    args = parser.parse_args(argv)
    config = DriftJobConfig.from_json(args.config)
    from jobs.job_schemas import with_schema_ids_at_start

    config = with_schema_ids_at_start(config)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.enable_checkpointing(config.checkpoint_interval_ms)
    env.set_parallelism(config.parallelism)
    t_env = StreamTableEnvironment.create(env)
    conf = t_env.get_config()
    conf.set("table.exec.resource.default-parallelism", str(config.parallelism))
    conf.set("pipeline.name", config.job_name)
    conf.set("python.fn-execution.arrow.batch.size", "1000")
    conf.set("python.fn-execution.bundle.size", "1000")
    conf.set("python.fn-execution.bundle.time", "200")
    conf.set("table.exec.source.idle-timeout", f"{config.idle_timeout_ms} ms")
    conf.set("table.exec.state.ttl", f"{config.label_wait_ms} ms")  # the label join's state
    conf.set("state.backend.type", config.state_backend)
    if config.state_backend == "rocksdb":  # a checkpoint uploads only the files written since the last one
        conf.set("execution.checkpointing.incremental", "true")
    if args.connector_jar:
        conf.set("pipeline.jars", args.connector_jar)
    result = build(env, t_env, config).execute()
    print(f"streamscore: job {config.job_name} started with JobID {result.get_job_client().get_job_id()}", flush=True)
    if args.wait:
        result.wait()


if __name__ == "__main__":
    main()
