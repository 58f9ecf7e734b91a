"""Settings: one frozen object, read once at start from ``STREAMSCORE_*`` environment variables.

Every service of the stack can be ``local`` (started and stopped by ``streamscore stack``)
or ``external`` (an existing Kafka / Flink / Redis that the same commands talk to).

Example::

    STREAMSCORE_KAFKA_BOOTSTRAP=127.0.0.1:19092 streamscore stack up
    STREAMSCORE_KAFKA_MODE=external STREAMSCORE_KAFKA_BOOTSTRAP=kafka:9092 streamscore topics create
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, get_args

from streamscore.foundation.errors import ConfigError
from streamscore.foundation.registry_settings import (
    DEFAULT_REGISTRY_URL,
    RegistrySettings,
    load_registry_settings,
)
from streamscore.foundation.security import KafkaSecurity, RedisSecurity, load_kafka_security, load_redis_security

ENV_PREFIX = "STREAMSCORE_"
# how jobs reach the Flink cluster: a `flink run` client JVM per submission, or one warm client JVM per
# stack home that plans every submission (jobs/submitter_daemon.py)
FlinkSubmitter = Literal["cli", "daemon"]
FLINK_SUBMITTERS: tuple[FlinkSubmitter, ...] = get_args(FlinkSubmitter)
LOCAL_HOSTS = ("127.0.0.1", "localhost")
TOPIC_ROLES = ("events", "scored", "dead_letter", "drift_alerts", "control", "labels", "scored_shadow")
DEFAULT_TOPIC_NAMES = {
    "events": "events",
    "scored": "scored",
    "dead_letter": "dead-letter",
    "drift_alerts": "drift-alerts",
    "control": "control",
    "labels": "labels",
    "scored_shadow": "scored-shadow",
}
DEFAULT_PARTITIONS = {"events": 2, "scored": 2, "dead_letter": 1, "drift_alerts": 1, "control": 1, "labels": 1,
                      "scored_shadow": 2}


def _project_root() -> Path | None:
    """The checkout this package runs from, if it runs from one."""
    root = Path(__file__).resolve().parents[2]  # streamscore/foundation/config.py -> the checkout
    return root if (root / "pyproject.toml").is_file() else None


def _default_home() -> Path:
    root = _project_root()
    return (root / ".streamscore") if root else Path.home() / ".streamscore"


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS


@dataclass(frozen=True)
class TopicSpec:
    role: str
    name: str
    partitions: int


@dataclass(frozen=True)
class Settings:
    """Every knob of the local stack and its clients. Build with :func:`load_settings`."""

    home: Path
    cache_dir: Path
    kafka_mode: str
    kafka: Address
    kafka_controller_port: int
    kafka_version: str
    kafka_heap: str
    transaction_max_timeout_ms: int
    flink_mode: str
    flink_rest: Address
    flink_rpc_port: int
    flink_slots: int  # per TaskManager
    flink_metrics_port: int
    flink_taskmanager_memory: str
    flink_connector_version: str
    redis_mode: str
    redis: Address
    python_executable: str
    cluster_python: str
    jobs_kafka_bootstrap: str
    topics: tuple[TopicSpec, ...] = field(default_factory=tuple)
    flink_taskmanagers: int = 1  # TaskManagers of the local session cluster
    flink_submitter: FlinkSubmitter = "cli"
    start_timeout_s: float = 120.0
    prometheus_mode: str = "off"  # off | local (STREAMSCORE_PROMETHEUS=on) | external
    prometheus: Address = Address("127.0.0.1", 9090)
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)  # PLAINTEXT
    redis_security: RedisSecurity = field(default_factory=RedisSecurity)  # no auth, no TLS
    schema_registry: RegistrySettings = field(  # the Confluent-compatible API every command uses
        default_factory=lambda: RegistrySettings(DEFAULT_REGISTRY_URL, "local"))

    @property
    def registry_mode(self) -> str:
        return self.schema_registry.mode

    @property
    def registry(self) -> Address:
        return Address(self.schema_registry.host, self.schema_registry.port)

    @property
    def kafka_bootstrap(self) -> str:
        return str(self.kafka)

    @property
    def flink_rest_url(self) -> str:
        return f"http://{self.flink_rest}"

    @property
    def redis_url(self) -> str:
        return f"{'rediss' if self.redis_security.tls else 'redis'}://{self.redis}/0"  # never a password

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def topic(self, role: str) -> TopicSpec:
        for spec in self.topics:
            if spec.role == role:
                return spec
        raise ConfigError(f"unknown topic role {role!r}; known: {', '.join(TOPIC_ROLES)}")

    def describe(self) -> dict[str, str]:
        """A printable view; passwords are Secrets, so they print as ***."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name != "topics"}


def _parse_address(raw: str, name: str) -> Address:
    raw = raw.strip()
    for scheme in ("http://", "https://", "redis://"):
        if raw.startswith(scheme):
            raw = raw[len(scheme):].split("/", 1)[0]
    host, sep, port = raw.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"{ENV_PREFIX}{name} must be HOST:PORT, got {raw!r}")
    return Address(host, _parse_port(port, name))


def _parse_port(raw: str, name: str) -> int:
    try:
        port = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name}: port must be an integer, got {raw!r}") from exc
    if not 0 < port < 65536:
        raise ConfigError(f"{ENV_PREFIX}{name}: port {port} is out of range 1-65535")
    return port


def _parse_positive_int(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name} must be an integer, got {raw!r}") from exc
    if value <= 0:
        raise ConfigError(f"{ENV_PREFIX}{name} must be > 0, got {value}")
    return value


