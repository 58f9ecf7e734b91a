"""Writing records in Kafka transactions: each committed exactly once, whatever the broker does meanwhile."""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Producer

from connectors.kafka_clients import transactional_producer
from connectors.kafka_errors import KafkaClientError
from streamscore.foundation.config import Settings


class StreamMark(enum.Enum):
    """Items of a ``produce_transactionally`` stream that are not records."""

    COMMIT_NOW = "commit now"


Record = tuple[bytes, bytes, int | None]
"""A record to write: (key, value, Kafka timestamp in ms; None: the broker's send time)."""

COMMIT_NOW = StreamMark.COMMIT_NOW
"""An item of ``produce_transactionally``'s stream that commits the open transaction at once: a source
that waits between its records (labels written as they come due) makes what it sent visible first."""


@dataclass(frozen=True)
class TransactionPlan:
    """How ``produce_transactionally`` paces and groups its records, and whom it tells what it did."""

    rate: float = 0.0  # records/s; 0: as fast as possible
    transaction_size: int = 1000
    throttle: Callable[[], None] | None = None  # called before each record (a rate ceiling)
    producer_config: Mapping[str, object] | None = None  # added to the producer's (e.g. ``message.max.bytes``)
    progress: Callable[[int, float], None] | None = None  # (records so far, seconds) per commit; negated at the end
    on_commit: Callable[[list[Record]], None] | None = None  # each committed transaction's records, once
    # a transaction is committed before it is this old, full or not: a slow rate (10 records/s in transactions
    # of 1000) would otherwise keep one open past the producer's transaction.timeout.ms (60 s), and the broker
    # would abort it under the sender
    max_open_s: float = 10.0


def produce_transactionally(settings: Settings, topic: str, items: Iterable[Record | StreamMark],
                            plan: TransactionPlan = TransactionPlan()) -> dict:
    """Write (key, value, timestamp_ms) triples in transactions of ``plan.transaction_size``, paced at
    ``plan.rate``/s.

    The Kafka timestamp is the event time (None: the broker's send time), so event-time
    consumers such as the drift sidecar can window on it.

    Items are pulled lazily, so a generator can stamp each record with its send time; an item
    ``COMMIT_NOW`` commits the open transaction before the next record.
    Each record is committed exactly once: a commit that times out (broker restarting) is
    retried, and a transaction the broker aborted is sent again whole. Any other exception
    aborts the open transaction: nothing of it becomes visible.
    """
    writer = _TransactionWriter(settings, topic, dict(plan.producer_config or {}))
    writer.on_commit = plan.on_commit
    began = time.monotonic()
    try:
        produced = _write_all(writer, items, plan, began)
    except BaseException:
        writer.abort()
        raise
    seconds = time.monotonic() - began
    if plan.progress:
        plan.progress(-produced, seconds)
    return {"produced": produced, "transactions": writer.transactions, "seconds": seconds,
            "rate": produced / seconds if seconds > 0 else 0.0, "resent_transactions": writer.resent,
            "producer_restarts": writer.restarts}


def _write_all(writer: _TransactionWriter, items: Iterable[Record | StreamMark], plan: TransactionPlan,
               began: float) -> int:
    """Every item through ``writer``, the last transaction committed: the number of records written."""
    produced = 0
    for item in items:
        if item is COMMIT_NOW:
            writer.commit()
            continue
        if plan.throttle:
            plan.throttle()
        writer.add(*item)
        produced += 1
        old_by_next = writer.open_s() + _ahead(plan.rate, produced, began) >= plan.max_open_s
        if len(writer.pending) >= plan.transaction_size or old_by_next:
            writer.commit()
            if plan.progress:
                plan.progress(produced, time.monotonic() - began)
        _pace(plan.rate, produced, began)
    writer.commit()
    return produced


def _pace(rate: float, produced: int, began: float) -> None:
    """Sleep until ``produced`` records are due at ``rate``/s since ``began`` (0: as fast as possible)."""
    ahead = _ahead(rate, produced, began)
    if ahead > 0:
        time.sleep(ahead)


def _ahead(rate: float, produced: int, began: float) -> float:
    """Seconds until the record after ``produced`` is due at ``rate``/s since ``began`` (0: as fast as possible)."""
    return max(0.0, produced / rate - (time.monotonic() - began)) if rate > 0 else 0.0


