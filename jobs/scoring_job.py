"""The scoring job: Kafka ``events`` -> micro-batched ONNX scoring -> ``scored`` / ``dead-letter``, exactly once.

Design (see README, "Scoring job design"): a Table API pipeline whose one Python step is a
*vectorized* (pandas/Arrow) scalar function, so records cross the JVM/Python boundary as
Arrow batches, and each batch is one model call.

- max batch size -> ``python.fn-execution.arrow.batch.size`` and ``bundle.size``
- max delay      -> ``python.fn-execution.bundle.time``: a partial batch is flushed after it, or (Flink
  checks a bundle's age on a timer of that period, counted from the end of the previous bundle, so the
  tick right after a bundle finds it too young) after up to about twice it. Setting half the max delay
  was measured and lost: bench-20261205T182547Z, ALO at 10 ms, p99 median 128 ms against 99 ms, and
  ~10 % less throughput (docs/benchmarks.md)
- a checkpoint barrier flushes the open bundle first, so no batch straddles a checkpoint and
  nothing buffered is lost on failure (it is replayed from the checkpointed offsets)
- both sinks are Kafka EXACTLY_ONCE sinks with a stable transactional-id prefix per job;
  the planner reuses the one Python step for both (one model call per batch, not two)
- with ``control_topic`` set, the function follows model lifecycle messages without restart
  (``jobs.model_router``: the version of a record is a pure function of its event time and the
  control log, so replays route identically), and a third EXACTLY_ONCE sink writes the shadow
  challenger's records to ``shadow_topic``

Run: ``streamscore run scoring`` (embedded MiniCluster) or ``streamscore submit scoring``.
"""

from __future__ import annotations

import argparse
import gc

import pandas as pd
from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import FunctionContext, ScalarFunction, udf

from jobs.kafka_tables import KafkaTableSpec, SinkDelivery, sink_ddl, source_ddl
from jobs.scoring_config import BUNDLE_AT_LEAST, ScoringJobConfig

RESULT_TYPE = DataTypes.ROW([
    DataTypes.FIELD("is_scored", DataTypes.BOOLEAN()),
    DataTypes.FIELD("msg_key", DataTypes.BYTES()),
    DataTypes.FIELD("body", DataTypes.BYTES()),
    DataTypes.FIELD("shadow_body", DataTypes.BYTES()),  # the challenger's record, or null (no shadow)
])


class ScoreBatch(ScalarFunction):
    """Scores one Arrow batch per call. The model loads once per Python worker, in ``open``."""

    def __init__(self, config: ScoringJobConfig):
        self.config = config
        self.scorer = None

    def open(self, function_context: FunctionContext):
        from jobs.batch_scorer import BatchScorer, ScorerSetup
        from jobs.job_metrics import LifecycleMetrics, ScoringMetrics
        from models.registry import load_model
        from streamscore.foundation.logs import configure_logging, get_logger

        configure_logging(stream="stdout")  # a Python worker's stdout becomes INFO lines of the TaskManager log
        model = load_model(self.config.model, root=self.config.registry_dir)
        predictor = self._predictor(model)
        self.log = get_logger("streamscore.scoring", job=self.config.job_name, model=model.card.ref)
        self.router, self.follower = self._router(model.card)
        from jobs.job_wire import build_wire

        setup = ScorerSetup(job=self.config.job_name, source_topic=self.config.events_topic,
                            wire=build_wire(self.config.registry, model.card), cache=self._cache(model.card),
                            router=self.router, loader=self._load_version)
        self.scorer = BatchScorer(model, predictor, setup)
        self.log.info("model_loaded", providers=predictor.providers, cache=self.config.cache_enabled,
                      control_topic=self.config.control_topic)
        self.metrics = ScoringMetrics(function_context.get_metric_group(), model.card.name, model.card.version,
                                      self.scorer.threshold, self.config.low_confidence_band,
                                      provider=predictor.providers[0])
        self.lifecycle = LifecycleMetrics(function_context.get_metric_group(), model.card.name)
        self._after_load()
        freeze_start_up_heap()

    def _after_load(self) -> None:
        """What a subclass builds from the loaded model, before the start-up heap is frozen."""

    def _router(self, card):
        """The model router and its control-reading thread, when the job follows control."""
        if not self.config.control_topic:
            return None, None
        from jobs.control_follower import ControlFollower
        from jobs.job_wire import record_serde
        from jobs.model_router import ModelRouter

        router = ModelRouter(card.name, card.version, activation_delay_ms=self.config.activation_delay_ms,
                             max_wait_ms=self.config.control_max_wait_ms)
        serde = record_serde(self.config.registry, "control", self.config.registry.control_schema_id)
        follower = ControlFollower(self.config.python_kafka_env(), self.config.control_topic, router, log=self.log,
                                   serde=serde)
        follower.start()
        return router, follower

    def _predictor(self, model):
        """An ONNX Runtime session of ``model`` on the configured providers (TensorRT engines cached
        under the settings' cache folder)."""
        from models.runtime import OnnxScorer

        c = self.config
        return OnnxScorer(model, providers=list(c.providers) if c.providers else None,
                          intra_op_threads=c.intra_op_threads, gpu=gpu_options(c))

    def _load_version(self, version: str):
        """Another version of the job's model, from the registry (lazily, on its first routed record)."""
        from jobs.model_pool import VersionModel
        from models.registry import load_model
        model = load_model(f"{self.scorer.card.name}:{version}", root=self.config.registry_dir)
        predictor = self._predictor(model)
        self.log.info("model_version_loaded", version=version, providers=predictor.providers)
        return VersionModel(model.card, predictor, self._cache(model.card))

    def close(self):
        if getattr(self, "follower", None) is not None:
            self.follower.stop()

    def _cache(self, card):
        if not self.config.cache_enabled:
            return None
        from connectors.prediction_cache import PredictionCache, model_key, redis_factory

        c = self.config
        factory = redis_factory(c.redis_url, username=c.auth.redis_username, password_file=c.auth.redis_password_file,
                                ca_file=c.auth.redis_ca_file)
        return PredictionCache(factory, model_ref=model_key(card), ttl_s=c.cache_ttl_s, log=self.log)

    def eval(self, payload: pd.Series, partition: pd.Series, offset: pd.Series, timestamp: pd.Series) -> pd.DataFrame:
        millis = timestamp.values.astype("datetime64[ms]").astype("int64").tolist()  # the Kafka timestamps
        result = self.scorer.score(payload.tolist(), partition.tolist(), offset.tolist(), millis)
        return self._report(result, len(payload))

    def _report(self, result, rows: int) -> pd.DataFrame:
        """Metrics and log lines of one scored batch, and its output columns."""
        self.metrics.record_batch(result, rows)
        self.lifecycle.record_batch(result)
        if result.shadow_error:
            self.log.warning("shadow_failed", batch_id=result.batch_id, reason=result.shadow_error)
        for note in result.dead_letters:  # ids and codes only, never the payload
            self.log.info("dead_lettered", batch_id=result.batch_id, stage=note.stage, reason_code=note.reason_code,
                          event_id=note.event_id, correlation_id=note.correlation_id,
                          source_partition=note.partition, source_offset=note.offset)
        return pd.DataFrame({"is_scored": result.is_scored, "msg_key": result.keys, "body": result.bodies,
                             "shadow_body": result.shadow_bodies})


