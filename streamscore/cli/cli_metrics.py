"""Prometheus metrics of ``streamscore produce`` and ``consume`` (``--metrics-port``), names as in docs/metrics.md.

Each command owns one :class:`CliMetrics` on a private registry (no process-wide globals, so tests
and several commands in one process do not collide) and serves it on 127.0.0.1 while it runs::

    with serve_metrics(args.metrics_port) as metrics:
        metrics.produced(topic, 1000)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, start_http_server

from streamscore.foundation.errors import StreamscoreError

METRICS_HOST = "127.0.0.1"
T = TypeVar("T")


class MetricsServerError(StreamscoreError):
    """The metrics endpoint cannot be served (the port is taken, say)."""


class CliMetrics:
    """Counters of records produced and consumed, and of failures by reason."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._produced = Counter("streamscore_produced", "records delivered (committed) to Kafka",
                                 ["topic"], registry=self.registry)
        self._produce_errors = Counter("streamscore_produce_errors", "records that failed to be produced",
                                       ["topic", "reason"], registry=self.registry)
        self._consumed = Counter("streamscore_consumed", "records read", ["topic"], registry=self.registry)
        self._consume_errors = Counter("streamscore_consume_errors", "consume errors",
                                       ["topic", "reason"], registry=self.registry)

    def produced(self, topic: str, count: int = 1) -> None:
        if count > 0:
            self._produced.labels(topic=topic).inc(count)

    def produce_failed(self, topic: str, reason: str, count: int = 1) -> None:
        self._produce_errors.labels(topic=topic, reason=reason).inc(max(count, 1))

    def consumed(self, topic: str, count: int = 1) -> None:
        if count > 0:
            self._consumed.labels(topic=topic).inc(count)

    def consume_failed(self, topic: str, reason: str) -> None:
        self._consume_errors.labels(topic=topic, reason=reason).inc()


def error_reason(exc: BaseException) -> str:
    """A short, bounded reason label for an exception (never its message: no payloads in labels)."""
    from streamscore.foundation.errors import SerdeError

    if isinstance(exc, SerdeError):
        return "encode"
    name = type(exc).__name__
    if name == "KafkaClientError":
        return "kafka"
    if name == "InputError":
        return "input"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "other"


class DeliveryCounter:
    """Counts what a ``produce_transactionally`` run pulled and delivered, into a :class:`CliMetrics`.

    Use it as the run's progress callback (cumulative counts per commit become increments) and wrap
    the items with :meth:`count_pulled`; on a failure, :meth:`failed` counts what was never delivered.
    """

    def __init__(self, metrics: CliMetrics, topic: str, echo: Callable[[int, float], None] | None = None):
        self.metrics, self.topic, self.echo = metrics, topic, echo
        self.pulled = self.delivered = 0

    def __call__(self, produced: int, elapsed: float) -> None:
        total = abs(produced)  # the final call passes -total
        self.metrics.produced(self.topic, total - self.delivered)
        self.delivered = max(self.delivered, total)
        if self.echo is not None:
            self.echo(produced, elapsed)

    def count_pulled(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, counting each one taken; a record whose preparation raises counts as taken."""
        iterator = iter(items)
        while True:
            self.pulled += 1
            try:
                item = next(iterator)
            except StopIteration:
                self.pulled -= 1
                return
            yield item

    def failed(self, exc: BaseException) -> None:
        self.metrics.produce_failed(self.topic, error_reason(exc), self.pulled - self.delivered)


def metrics_port(raw: str) -> int:
    """argparse type of ``--metrics-port``."""
    import argparse

    try:
        port = int(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a port number: {raw!r}") from exc
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 1-65535")
    return port


@contextmanager
def serve_metrics(port: int | None) -> Iterator[CliMetrics | None]:
    """Serve a fresh :class:`CliMetrics` on 127.0.0.1:``port`` for the block; None when no port is given."""
    if port is None:
        yield None
        return
    metrics = CliMetrics()
    try:
        server, thread = start_http_server(port, addr=METRICS_HOST, registry=metrics.registry)
    except OSError as exc:
        raise MetricsServerError(f"--metrics-port {port}: cannot serve metrics on {METRICS_HOST}:{port} "
                                 f"({exc.strerror or exc})") from exc
    try:
        yield metrics
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