def _parse_mode(raw: str, name: str, address: Address) -> str:
    mode = raw.strip().lower()
    if mode not in ("local", "external"):
        raise ConfigError(f"{ENV_PREFIX}{name} must be 'local' or 'external', got {raw!r}")
    if mode == "local" and not address.is_local:
        raise ConfigError(
            f"{ENV_PREFIX}{name}=local but the address {address} is not on this machine; "
            f"bind local services to 127.0.0.1 or set {ENV_PREFIX}{name}=external"
        )
    return mode


def _parse_submitter(raw: str) -> FlinkSubmitter:
    for submitter in FLINK_SUBMITTERS:
        if raw == submitter:
            return submitter
    raise ConfigError(f"{ENV_PREFIX}FLINK_SUBMITTER must be one of {', '.join(FLINK_SUBMITTERS)}, not {raw!r}")


def _parse_prometheus_mode(raw: str, address: Address) -> str:
    """STREAMSCORE_PROMETHEUS: off (default), on (= local: the stack starts one), or external."""
    mode = {"on": "local"}.get(raw.strip().lower(), raw.strip().lower())
    if mode not in ("off", "local", "external"):
        raise ConfigError(f"{ENV_PREFIX}PROMETHEUS must be 'off', 'on' (local) or 'external', got {raw!r}")
    return mode if mode == "off" else _parse_mode(mode, "PROMETHEUS", address)


def _parse_topics(env: Mapping[str, str]) -> tuple[TopicSpec, ...]:
    specs = []
    for role in TOPIC_ROLES:
        key = role.upper()
        name = env.get(f"{ENV_PREFIX}TOPIC_{key}", DEFAULT_TOPIC_NAMES[role]).strip()
        if not name or any(c.isspace() for c in name):
            raise ConfigError(f"{ENV_PREFIX}TOPIC_{key} must be a topic name without spaces, got {name!r}")
        raw_parts = env.get(f"{ENV_PREFIX}PARTITIONS_{key}", str(DEFAULT_PARTITIONS[role]))
        specs.append(TopicSpec(role, name, _parse_positive_int(raw_parts, f"PARTITIONS_{key}")))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ConfigError(f"topic names must be distinct, got {names}")
    return tuple(specs)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings once from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env

    def get(name: str, default: str) -> str:
        return env.get(ENV_PREFIX + name, default)

    kafka = _parse_address(get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"), "KAFKA_BOOTSTRAP")
    flink_rest = _parse_address(get("FLINK_REST", "127.0.0.1:8081"), "FLINK_REST")
    redis = _parse_address(get("REDIS", "127.0.0.1:6379"), "REDIS")
    prometheus = _parse_address(get("PROMETHEUS_ADDRESS", "127.0.0.1:9090"), "PROMETHEUS_ADDRESS")
    home = Path(get("HOME", str(_default_home()))).expanduser().resolve()
    return Settings(
        home=home,
        cache_dir=Path(get("CACHE_DIR", str(Path.home() / ".cache" / "streamscore"))).expanduser(),
        kafka_mode=_parse_mode(get("KAFKA_MODE", "local"), "KAFKA_MODE", kafka),
        kafka=kafka,
        kafka_controller_port=_parse_port(get("KAFKA_CONTROLLER_PORT", "9093"), "KAFKA_CONTROLLER_PORT"),
        kafka_version=get("KAFKA_VERSION", "4.1.1"),
        kafka_heap=get("KAFKA_HEAP", "768m"),
        transaction_max_timeout_ms=_parse_positive_int(
            get("TRANSACTION_MAX_TIMEOUT_MS", "900000"), "TRANSACTION_MAX_TIMEOUT_MS"
        ),
        flink_mode=_parse_mode(get("FLINK_MODE", "local"), "FLINK_MODE", flink_rest),
        flink_rest=flink_rest,
        flink_rpc_port=_parse_port(get("FLINK_RPC_PORT", "6123"), "FLINK_RPC_PORT"),
        flink_slots=_parse_positive_int(get("FLINK_SLOTS", "4"), "FLINK_SLOTS"),
        flink_taskmanagers=_parse_positive_int(get("FLINK_TASKMANAGERS", "1"), "FLINK_TASKMANAGERS"),
        flink_metrics_port=_parse_port(get("FLINK_METRICS_PORT", "9249"), "FLINK_METRICS_PORT"),
        flink_submitter=_parse_submitter(get("FLINK_SUBMITTER", "cli")),
        flink_taskmanager_memory=get("FLINK_TASKMANAGER_MEMORY", "2560m"),
        flink_connector_version=get("FLINK_KAFKA_CONNECTOR_VERSION", "5.0.0-2.2"),
        redis_mode=_parse_mode(get("REDIS_MODE", "local"), "REDIS_MODE", redis),
        redis=redis,
        python_executable=get("PYTHON", sys.executable),
        # As seen from inside the Flink cluster (differ from the client's in containers).
        cluster_python=get("FLINK_PYTHON", get("PYTHON", sys.executable)),
        jobs_kafka_bootstrap=get("JOBS_KAFKA_BOOTSTRAP", str(kafka)),
        topics=_parse_topics(env),
        start_timeout_s=float(_parse_positive_int(get("START_TIMEOUT_S", "120"), "START_TIMEOUT_S")),
        prometheus_mode=_parse_prometheus_mode(get("PROMETHEUS", "off"), prometheus),
        prometheus=prometheus,
        kafka_security=load_kafka_security(env),
        redis_security=load_redis_security(env),
        schema_registry=load_registry_settings(env, LOCAL_HOSTS, ids_file=home / "registry-ids.json"),
    )
