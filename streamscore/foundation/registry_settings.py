"""Schema Registry settings: where the registry is, how to log in to it, which Java runs the local one.

Every command reads and writes schemas through one Confluent-compatible REST API (Apicurio
Registry's ``/apis/ccompat/v7`` locally; Confluent Schema Registry, Karapace or Redpanda when
external)::

    STREAMSCORE_SCHEMA_REGISTRY_URL            default http://127.0.0.1:8085/apis/ccompat/v7
    STREAMSCORE_SCHEMA_REGISTRY_MODE           local (the stack runs Apicurio) | external
    STREAMSCORE_SCHEMA_REGISTRY_USERNAME       HTTP basic auth (external registries), with
    STREAMSCORE_SCHEMA_REGISTRY_PASSWORD_FILE  a file holding the password (preferred), or
    STREAMSCORE_SCHEMA_REGISTRY_PASSWORD       the password itself
    STREAMSCORE_SCHEMA_REGISTRY_CA_FILE        PEM CA bundle for an https registry
    STREAMSCORE_JOBS_SCHEMA_REGISTRY_URL       the registry as the Flink cluster reaches it (default: the URL)
    STREAMSCORE_REGISTRY_JAVA                  the Java 21+ that runs the local Apicurio (default: found)
    STREAMSCORE_REGISTRY_VERSION               Apicurio Registry version (default 3.3.3)
    STREAMSCORE_REGISTRY_HEAP                  its heap (default 256m)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args
from urllib.parse import urlsplit

from streamscore.foundation.errors import ConfigError
from streamscore.foundation.security import MASK, PREFIX, Secret, read_secret

DEFAULT_REGISTRY_URL = "http://127.0.0.1:8085/apis/ccompat/v7"
LOCAL_API_PATH = "/apis/ccompat/v7"  # Apicurio's Confluent-compatible API
DEFAULT_APICURIO_VERSION = "3.3.3"
WireDecoder = Literal["jvm", "python"]  # where a scoring job decodes a bound model's Confluent-wire records


@dataclass(frozen=True)
class RegistrySettings:
    """The Schema Registry every command talks to. Build with :func:`load_registry_settings`."""

    url: str
    mode: str  # local | external
    username: str | None = None
    password: Secret | None = None
    password_file: Path | None = None  # where the password came from (jobs read it there), if from a file
    ca_file: Path | None = None
    java: str | None = None
    version: str = DEFAULT_APICURIO_VERSION
    heap: str = "256m"
    jobs_url: str | None = None  # as the Flink cluster reaches it; None: the same URL
    decoder: WireDecoder = "jvm"  # STREAMSCORE_DECODER: jvm (jobs/udf's decode_confluent) or python (fastavro)
    # STREAMSCORE_JOBS_DECODER_JAR: the JVM decoder's jar where the cluster's image has it (a file: URI);
    # None: built by Maven at submit and shipped with the job
    jobs_decoder_jar: str | None = None
    ids_file: Path | None = None  # where commands remember the ids they saw (connectors.schema_memory); None: nowhere

    @property
    def url_for_jobs(self) -> str:
        return self.jobs_url or self.url

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    def __str__(self) -> str:
        auth = f" user={self.username} password={MASK}" if self.username else ""
        return f"{self.url} ({self.mode}){auth}"


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(PREFIX + name)
    return value.strip() if value is not None and value.strip() else None


def _url(env: Mapping[str, str], name: str = "SCHEMA_REGISTRY_URL") -> str | None:
    """``SCHEMA_REGISTRY_URL`` (its default when unset) or another registry URL setting (None when unset)."""
    raw = _get(env, name)
    if raw is None and name != "SCHEMA_REGISTRY_URL":
        return None
    raw = (raw or DEFAULT_REGISTRY_URL).rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{PREFIX}{name} must be http(s)://HOST:PORT[/path], got {raw!r}")
    if parts.username or parts.password:  # never echoed: it would carry the password into errors and jobs
        raise ConfigError(f"{PREFIX}{name} must not carry credentials: use "
                          f"{PREFIX}SCHEMA_REGISTRY_USERNAME and {PREFIX}SCHEMA_REGISTRY_PASSWORD_FILE")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ConfigError(f"{PREFIX}{name} has a bad port: {raw!r}") from exc
    return raw


def _check_login_transport(settings: RegistrySettings, local_hosts: tuple[str, ...]) -> None:
    """Basic auth only over HTTPS, or plain HTTP to this machine (the clients' URL and the jobs' URL)."""
    if not settings.username:
        return
    for name, url in (("SCHEMA_REGISTRY_URL", settings.url), ("JOBS_SCHEMA_REGISTRY_URL", settings.jobs_url)):
        host = urlsplit(url).hostname if url else None
        if url and url.startswith("http://") and host not in local_hosts:
            raise ConfigError(f"{PREFIX}{name}: basic auth to {host} over plain HTTP would send the "
                              f"password readable on the network; use https://")


def _mode(env: Mapping[str, str], url: str, local_hosts: tuple[str, ...]) -> str:
    mode = (_get(env, "SCHEMA_REGISTRY_MODE") or "local").lower()
    if mode not in ("local", "external"):
        raise ConfigError(f"{PREFIX}SCHEMA_REGISTRY_MODE must be 'local' or 'external', got {mode!r}")
    if mode == "local":
        parts = urlsplit(url)
        if parts.hostname not in local_hosts or parts.scheme != "http" or parts.path != LOCAL_API_PATH:
            raise ConfigError(f"{PREFIX}SCHEMA_REGISTRY_MODE=local runs Apicurio at http://127.0.0.1:PORT"
                              f"{LOCAL_API_PATH}, not {url}; set {PREFIX}SCHEMA_REGISTRY_MODE=external "
                              f"for a registry elsewhere")
    return mode


def _jobs_decoder_jar(env: Mapping[str, str]) -> str | None:
    raw = _get(env, "JOBS_DECODER_JAR")
    if raw is None:
        return None
    if raw.startswith("/"):
        raw = "file://" + raw
    if not raw.startswith("file:///") or not raw.endswith(".jar"):
        raise ConfigError(f"{PREFIX}JOBS_DECODER_JAR must be the jar's absolute path on the Flink cluster "
                          f"(file:///.../streamscore-udf.jar), got {raw!r}")
    return raw


def _decoder(env: Mapping[str, str]) -> WireDecoder:
    decoder = (_get(env, "DECODER") or "jvm").lower()
    if decoder not in get_args(WireDecoder):
        raise ConfigError(f"{PREFIX}DECODER must be one of {', '.join(get_args(WireDecoder))}, got {decoder!r}")
    return decoder


def load_registry_settings(env: Mapping[str, str], local_hosts: tuple[str, ...],
                           ids_file: Path | None = None) -> RegistrySettings:
    url = _url(env)
    ca_raw = _get(env, "SCHEMA_REGISTRY_CA_FILE")
    ca_file = Path(ca_raw).expanduser() if ca_raw else None
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(f"{PREFIX}SCHEMA_REGISTRY_CA_FILE: no such file {ca_file}")
    password_file = _get(env, "SCHEMA_REGISTRY_PASSWORD_FILE")
    settings = RegistrySettings(
        url=url, mode=_mode(env, url, local_hosts), username=_get(env, "SCHEMA_REGISTRY_USERNAME"),
        password=read_secret(env, "SCHEMA_REGISTRY_PASSWORD"),
        password_file=Path(password_file).expanduser().resolve() if password_file else None,
        ca_file=ca_file.resolve() if ca_file else None, java=_get(env, "REGISTRY_JAVA"),
        version=_get(env, "REGISTRY_VERSION") or DEFAULT_APICURIO_VERSION, heap=_get(env, "REGISTRY_HEAP") or "256m",
        jobs_url=_url(env, "JOBS_SCHEMA_REGISTRY_URL"), decoder=_decoder(env), jobs_decoder_jar=_jobs_decoder_jar(env),
        ids_file=ids_file)
    if bool(settings.username) != bool(settings.password):
        raise ConfigError(f"{PREFIX}SCHEMA_REGISTRY_USERNAME and {PREFIX}SCHEMA_REGISTRY_PASSWORD_FILE "
                          f"(or _PASSWORD) go together")
    if settings.username and ":" in settings.username:
        raise ConfigError(f"{PREFIX}SCHEMA_REGISTRY_USERNAME must not contain ':' (HTTP basic auth)")
    _check_login_transport(settings, local_hosts)
    return settings
