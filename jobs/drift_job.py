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
3. A keyed process function (one key: one judgement per window, whatever the parallelism) merges
   partials in Flink state (checkpointed), closes a window when
   the watermark passes its end plus the allowed lateness (time windows) or when it holds the
   configured number of events (count windows), judges it, applies hysteresis / cooldown /
   episodes (``drift.decision``, state kept in Flink), and emits Avro alerts and triggers.
4. Two Kafka EXACTLY_ONCE sinks.
"""

from __future__ import annotations

import argparse

import pandas as pd
from pyflink.common import Row, Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from jobs.drift_config import DriftJobConfig
from jobs.drift_logic import LABELS_WINDOW
from jobs.kafka_tables import KafkaTableSpec, sink_ddl, source_ddl

PARTIAL_TYPE = DataTypes.ROW([
    DataTypes.FIELD("window_start", DataTypes.BIGINT()),
    DataTypes.FIELD("n", DataTypes.BIGINT()),
    DataTypes.FIELD("counts", DataTypes.BYTES()),
])
SCORED_IDS_TYPE = DataTypes.ROW([
    DataTypes.FIELD("event_id", DataTypes.STRING()),
    DataTypes.FIELD("score", DataTypes.DOUBLE()),
    DataTypes.FIELD("predicted", DataTypes.INT()),
])
LABEL_IDS_TYPE = DataTypes.ROW([
    DataTypes.FIELD("event_id", DataTypes.STRING()),
    DataTypes.FIELD("label", DataTypes.INT()),
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
        n = len(payload)
        starts, sizes, blobs = [0] * n, [0] * n, [b""] * n
        for i, (window_start, size, blob) in enumerate(partials[:n]):
            starts[i], sizes[i], blobs[i] = window_start, size, blob
        return pd.DataFrame({"window_start": starts, "n": sizes, "counts": blobs})


class DecodeIds(ScalarFunction):
    """Arrow batches of ``scored`` or ``labels`` payloads -> the join's columns (event_id None = skip)."""

    def __init__(self, config: DriftJobConfig, source: str):
        self.config, self.source = config, source
        self.logic = None

    def open(self, function_context: FunctionContext):
        from jobs.drift_logic import SidecarLogic

        self.logic = SidecarLogic.for_model(self.config)

    def eval(self, payload: pd.Series) -> pd.DataFrame:
        if self.source == "scored":
            ids, scores, predicted = self.logic.decode_scored_ids(payload.tolist())
            return pd.DataFrame({"event_id": ids, "score": scores, "predicted": predicted})
        ids, labels = self.logic.decode_label_ids(payload.tolist())
        return pd.DataFrame({"event_id": ids, "label": labels})


class LabelledPartial(ScalarFunction):
    """Joined (score, predicted, actual) rows of one Arrow batch -> one partial count vector (first row)."""

    def eval(self, score: pd.Series, predicted: pd.Series, actual: pd.Series) -> pd.DataFrame:
        from jobs.drift_logic import SidecarLogic

        n = len(score)
        window, size, blob = SidecarLogic.label_partial(score.to_numpy(), predicted.to_numpy(), actual.to_numpy())
        return pd.DataFrame({"window_start": [window] * n, "n": [size] + [0] * (n - 1),
                             "counts": [blob] + [b""] * (n - 1)})


def _epoch_millis(ts: pd.Series):
    """Arrow TIMESTAMP_LTZ values -> int64 epoch milliseconds."""
    values = pd.to_datetime(ts, utc=True).dt.tz_convert(None).to_numpy()
    return values.astype("datetime64[ms]").astype("int64")


