"""The scoring job's settings: one frozen object, checked before anything is submitted.

It travels to the job as one JSON argument, so the client, the embedded MiniCluster and a
remote cluster all run exactly the same configuration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace

from streamscore.errors import ConfigError

MIN_TRANSACTION_TIMEOUT_MS = 60_000
TIMEOUT_HEADROOM = 10  # transaction timeout >= 10 x (checkpoint interval + max delay)


@dataclass(frozen=True)
class ScoringJobConfig:
    bootstrap: str
    model: str = "fraud:1.0.0"
    registry_dir: str | None = None
    events_topic: str = "events"
    scored_topic: str = "scored"
    dead_letter_topic: str = "dead-letter"
    job_name: str = "streamscore-scoring"
    group_id: str | None = None
    transactional_id_prefix: str | None = None
    max_batch_size: int = 512
    max_delay_ms: int = 100
    checkpoint_interval_ms: int = 1000
    transaction_timeout_ms: int = 600_000
    exactly_once: bool = True
    parallelism: int = 1
    startup_mode: str = "group-offsets"
    providers: tuple[str, ...] | None = None
    intra_op_threads: int = 1

    @property
    def consumer_group(self) -> str:
        return self.group_id or self.job_name

    @property
    def transactional_prefix(self) -> str:
        """Stable per job: a restarted job aborts its own lingering transactions by this prefix."""
        return self.transactional_id_prefix or self.job_name

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ScoringJobConfig:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"scoring job config is not JSON: {exc.msg}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"scoring job config must be a JSON object, got {type(raw).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise ConfigError(f"scoring job config has unknown keys {unknown}")
        if "bootstrap" not in raw:
            raise ConfigError("scoring job config needs 'bootstrap' (the Kafka bootstrap servers)")
        for name, value in raw.items():
            _check_json_type(name, value, cls.__dataclass_fields__[name].default)
        if raw.get("providers") is not None:
            raw["providers"] = tuple(raw["providers"])
        return cls(**raw).checked()

    def with_changes(self, **changes) -> ScoringJobConfig:
        return replace(self, **changes).checked()

    def checked(self) -> ScoringJobConfig:
        """Refuse settings that cannot work, each with one clear message."""
        for name in ("max_batch_size", "max_delay_ms", "checkpoint_interval_ms", "parallelism", "intra_op_threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_batch_size > 100_000:
            raise ConfigError(f"max_batch_size {self.max_batch_size} is unreasonably large (max 100000)")
        if self.startup_mode not in ("group-offsets", "earliest-offset", "latest-offset"):
            raise ConfigError(f"startup_mode must be group-offsets, earliest-offset or latest-offset, "
                              f"got {self.startup_mode!r}")
        topics = [self.events_topic, self.scored_topic, self.dead_letter_topic]
        if len(set(topics)) != 3:
            raise ConfigError(f"events, scored and dead-letter topics must differ, got {topics}")
        needed = min_transaction_timeout_ms(self)
        if self.exactly_once and self.transaction_timeout_ms < needed:
            raise ConfigError(
                f"transaction_timeout_ms {self.transaction_timeout_ms} is too close to the checkpoint "
                f"interval ({self.checkpoint_interval_ms} ms) + max delay ({self.max_delay_ms} ms): "
                f"use at least {needed} ms, or transactions may expire before their checkpoint commits them"
            )
        return self


def _check_json_type(name: str, value, default) -> None:
    """JSON values must have the type of the field's default (str for required strings)."""
    if name == "providers":
        if value is not None and (not isinstance(value, list) or not all(isinstance(p, str) for p in value)):
            raise ConfigError(f"providers must be a list of provider names, got {value!r}")
        return
    if value is None and default is None:
        return
    expected = str if default is None or isinstance(default, str) or name == "bootstrap" else type(default)
    if isinstance(value, bool) and expected is not bool or not isinstance(value, expected):
        raise ConfigError(f"{name} must be {expected.__name__}, got {type(value).__name__} {value!r}")


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
