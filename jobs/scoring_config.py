"""The scoring job's settings: one frozen object, checked before anything is submitted.

It travels to the job as one JSON argument, so the client, the embedded MiniCluster and a
remote cluster all run exactly the same configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.job_config import JsonJobConfig, check_choice
from jobs.job_wire import RegistryWire, check_wire
from streamscore.foundation.errors import ConfigError
from streamscore.foundation.security import ClientAuth
from streamscore.foundation.vocabulary import TransactionNaming

BUNDLE_AT_LEAST = 8192  # records per bundle by default: 4 batches at 2048 (the bundle sweep, docs/benchmarks.md)

MIN_TRANSACTION_TIMEOUT_MS = 60_000
TIMEOUT_HEADROOM = 10  # transaction timeout >= 10 x (checkpoint interval + max delay)


# The default batch of a model whose card binds its event schema: its rows cross into Python as a few typed
# columns (decoded in the JVM), so a larger Arrow batch amortizes the hand-over. Run bench-20261204T203601Z
# (docs/benchmarks.md): 1.23x the throughput of batch 512 at 0.76x the CPU per event, the exactly-once p99
# still within its bound (1,178 against 1,093 ms; the checkpoint interval dominates). The Python decoder
# gains from it too (STREAMSCORE_DECODER=python: the same default).
DEFAULT_BOUND_BATCH = 2048


@dataclass(frozen=True)
class ScoringJobConfig(JsonJobConfig):
    LABEL = "scoring job config"

    bootstrap: str
    model: str = "fraud:1.0.0"
    registry_dir: str | None = None
    events_topic: str = "events"
    scored_topic: str = "scored"
    dead_letter_topic: str = "dead-letter"
    job_name: str = "streamscore-scoring"
    group_id: str | None = None
    transactional_id_prefix: str | None = None
    max_batch_size: int = 512  # submit gives a bound model DEFAULT_BOUND_BATCH when none is asked for
    max_delay_ms: int = 100
    # batches the JVM streams to the Python step before it waits for their results (a bundle); 0: as few as
    # hold BUNDLE_AT_LEAST records (jobs.scoring_job.bundle_size)
    batches_per_bundle: int = 0
    # pass records between chained operators without a defensive copy (Flink's pipeline.object-reuse): the
    # planner's operators are written for it, and the Python step copies the fields it holds back while a
    # batch is out; off, each hop of the chain copies every record (bench row wire-jvm-eo-copying)
    object_reuse: bool = True
    checkpoint_interval_ms: int = 1000
    transaction_timeout_ms: int = 600_000
    transaction_naming: TransactionNaming = "pooling"  # how the sinks name their transactions (docs/design.md)
    exactly_once: bool = True
    parallelism: int = 1
    startup_mode: str = "group-offsets"
    providers: tuple[str, ...] | None = None
    intra_op_threads: int = 1
    model_cache_dir: str | None = None  # TensorRT engine cache (the settings' cache folder); None: not cached
    low_confidence_band: float = 0.05  # |score - threshold| <= band counts as low confidence
    cache_enabled: bool = False  # Redis prediction cache (connectors.prediction_cache)
    cache_ttl_s: int = 3600
    redis_url: str | None = None  # redis:// or rediss://, never with a password
    control_topic: str | None = None  # follow lifecycle messages (promote, shadow, canary) here; None: pinned model
    shadow_topic: str | None = None  # the challenger's records (needed with control_topic)
    activation_delay_ms: int = 10_000  # promotions take effect this long after publication (jobs.model_router)
    control_max_wait_ms: int = 30_000  # how long a record may wait for the control reader to catch up
    # How the job's Python workers (the control reader, the prediction cache) log in to Kafka and Redis:
    # names and file paths only (the Java source and sinks get theirs through jobs.job_secrets).
    auth: ClientAuth = ClientAuth()
    # the Schema Registry and the schema ids of the job's topics (jobs.job_schemas, at submit); empty: single-object
    registry: RegistryWire = RegistryWire()
    # file:// URI of the project's Flink function jar (jobs/udf): a bound model's records are decoded in the JVM
    # (jobs.decoded_batch); None: in the Python step. Set at submit (jobs.job_schemas).
    decoder_jar: str | None = None

    @property
    def consumer_group(self) -> str:
        return self.group_id or self.job_name

    def python_kafka_env(self) -> dict[str, str]:
        """``STREAMSCORE_*`` settings for a confluent-kafka client in the job's Python worker."""
        return self.auth.kafka_env(self.bootstrap)

    @property
    def transactional_prefix(self) -> str:
        """Stable per job: a restarted job aborts its own lingering transactions by this prefix."""
        return self.transactional_id_prefix or self.job_name

    def checked(self) -> ScoringJobConfig:
        """Refuse settings that cannot work, each with one clear message."""
        for name in ("max_batch_size", "max_delay_ms", "checkpoint_interval_ms", "parallelism", "intra_op_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_choice("transaction_naming", self.transaction_naming, TransactionNaming)
        if self.batches_per_bundle < 0:
            raise ConfigError(f"batches_per_bundle must be >= 0 (0: enough for {BUNDLE_AT_LEAST} records), got "
                              f"{self.batches_per_bundle}")
        if self.max_batch_size > 100_000:
            raise ConfigError(f"max_batch_size {self.max_batch_size} is unreasonably large (max 100000)")
        if self.cache_enabled and (not self.redis_url or self.cache_ttl_s < 1):
            raise ConfigError(f"the prediction cache needs redis_url and cache_ttl_s >= 1 "
                              f"(got {self.redis_url!r}, {self.cache_ttl_s})")
        if self.redis_url and "@" in self.redis_url:
            raise ConfigError("redis_url must not carry credentials: use auth.redis_username and "
                              "auth.redis_password_file")
        if not 0.0 <= self.low_confidence_band <= 1.0:
            raise ConfigError(f"low_confidence_band must be within [0, 1], got {self.low_confidence_band}")
        if self.startup_mode not in ("group-offsets", "earliest-offset", "latest-offset"):
            raise ConfigError(f"startup_mode must be group-offsets, earliest-offset or latest-offset, "
                              f"got {self.startup_mode!r}")
        topics = [self.events_topic, self.scored_topic, self.dead_letter_topic]
        if len(set(topics)) != 3:
            raise ConfigError(f"events, scored and dead-letter topics must differ, got {topics}")
        if self.control_topic is not None:
            _check_lifecycle(self, topics)
        needed = min_transaction_timeout_ms(self)
        if self.exactly_once and self.transaction_timeout_ms < needed:
            raise ConfigError(
                f"transaction_timeout_ms {self.transaction_timeout_ms} is too close to the checkpoint "
                f"interval ({self.checkpoint_interval_ms} ms) + max delay ({self.max_delay_ms} ms): "
                f"use at least {needed} ms, or transactions may expire before their checkpoint commits them"
            )
        check_wire(self.registry, self.transaction_timeout_ms)
        return self


def _check_lifecycle(config: ScoringJobConfig, topics: list[str]) -> None:
    if not config.shadow_topic or len({*topics, config.control_topic, config.shadow_topic}) != 5:
        raise ConfigError(f"following control needs a shadow topic; events, scored, dead-letter, control and "
                          f"shadow topics must differ, got {[*topics, config.control_topic, config.shadow_topic]}")
    if config.auth.kafka_uses_sasl and not config.auth.kafka_password_file:
        raise ConfigError("following control over SASL needs STREAMSCORE_KAFKA_SASL_PASSWORD_FILE, a file the "
                          "TaskManagers can read: the job's control reader logs in with it (a password is never "
                          "put in the job's configuration)")
    if config.activation_delay_ms < 100 or config.control_max_wait_ms < 1000:
        raise ConfigError(f"activation_delay_ms must be >= 100 and control_max_wait_ms >= 1000, got "
                          f"{config.activation_delay_ms} and {config.control_max_wait_ms}")


def min_transaction_timeout_ms(config: ScoringJobConfig) -> int:
    return max(MIN_TRANSACTION_TIMEOUT_MS,
               TIMEOUT_HEADROOM * (config.checkpoint_interval_ms + config.max_delay_ms))


def check_against_broker(config: ScoringJobConfig, broker_max_timeout_ms: int) -> None:
    """The broker refuses transactions longer than its transaction.max.timeout.ms: fail at submit."""
    if config.exactly_once and config.transaction_timeout_ms > broker_max_timeout_ms:
        raise ConfigError(
            f"transaction_timeout_ms {config.transaction_timeout_ms} exceeds the broker's "
            f"transaction.max.timeout.ms {broker_max_timeout_ms}: the sink could not start a transaction; "
            f"lower it or raise the broker's limit"
        )