class _TransactionWriter:
    """One open transaction at a time, its records kept until committed so it can be sent again.

    A transaction the broker aborted is sent again on the same producer once; if the resent one
    fails too, the producer's own state is suspect (after a broker restart librdkafka can keep a
    partition's leader as unknown, "new leader -1 not found in cache", until every message times
    out), so the records go again on a fresh producer under the same transactional id.
    """

    RETRY_DEADLINE_S = 300.0  # > 2 transaction timeouts (60 s each) plus a fresh producer's start

    def __init__(self, settings: Settings, topic: str, producer_config: dict,
                 producer_factory: Callable[..., Producer] = transactional_producer):
        self.settings, self.topic, self.producer_config = settings, topic, producer_config
        self.producer_factory = producer_factory
        self.transactional_id = f"streamscore-cli-{uuid.uuid4().hex[:12]}"
        self.producer = producer_factory(settings, self.transactional_id, **producer_config)
        self.pending: list[Record] = []
        self.transactions = self.resent = self.restarts = 0
        self._resent_on_this_producer = False
        self._deadline = self._opened = 0.0
        self.on_commit: Callable[[list[Record]], None] | None = None

    def add(self, key: bytes, value: bytes, timestamp_ms: int | None) -> None:
        if not self.pending:
            self._begin()
        self.pending.append((key, value, timestamp_ms))
        _produce(self.producer, self.topic, key, value, timestamp_ms)

    def open_s(self) -> float:
        """How long the open transaction has been open (0: none is)."""
        return time.monotonic() - self._opened if self.pending else 0.0

    def commit(self) -> None:
        """Commit the open transaction, whatever the broker does meanwhile (restarts included)."""
        if not self.pending:
            return
        self._deadline = time.monotonic() + self.RETRY_DEADLINE_S
        while True:
            try:
                self.producer.commit_transaction(30)
                break
            except KafkaException as exc:
                error = exc.args[0]
                if time.monotonic() > self._deadline:
                    raise KafkaClientError(f"commit failed: {error.str()}") from exc
                if error.txn_requires_abort() and not self._resent_on_this_producer:
                    self._resend()
                elif error.txn_requires_abort() or not error.retriable():
                    self._restart_until_deadline()  # resent and failed again, or fatal: fence it, start afresh
        committed, self.pending = self.pending, []
        self.transactions += 1
        self._resent_on_this_producer = False
        if self.on_commit is not None:
            self.on_commit(committed)

    def _resend(self) -> None:
        """The broker aborted the transaction (e.g. it restarted): abort ours and send it again."""
        try:
            self.producer.abort_transaction(30)
        except KafkaException:
            self._restart_until_deadline()
            return
        self.resent += 1
        self._resent_on_this_producer = True
        self._send_pending()

    def _restart_until_deadline(self) -> None:
        """A fresh producer, tried again each second while the broker cannot start one (its coordinator
        still coming back), until the commit's deadline."""
        while True:
            try:
                self._restart_producer()
                return
            except (KafkaClientError, KafkaException) as exc:
                if time.monotonic() > self._deadline:
                    raise KafkaClientError(f"cannot start a fresh transactional producer: {exc}") from exc
                time.sleep(1.0)

    def _restart_producer(self) -> None:
        """A new producer under the same transactional id: the broker aborts what the old one left open."""
        try:
            self.producer.purge()  # the old producer's queued records are sent again by the new one
        except KafkaException:
            pass  # a producer in a fatal state: the new one fences it anyway
        self.producer = self.producer_factory(self.settings, self.transactional_id, **self.producer_config)
        self.resent += 1
        self.restarts += 1
        self._resent_on_this_producer = False
        self._send_pending()

    def _begin(self) -> None:
        self._opened = time.monotonic()
        try:
            self.producer.begin_transaction()
        except KafkaException as exc:  # a producer in an error state (fatal, fenced) cannot open one
            raise KafkaClientError(f"cannot begin a transaction on {self.topic!r}: "
                                   f"{exc.args[0].str() if exc.args else exc}") from exc

    def _send_pending(self) -> None:
        self._begin()
        for key, value, timestamp_ms in self.pending:
            _produce(self.producer, self.topic, key, value, timestamp_ms)

    def abort(self) -> None:
        if self.pending:
            try:
                self.producer.abort_transaction(10)
            except KafkaException:
                pass  # the transaction times out on the broker; nothing of it is visible
        self.pending = []


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, timestamp_ms: int | None) -> None:
    while True:
        try:
            producer.produce(topic, value, key=key, timestamp=timestamp_ms or 0)
            return
        except BufferError:  # local queue full: let deliveries drain
            producer.poll(0.05)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError._UNKNOWN_TOPIC:
                raise KafkaClientError(f"topic {topic!r} does not exist (create it: streamscore topics create, "
                                       f"or name an existing topic)") from exc
            raise KafkaClientError(f"cannot produce to {topic!r}: {error.str()}") from exc
