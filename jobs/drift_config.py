"""The drift sidecar's settings: one frozen object, passed to the job as JSON."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.job_config import JsonJobConfig, check_choice
from jobs.job_wire import RegistryWire, check_reading_wire
from jobs.scoring_config import MIN_TRANSACTION_TIMEOUT_MS, TIMEOUT_HEADROOM
from streamscore.foundation.errors import ConfigError
from streamscore.foundation.vocabulary import StateBackend, TransactionNaming

WINDOW_KINDS = ("count", "time")


@dataclass(frozen=True)
class DriftJobConfig(JsonJobConfig):
    LABEL = "drift job config"

    bootstrap: str
    model: str = "fraud:1.0.0"
    registry_dir: str | None = None
    events_topic: str = "events"
    scored_topic: str = "scored"
    alerts_topic: str = "drift-alerts"
    control_topic: str = "control"
    job_name: str = "streamscore-drift"
    window_kind: str = "count"
    window_events: int = 1000
    window_ms: int = 60_000
    allowed_lateness_ms: int = 5_000
    max_out_of_orderness_ms: int = 2_000
    idle_timeout_ms: int = 5_000
    checkpoint_interval_ms: int = 1000
    # the sources and the partial counting run at this parallelism; the merge and the judgement of
    # each window stay on one subtask (one key), so the alerts are the same whatever it is
    parallelism: int = 1
    transaction_timeout_ms: int = 600_000
    transaction_naming: TransactionNaming = "pooling"  # how the sinks name their transactions (docs/design.md)
    # the label join holds every scored record and label for label_wait_ms: on RocksDB a checkpoint writes only
    # what changed since the last one, on the heap all of it every time (docs/drift.md)
    state_backend: StateBackend = "rocksdb"
    startup_mode: str = "group-offsets"
    alpha: float = 0.01
    confirm_k: int = 2
    confirm_m: int = 3
    cooldown_windows: int = 10
    labels_topic: str | None = None  # delayed ground truth joined to scored records by event id; None = off
    label_window_events: int = 1000  # labelled (joined) events per accuracy window
    # how long the label join keeps a scored record (and a label) after its last write: a label that comes
    # later finds nothing to join; it is counted as read, not as joined (the join's state TTL, processing time)
    label_wait_ms: int = 600_000
    # labelled windows are cut over whole buckets of label time, in label-time order (jobs.label_windows);
    # when the watermark has not moved for this long (every source idle), the open buckets are added as they are
    label_bucket_ms: int = 1_000
    label_flush_ms: int = 10_000
    # the Schema Registry and the ids of the events' and scored records' schemas (a model with a bound
    # schema: jobs.job_schemas, at submit); empty: the single-object wire
    registry: RegistryWire = RegistryWire()

    def checked(self) -> DriftJobConfig:
        check_choice("transaction_naming", self.transaction_naming, TransactionNaming)
        check_choice("state_backend", self.state_backend, StateBackend)
        if self.window_kind not in WINDOW_KINDS:
            raise ConfigError(f"window_kind must be one of {WINDOW_KINDS}, got {self.window_kind!r}")
        for name in ("window_events", "window_ms", "checkpoint_interval_ms", "confirm_k", "confirm_m",
                     "label_window_events", "label_wait_ms", "label_bucket_ms", "label_flush_ms", "parallelism"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("allowed_lateness_ms", "max_out_of_orderness_ms", "idle_timeout_ms", "cooldown_windows"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.labels_topic and self.label_flush_ms < 2 * max(self.idle_timeout_ms, 1000):
            raise ConfigError(f"label_flush_ms ({self.label_flush_ms}) must be at least twice idle_timeout_ms "
                              f"({self.idle_timeout_ms}) and 2000: a paused source holds the watermark until it "
                              f"counts as idle, and the open label buckets must not be added meanwhile")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.confirm_k > self.confirm_m:
            raise ConfigError(f"confirm_k ({self.confirm_k}) cannot exceed confirm_m ({self.confirm_m})")
        if self.startup_mode not in ("group-offsets", "earliest-offset", "latest-offset"):
            raise ConfigError(f"startup_mode {self.startup_mode!r} is not group-offsets, earliest-offset "
                              f"or latest-offset")
        needed = max(MIN_TRANSACTION_TIMEOUT_MS, TIMEOUT_HEADROOM * self.checkpoint_interval_ms)
        if self.transaction_timeout_ms < needed:
            raise ConfigError(f"transaction_timeout_ms {self.transaction_timeout_ms} is too close to the checkpoint "
                              f"interval ({self.checkpoint_interval_ms} ms): use at least {needed} ms, or the "
                              f"sidecar's transactions may expire before their checkpoint commits them")
        check_reading_wire(self.registry, self.transaction_timeout_ms)
        return self