class ScoreDecodedBatch(ScoreBatch):
    """As :class:`ScoreBatch`, for records the JVM decoded (``jobs.decoded_batch``): the payloads still come
    along (a dead letter keeps them), but the Python step reads only the decoded columns."""

    def _after_load(self) -> None:
        from jobs.decoded_batch import DecodedLayout

        self.layout = DecodedLayout.of(self.scorer.card, self.scorer.contract)

    def eval(self, payload: pd.Series, partition: pd.Series, offset: pd.Series, timestamp: pd.Series,
             ok: pd.Series, reason_code: pd.Series, reason: pd.Series, *fields: pd.Series) -> pd.DataFrame:
        decoded = self.layout.columns(ok.to_numpy(dtype=bool), reason_code.to_numpy(), reason.to_numpy(),
                                      [f.to_numpy() for f in fields])
        millis = timestamp.values.astype("datetime64[ms]").astype("int64")
        result = self.scorer.score(payload.tolist(), partition.tolist(), offset.tolist(), millis, decoded)
        return self._report(result, len(payload))


def gpu_options(config: ScoringJobConfig):
    """The GPU providers' settings of a job: TensorRT engines cached under the job's model cache folder, and a
    shape profile that holds the job's largest batch (a batch beyond the profile would fail the model call,
    and every batch would be scored row by row)."""
    from models.runtime import GpuOptions

    return GpuOptions(trt_cache_dir=config.model_cache_dir,
                      trt_max_batch=max(GpuOptions.trt_max_batch, config.max_batch_size))


def freeze_start_up_heap() -> None:
    """Collect once, then move every object the worker holds after start-up (the model, onnxruntime, pandas,
    the Beam runtime) out of the garbage collector's reach: a full collection walked them all and paused the
    worker for ~97 ms mid-stream (about once in a 15 s probe at 39k events/s); after the freeze one
    took ~1 ms (a probe of the ALO row, docs/benchmarks.md). Later objects are collected as before; a frozen
    object still goes with its last reference (only a cycle among frozen objects, none known, would stay)."""
    gc.collect()
    gc.freeze()


