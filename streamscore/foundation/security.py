"""Kafka and Redis security settings: read once with the other settings, secrets never printable.

Kafka (every client: confluent-kafka producers, consumers and admin, the CLI, the Flink jobs):

    STREAMSCORE_KAFKA_SECURITY_PROTOCOL    PLAINTEXT (default) | SSL | SASL_SSL | SASL_PLAINTEXT
    STREAMSCORE_KAFKA_SASL_MECHANISM       SCRAM-SHA-512 (default) | SCRAM-SHA-256 | PLAIN
    STREAMSCORE_KAFKA_SASL_USERNAME
    STREAMSCORE_KAFKA_SASL_PASSWORD_FILE   a file holding the password (preferred), or
    STREAMSCORE_KAFKA_SASL_PASSWORD        the password itself
    STREAMSCORE_KAFKA_SSL_CA_FILE          PEM CA bundle that signed the broker's certificate
    STREAMSCORE_KAFKA_SSL_CERT_FILE, STREAMSCORE_KAFKA_SSL_KEY_FILE   client certificate and key (PEM, mTLS)
    STREAMSCORE_KAFKA_SSL_ENDPOINT_IDENTIFICATION   https (default: the broker's name is checked) | none
    STREAMSCORE_KAFKA_BROKER_CERT_FILE, STREAMSCORE_KAFKA_BROKER_KEY_FILE   the local broker's own (stack only)

Redis:

    STREAMSCORE_REDIS_USERNAME, STREAMSCORE_REDIS_PASSWORD_FILE or STREAMSCORE_REDIS_PASSWORD
    STREAMSCORE_REDIS_TLS (0/1), STREAMSCORE_REDIS_CA_FILE

A password is held in a :class:`Secret`, whose ``repr``/``str`` are ``***``; only
``reveal()`` gives the value, and only the code that hands it to a client calls it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streamscore.foundation.errors import ConfigError

PREFIX = "STREAMSCORE_"
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
MASK = "***"


class Secret:
    """A value that never prints: ``repr``, ``str`` and f-strings give ``***``."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASK

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):
        raise TypeError("a Secret is not serialisable")


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: Secret | None = None
    password_file: Path | None = None  # where the password came from (jobs read it there), if from a file
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    endpoint_identification: bool = True
    broker_cert_file: Path | None = None
    broker_key_file: Path | None = None

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def __str__(self) -> str:
        parts = [self.protocol]
        if self.uses_sasl:
            parts += [self.sasl_mechanism, f"user={self.username}", f"password={MASK}"]
        if self.uses_tls:
            parts.append(f"ca={self.ca_file or 'system default'}")
            if self.cert_file:
                parts.append(f"client-cert={self.cert_file}")
            if not self.endpoint_identification:
                parts.append("no-hostname-check")
        return " ".join(parts)


@dataclass(frozen=True)
class RedisSecurity:
    username: str | None = None
    password: Secret | None = None
    password_file: Path | None = None  # where the password came from (jobs read it there), if from a file
    tls: bool = False
    ca_file: Path | None = None

    def __str__(self) -> str:
        auth = f"user={self.username or 'default'} password={MASK}" if self.password else "no auth"
        tls = f"tls ca={self.ca_file or 'system default'}" if self.tls else "no tls"
        return f"{auth}, {tls}"


@dataclass(frozen=True)
class ClientAuth:
    """How a job's Python workers log in to Kafka and Redis, in names and file paths only.

    The one shape a job carries (inside its JSON config): passwords are read from their files on
    the TaskManager, never put here. :meth:`from_security` derives it from the settings.
    """

    kafka_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str | None = None
    kafka_password_file: str | None = None
    kafka_ca_file: str | None = None
    kafka_cert_file: str | None = None
    kafka_key_file: str | None = None
    kafka_endpoint_identification: bool = True
    redis_username: str | None = None
    redis_password_file: str | None = None
    redis_ca_file: str | None = None

    @classmethod
    def from_security(cls, kafka: KafkaSecurity, redis: RedisSecurity) -> ClientAuth:
        def path(value: Path | None) -> str | None:
            return str(Path(value).resolve()) if value else None

        return cls(kafka_protocol=kafka.protocol, kafka_sasl_mechanism=kafka.sasl_mechanism,
                   kafka_username=kafka.username,
                   kafka_password_file=path(kafka.password_file) if kafka.password else None,
                   kafka_ca_file=path(kafka.ca_file), kafka_cert_file=path(kafka.cert_file),
                   kafka_key_file=path(kafka.key_file), kafka_endpoint_identification=kafka.endpoint_identification,
                   redis_username=redis.username,
                   redis_password_file=path(redis.password_file) if redis.password else None,
                   redis_ca_file=path(redis.ca_file))

    @property
    def kafka_uses_sasl(self) -> bool:
        return self.kafka_protocol.startswith("SASL_")

    def kafka_env(self, bootstrap: str) -> dict[str, str]:
        """``STREAMSCORE_KAFKA_*`` settings for a confluent-kafka client in a job's Python worker."""
        fields = {"BOOTSTRAP": bootstrap, "MODE": "external", "SECURITY_PROTOCOL": self.kafka_protocol,
                  "SASL_MECHANISM": self.kafka_sasl_mechanism, "SASL_USERNAME": self.kafka_username,
                  "SASL_PASSWORD_FILE": self.kafka_password_file, "SSL_CA_FILE": self.kafka_ca_file,
                  "SSL_CERT_FILE": self.kafka_cert_file, "SSL_KEY_FILE": self.kafka_key_file,
                  "SSL_ENDPOINT_IDENTIFICATION": "https" if self.kafka_endpoint_identification else "none"}
        return {f"{PREFIX}KAFKA_{name}": value for name, value in fields.items() if value}


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(PREFIX + name)
    return value.strip() if value is not None and value.strip() else None


