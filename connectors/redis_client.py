"""The one way to build a Redis client: address, AUTH and TLS from the settings.

Failures become :class:`RedisClientError` with one clear line that names the address and the
user, never the password.
"""

from __future__ import annotations

from typing import Any

import redis

from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StreamscoreError


class RedisClientError(StreamscoreError):
    """Redis refused us or did not answer."""


def redis_kwargs(settings: Settings, socket_timeout_s: float = 2.0) -> dict[str, Any]:
    """Keyword arguments of ``redis.Redis`` for the settings (the password in clear: never print them)."""
    sec = settings.redis_security
    kwargs: dict[str, Any] = {"host": settings.redis.host, "port": settings.redis.port,
                              "socket_timeout": socket_timeout_s, "socket_connect_timeout": socket_timeout_s}
    if sec.password:
        kwargs["password"] = sec.password.reveal()
        if sec.username:
            kwargs["username"] = sec.username
    if sec.tls:
        kwargs.update({"ssl": True, "ssl_cert_reqs": "required", "ssl_check_hostname": True})  # redis-py 5: off
        if sec.ca_file:
            kwargs["ssl_ca_certs"] = str(sec.ca_file)
    return kwargs


def redis_client(settings: Settings, **overrides) -> redis.Redis:
    return redis.Redis(**(redis_kwargs(settings) | overrides))


def server_info(settings: Settings, client: redis.Redis | None = None) -> dict:
    """PING, then INFO server; every failure is one RedisClientError line without secrets."""
    client = client or redis_client(settings)
    where = f"Redis at {settings.redis}" + (" (TLS)" if settings.redis_security.tls else "")
    user = settings.redis_security.username or "default"
    try:
        client.ping()
        return client.info("server")
    except redis.AuthenticationError as exc:
        hint = "set STREAMSCORE_REDIS_PASSWORD_FILE" if not settings.redis_security.password else \
            "check STREAMSCORE_REDIS_USERNAME / STREAMSCORE_REDIS_PASSWORD_FILE"
        raise RedisClientError(f"{where} refused user {user!r}: {_first_line(exc)}; {hint}") from exc
    except redis.ResponseError as exc:
        raise RedisClientError(f"{where} refused the request as user {user!r}: {_first_line(exc)}") from exc
    except redis.RedisError as exc:
        raise RedisClientError(f"{where} does not answer: {type(exc).__name__}: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
