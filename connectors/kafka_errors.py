"""A wrong password or an untrusted certificate fails at once, with one clear message.

librdkafka treats a failed SASL or TLS handshake as transient: blocking calls just time out
("broker transport failure") after their full timeout. With security on, every client gets a
:class:`ConnectionWatch` as its ``error_cb``; :func:`blocking_call` runs a blocking call in
short steps, serves the callbacks between them, and raises as soon as the broker refused us.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import KafkaError, KafkaException

from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StreamscoreError

T = TypeVar("T")
_REFUSALS = {KafkaError._AUTHENTICATION, KafkaError._SSL}
_TIMEOUTS = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT}


class KafkaClientError(StreamscoreError):
    """A Kafka operation failed (broker unreachable, topic missing, transaction aborted...).

    Raised ``from`` librdkafka's own exception where there is one, so its error stays reachable:
    :attr:`kafka_error` is that ``KafkaError`` and :attr:`retriable` its verdict.
    """

    @property
    def kafka_error(self):
        """librdkafka's ``KafkaError`` behind this one, or None (found along the cause chain)."""
        cause = self.__cause__
        while cause is not None:
            error = cause.args[0] if cause.args else None
            if hasattr(error, "retriable") and hasattr(error, "code"):
                return error
            if hasattr(cause, "retriable") and hasattr(cause, "code"):
                return cause
            cause = cause.__cause__
        return None

    @property
    def retriable(self) -> bool:
        """librdkafka's verdict that the operation may succeed if tried again (False when unknown)."""
        error = self.kafka_error
        return bool(error is not None and error.retriable())


class KafkaAuthError(KafkaClientError):
    """The broker refused our credentials or we refused its certificate."""


class ConnectionWatch:
    """An ``error_cb`` that remembers the last authentication or TLS failure."""

    def __init__(self) -> None:
        self.refusal: str | None = None

    def __call__(self, error: KafkaError) -> None:
        if error.code() in _REFUSALS:
            self.refusal = error.str()


def watch_of(conf: dict) -> ConnectionWatch | None:
    cb = conf.get("error_cb")
    return cb if isinstance(cb, ConnectionWatch) else None


def refused_message(settings: Settings, refusal: str) -> str:
    sec = settings.kafka_security
    who = f"user {sec.username!r} ({sec.sasl_mechanism}) over {sec.protocol}" if sec.uses_sasl else sec.protocol
    return (f"Kafka at {settings.kafka_bootstrap} refused the connection as {who}: {refusal}; "
            f"check the STREAMSCORE_KAFKA_SASL_* / STREAMSCORE_KAFKA_SSL_* settings")


def blocking_call(settings: Settings, client, watch: ConnectionWatch | None, call: Callable[[float], T],
                  timeout_s: float, step_s: float = 1.0) -> T:
    """``call(timeout)`` until it succeeds or ``timeout_s`` passes; a refusal raises KafkaAuthError at once.

    Without a watch (PLAINTEXT) this is exactly ``call(timeout_s)``.
    """
    if watch is None:
        return call(timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return call(max(0.1, min(step_s, remaining)))
        except KafkaException as exc:
            client.poll(0)  # serve error_cb
            if watch.refusal:
                raise KafkaAuthError(refused_message(settings, watch.refusal)) from exc
            error = exc.args[0]
            if not (error.code() in _TIMEOUTS or error.retriable()) or time.monotonic() >= deadline:
                raise  # as the single call would have, after the same time