def read_secret(env: Mapping[str, str], name: str) -> Secret | None:
    """``NAME`` or ``NAME_FILE`` (the file's first line); both at once is an error."""
    direct, path = env.get(PREFIX + name), _get(env, name + "_FILE")
    if direct and path:
        raise ConfigError(f"set {PREFIX}{name} or {PREFIX}{name}_FILE, not both")
    if path is None:
        return Secret(direct) if direct else None
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"{PREFIX}{name}_FILE: cannot read {path}: {reason}") from exc
    value = text.splitlines()[0] if text.splitlines() else ""
    if not value:
        raise ConfigError(f"{PREFIX}{name}_FILE: {path} is empty")
    return Secret(value)


def _secret_file(env: Mapping[str, str], name: str) -> Path | None:
    """The resolved ``NAME_FILE`` path of a secret read by :func:`read_secret`, or None."""
    raw = _get(env, name + "_FILE")
    return Path(raw).expanduser().resolve() if raw else None


def _file(env: Mapping[str, str], name: str) -> Path | None:
    raw = _get(env, name)
    if raw is None:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError(f"{PREFIX}{name}: no such file {path}")
    return path.resolve()


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (_get(env, name) or default).upper()
    if value not in allowed:
        raise ConfigError(f"{PREFIX}{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (_get(env, name) or ("1" if default else "0")).lower()
    if raw not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
        raise ConfigError(f"{PREFIX}{name} must be 1/0 (true/false), got {raw!r}")
    return raw in ("1", "true", "yes", "on")


def load_kafka_security(env: Mapping[str, str]) -> KafkaSecurity:
    endpoint = (_get(env, "KAFKA_SSL_ENDPOINT_IDENTIFICATION") or "https").lower()
    if endpoint not in ("https", "none"):
        raise ConfigError(f"{PREFIX}KAFKA_SSL_ENDPOINT_IDENTIFICATION must be https or none, got {endpoint!r}")
    security = KafkaSecurity(
        protocol=_choice(env, "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", PROTOCOLS),
        sasl_mechanism=_choice(env, "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", MECHANISMS),
        username=_get(env, "KAFKA_SASL_USERNAME"),
        password=read_secret(env, "KAFKA_SASL_PASSWORD"),
        password_file=_secret_file(env, "KAFKA_SASL_PASSWORD"),
        ca_file=_file(env, "KAFKA_SSL_CA_FILE"),
        cert_file=_file(env, "KAFKA_SSL_CERT_FILE"),
        key_file=_file(env, "KAFKA_SSL_KEY_FILE"),
        endpoint_identification=endpoint == "https",
        broker_cert_file=_file(env, "KAFKA_BROKER_CERT_FILE"),
        broker_key_file=_file(env, "KAFKA_BROKER_KEY_FILE"),
    )
    _check_kafka(security)
    return security


def _check_kafka(security: KafkaSecurity) -> None:
    if security.uses_sasl and not (security.username and security.password):
        raise ConfigError(f"{PREFIX}KAFKA_SECURITY_PROTOCOL={security.protocol} needs "
                          f"{PREFIX}KAFKA_SASL_USERNAME and {PREFIX}KAFKA_SASL_PASSWORD_FILE (or _PASSWORD)")
    if bool(security.cert_file) != bool(security.key_file):
        raise ConfigError(f"{PREFIX}KAFKA_SSL_CERT_FILE and {PREFIX}KAFKA_SSL_KEY_FILE go together")
    if bool(security.broker_cert_file) != bool(security.broker_key_file):
        raise ConfigError(f"{PREFIX}KAFKA_BROKER_CERT_FILE and {PREFIX}KAFKA_BROKER_KEY_FILE go together")
    if security.username and any(c in security.username for c in '"\\,=[]'):
        raise ConfigError(f"{PREFIX}KAFKA_SASL_USERNAME must not contain quotes, backslashes, ',', '=' or brackets")


def load_redis_security(env: Mapping[str, str]) -> RedisSecurity:
    security = RedisSecurity(
        username=_get(env, "REDIS_USERNAME"),
        password=read_secret(env, "REDIS_PASSWORD"),
        password_file=_secret_file(env, "REDIS_PASSWORD"),
        tls=_flag(env, "REDIS_TLS", False),
        ca_file=_file(env, "REDIS_CA_FILE"),
    )
    if security.username and not security.password:
        raise ConfigError(f"{PREFIX}REDIS_USERNAME needs {PREFIX}REDIS_PASSWORD_FILE (or _PASSWORD)")
    if security.password and any(c.isspace() for c in security.password.reveal()):
        raise ConfigError(f"{PREFIX}REDIS_PASSWORD must not contain whitespace")
    if security.username and not security.username.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{PREFIX}REDIS_USERNAME may hold letters, digits, '-' and '_' only")
    return security


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (created 0600, never world-readable for an instant)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT: narrow it before the secret goes in
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