def bundle_size(max_batch_size: int, batches: int = 0, at_least: int = BUNDLE_AT_LEAST) -> int:
    """Records per bundle (one JVM/Python synchronisation): ``batches`` whole batches, or (0) as few as
    hold ``at_least`` records.

    A bundle ends a partial batch, so it must hold whole batches. Within a bundle the JVM goes on
    reading and decoding the next batch while Python scores one; at its end it waits for every result,
    so one batch per bundle pays a synchronous round trip each (bench-20261205T113716Z, sensor model at
    batch 2048: 55k events/s at 1 batch per bundle, 62k at 2, 73k at 4). Latency stays bounded by the
    max delay (the bundle time: see the module's notes); a checkpoint barrier waits for the open bundle to finish.
    """
    return max_batch_size * (batches or max(1, -(-at_least // max_batch_size)))


def configure(t_env: TableEnvironment, config: ScoringJobConfig, connector_jar: str | None) -> None:
    conf = t_env.get_config()
    conf.set("pipeline.name", config.job_name)
    conf.set("parallelism.default", str(config.parallelism))
    conf.set("execution.checkpointing.interval", f"{config.checkpoint_interval_ms} ms")
    conf.set("execution.checkpointing.mode", "EXACTLY_ONCE")
    conf.set("execution.checkpointing.min-pause", "0 ms")
    conf.set("python.fn-execution.arrow.batch.size", str(config.max_batch_size))
    conf.set("python.fn-execution.bundle.size", str(bundle_size(config.max_batch_size, config.batches_per_bundle)))
    conf.set("python.fn-execution.bundle.time", str(config.max_delay_ms))
    conf.set("python.metric.enabled", "true")
    conf.set("pipeline.object-reuse", str(config.object_reuse).lower())
    conf.set("table.exec.resource.default-parallelism", str(config.parallelism))
    jars = [jar for jar in (connector_jar, config.decoder_jar) if jar]  # the connector: embedded MiniCluster only
    if jars:  # (a session cluster has it in lib/); the decoder's jar ships with the job
        conf.set("pipeline.jars", ";".join(jars))


def build_pipeline(t_env: TableEnvironment, config: ScoringJobConfig):
    """Tables, the vectorized scoring function and a statement set writing both sinks."""
    source = KafkaTableSpec("events_in", config.events_topic, config.bootstrap)
    t_env.execute_sql(source_ddl(source, config.consumer_group, startup=config.startup_mode))
    sinks = [("scored_out", config.scored_topic, "scored"),
             ("dead_letter_out", config.dead_letter_topic, "dead-letter")]
    if config.control_topic:
        sinks.append(("shadow_out", config.shadow_topic, "shadow"))
    for table, topic, suffix in sinks:
        delivery = SinkDelivery(f"{config.transactional_prefix}-{suffix}", config.transaction_timeout_ms,
                                config.exactly_once, config.transaction_naming)
        t_env.execute_sql(sink_ddl(KafkaTableSpec(table, topic, config.bootstrap), delivery, keyed=True))
    if config.decoder_jar and config.registry.confluent:
        from jobs.jvm_decode import decoded_scoring_view

        function = ScoreDecodedBatch(config)
        view = decoded_scoring_view(t_env, config, "events_in", "score_batch")
    else:
        function = ScoreBatch(config)
        view = ("SELECT score_batch(payload, src_partition, src_offset, src_timestamp) AS r, src_timestamp "
                "FROM events_in")
    score = udf(function, result_type=RESULT_TYPE, func_type="pandas", deterministic=True)
    t_env.create_temporary_function("score_batch", score)
    t_env.execute_sql(f"CREATE TEMPORARY VIEW scored_batch AS {view}")
    statements = t_env.create_statement_set()
    statements.add_insert_sql("INSERT INTO scored_out SELECT r.msg_key, r.body, src_timestamp "
                              "FROM scored_batch WHERE r.is_scored")
    statements.add_insert_sql(
        "INSERT INTO dead_letter_out SELECT r.msg_key, r.body, src_timestamp FROM scored_batch WHERE NOT r.is_scored")
    if config.control_topic:
        statements.add_insert_sql("INSERT INTO shadow_out SELECT r.msg_key, r.shadow_body, src_timestamp "
                                  "FROM scored_batch WHERE r.shadow_body IS NOT NULL")
    return statements


def _with_schema_ids(config: ScoringJobConfig) -> ScoringJobConfig:
    """The config's schema ids, registered now where it names the registry only (a Kubernetes manifest)."""
    from jobs.job_schemas import with_schema_ids_at_start

    return with_schema_ids_at_start(config)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scoring_job")
    parser.add_argument("--config", required=True, help="ScoringJobConfig as JSON")
    parser.add_argument("--connector-jar", default=None, help="file:// URI, for the embedded MiniCluster")
    parser.add_argument("--wait", action="store_true", help="block until the job ends (embedded runs)")
    args = parser.parse_args(argv)
    config = _with_schema_ids(ScoringJobConfig.from_json(args.config))
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    configure(t_env, config, args.connector_jar)
    result = build_pipeline(t_env, config).execute()
    client = result.get_job_client()
    print(f"streamscore: job {config.job_name} started with JobID {client.get_job_id()}", flush=True)
    if args.wait:
        result.wait()


if __name__ == "__main__":
    main()