class DriftWindows(KeyedProcessFunction):
    """Merges partials per window in Flink state; judges closed windows; emits alerts and triggers."""

    def __init__(self, config: DriftJobConfig):
        self.config = config

    def open(self, runtime_context: RuntimeContext):
        from jobs.drift_logic import SidecarLogic
        from jobs.job_metrics import SidecarMetrics

        self.logic = SidecarLogic.for_model(self.config)
        self.metrics = SidecarMetrics(runtime_context.get_metrics_group(), self.logic.model_name,
                                      self.logic.model_version, self.logic.counter.contract.names)
        self.labelled = runtime_context.get_state(ValueStateDescriptor("labelled", Types.PRIMITIVE_ARRAY(Types.BYTE())))
        self.labelled_state = runtime_context.get_state(
            ValueStateDescriptor("labelled_episodes", Types.PRIMITIVE_ARRAY(Types.BYTE())))
        self.windows = runtime_context.get_map_state(
            MapStateDescriptor("windows", Types.LONG(), Types.PRIMITIVE_ARRAY(Types.BYTE())))
        self.detector_state = runtime_context.get_state(
            ValueStateDescriptor("detector", Types.PRIMITIVE_ARRAY(Types.BYTE())))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        window_start, blob = value[0], value[2]
        if window_start == LABELS_WINDOW:
            yield from self._labelled(blob)
            return
        if self.config.window_kind == "time" and self._judged(window_start, ctx):
            self.metrics.late_partials.inc(1)  # past its allowed lateness: re-opening it would judge it twice
            return
        current = self.windows.get(window_start)
        merged = self.logic.merge(current, blob)
        if self.config.window_kind == "count":
            if self.logic.events_in(merged) >= self.config.window_events:
                self.windows.remove(window_start)
                yield from self._judge(window_start, merged)
                return
        elif current is None:
            ctx.timer_service().register_event_time_timer(self._closes(window_start))
        self.windows.put(window_start, merged)

    def _closes(self, window_start: int) -> int:
        """The event time the window is judged at: its end plus its allowed lateness (its timer)."""
        return window_start + self.config.window_ms + self.config.allowed_lateness_ms - 1

    def _judged(self, window_start: int, ctx) -> bool:
        """Whether the watermark passed the window's timer (it was judged already)."""
        return self._closes(window_start) <= ctx.timer_service().current_watermark()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        window_start = timestamp + 1 - self.config.window_ms - self.config.allowed_lateness_ms
        merged = self.windows.get(window_start)
        if merged is not None:
            self.windows.remove(window_start)
            yield from self._judge(window_start, merged)

    def _judge(self, window_start: int, counts: bytes):
        state = self.detector_state.value()
        outputs, new_state = self.logic.judge(window_start, counts, state)
        self.detector_state.update(new_state)
        self.metrics.record_window(self.logic.last_verdict)
        for sink, key, payload in outputs:
            yield Row(sink, key, payload)

    def _labelled(self, blob: bytes):
        merged = self.logic.merge_labelled(self.labelled.value(), blob)
        if self.logic.events_in(merged) < self.config.label_window_events:
            self.labelled.update(merged)
            return
        self.labelled.clear()
        outputs, new_state = self.logic.judge_labelled(merged, self.labelled_state.value())
        self.labelled_state.update(new_state)
        self.metrics.record_labelled(self.logic.last_labelled)
        for sink, key, payload in outputs:
            yield Row(sink, key, payload)


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
        t_env.execute_sql(sink_ddl(KafkaTableSpec(table, topic, config.bootstrap),
                                   f"{config.job_name}-{suffix}", config.transaction_timeout_ms,
                                   exactly_once=True, keyed=True, with_timestamp=False))


def _labelled_partials(t_env: StreamTableEnvironment, config: DriftJobConfig):
    """Labels joined to scored records by event id (a regular join in Flink SQL, state kept for
    ``label_wait_ms``), then counted per Arrow batch into labelled partials."""
    for name, source, result_type in (("scored_ids", "scored", SCORED_IDS_TYPE),
                                      ("label_ids", "labels", LABEL_IDS_TYPE)):
        t_env.create_temporary_function(f"decode_{name}", udf(DecodeIds(config, source), result_type=result_type,
                                                               func_type="pandas"))
    t_env.create_temporary_function("labelled_partial", udf(LabelledPartial(), result_type=PARTIAL_TYPE,
                                                             func_type="pandas"))
    t_env.execute_sql("CREATE TEMPORARY VIEW scored_ids AS SELECT d.event_id AS event_id, d.score AS score, "
                      "d.predicted AS predicted FROM (SELECT decode_scored_ids(payload) AS d FROM scored_in) "
                      "WHERE d.event_id IS NOT NULL")
    t_env.execute_sql("CREATE TEMPORARY VIEW label_ids AS SELECT d.event_id AS event_id, d.label AS label "
                      "FROM (SELECT decode_label_ids(payload) AS d FROM labels_in) WHERE d.event_id IS NOT NULL")
    joined = t_env.sql_query(
        "SELECT p.window_start, p.n, p.counts FROM (SELECT labelled_partial(s.score, s.predicted, l.label) AS p "
        "FROM scored_ids s JOIN label_ids l ON s.event_id = l.event_id) WHERE p.n > 0")
    return t_env.to_data_stream(joined)


def build(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, config: DriftJobConfig):
    with_labels = labels_enabled(config)
    _register_sources(t_env, config, with_labels)
    partial_streams = []
    for table, source in (("events_in", "events"), ("scored_in", "scored")):
        fn = udf(PartialCounts(config, source), result_type=PARTIAL_TYPE, func_type="pandas")
        t_env.create_temporary_function(f"partial_{source}", fn)
        partials = t_env.sql_query(
            f"SELECT p.window_start, p.n, p.counts FROM "
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
    if args.connector_jar:
        conf.set("pipeline.jars", args.connector_jar)
    result = build(env, t_env, config).execute()
    print(f"streamscore: job {config.job_name} started with JobID {result.get_job_client().get_job_id()}", flush=True)
    if args.wait:
        result.wait()


if __name__ == "__main__":
    main()
