"""End-to-end traffic through a running scoring job: produce (with malformed records), collect, account.

``run_traffic`` starts a read_committed collector on the scored and dead-letter topics, produces
demo events (each stamped with its send time as event time, ~1 % replaced by malformed payloads),
and waits until every produced record is accounted for. Used by ``streamscore demo``, the
end-to-end tests and the latency figures.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import TopicPartition

from connectors.kafka_clients import KafkaClientError, existing_topics
from connectors.kafka_reads import read_committed_consumer
from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from schemas import SerdeError
from schemas.malformed import MalformedPayload
from streamscore.foundation.config import Settings
from streamscore.harness.fault_kinds import FRAUD_MODEL
from streamscore.harness.traffic_wire import EventSource, OutputTopics, TrafficWire, confluent_traffic


@dataclass
class TrafficReport:
    produced: int = 0
    valid_ids: list[str] = field(default_factory=list)
    malformed: list[MalformedPayload] = field(default_factory=list)
    malformed_keys: list[str] = field(default_factory=list)  # the Kafka key (event id) each was sent with
    scored: dict[str, dict] = field(default_factory=dict)
    scored_duplicates: int = 0
    dead_letters: list[dict] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    arrivals: list[tuple[int, float]] = field(default_factory=list)  # (event time, visible at) in ms
    produce_seconds: float = 0.0
    drain_seconds: float = 0.0
    recounted: int = 0  # times the live collector stalled and a fresh read_committed read took over

    @property
    def accounted(self) -> int:
        """Distinct ids scored plus dead letters read (a scored duplicate is not one more record; which
        record each dead letter is, and whether one came twice, only the identity accounting tells)."""
        return len(self.scored) + len(self.dead_letters)

    def latency_percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        values = np.percentile(np.asarray(self.latencies_ms), [50, 95, 99])
        return {"p50": float(values[0]), "p95": float(values[1]), "p99": float(values[2])}


class _Collector(threading.Thread):
    """Reads scored and dead-letter records from the current end of both topics."""

    def __init__(self, settings: Settings, topics: TrafficTopics, report: TrafficReport, plan: TrafficPlan,
                 start: list[TopicPartition] | None = None):
        super().__init__(daemon=True)
        self.report, self.id_prefix, self.topics, self.plan = report, plan.id_prefix, topics, plan
        self.scored_topic, self.dead_topic = topics.scored, topics.dead
        self.consumer = read_committed_consumer(settings, **{"enable.partition.eof": False})
        try:
            self.start_offsets = start or _end_offsets(self.consumer, settings, [topics.scored, topics.dead])
            self.consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset) for tp in self.start_offsets])
        except BaseException:
            self.consumer.close()  # never started: run() would not close it
            raise
        self.stop_event = threading.Event()
        self._scored, self._dead = plan.wire.scored, plan.wire.dead_letter

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                for msg in self.consumer.consume(num_messages=2000, timeout=0.2):
                    if msg.error() is None:
                        self._take(msg.topic(), msg.value(), time.time() * 1000.0)
        finally:
            self.consumer.close()

    def _take(self, topic: str, value: bytes, now_ms: float) -> None:
        try:
            record = (self._scored if topic == self.scored_topic else self._dead).decode(value)
        except SerdeError:
            return
        if topic != self.scored_topic:
            self.report.dead_letters.append(record)
            return
        event_id = record["event_id"]
        if not event_id.startswith(self.id_prefix):
            return
        if event_id in self.report.scored:
            self.report.scored_duplicates += 1
            return
        self.report.scored[event_id] = record
        self.report.latencies_ms.append(now_ms - record["event_time"])
        self.report.arrivals.append((record["event_time"], now_ms))


def _end_offsets(consumer, settings: Settings, topics: list[str]) -> list[TopicPartition]:
    counts = existing_topics(settings)
    assignment = []
    for topic in topics:
        if topic not in counts:
            raise KafkaClientError(f"topic {topic!r} does not exist at {settings.kafka_bootstrap}")
        for partition in range(counts[topic]):
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            assignment.append(TopicPartition(topic, partition, high))
    return assignment


def _payloads(plan: TrafficPlan, report: TrafficReport):
    """(key, value) pairs; event time = the moment the record is handed to the producer."""
    wire, malformed_every = plan.wire, plan.malformed_every
    for i, event in enumerate(plan.events()):
        event_id = event[wire.id_field]
        event[wire.time_field] = now_ms = int(time.time() * 1000)
        if malformed_every and i % malformed_every == malformed_every - 1:
            bad = wire.malformed(i // malformed_every, event)
            report.malformed.append(bad)
            report.malformed_keys.append(event_id)
            yield event_id.encode(), bad.payload, now_ms
        else:
            report.valid_ids.append(event_id)
            yield event_id.encode(), wire.encode(event), now_ms
        report.produced += 1


@dataclass(frozen=True)
class TrafficPlan:
    """What :func:`run_traffic` sends: ``count`` demo events with ids ``id_prefix`` + n, paced at ``rate``
    events/s (0: as fast as possible), every ``malformed_every``-th one malformed (0: none), in
    transactions of ``transaction_size``, with ``drift`` injected; accounted within ``timeout_s``.
    ``wire``: how its events are made and written (``streamscore.harness.traffic_wire``); None: the
    demo fraud model's, on the Confluent wire of the topics it runs on."""

    count: int
    id_prefix: str
    seed: int = 11
    rate: float = 0.0
    malformed_every: int = 100
    transaction_size: int = 100
    timeout_s: float = 180.0
    drift: Sequence = ()
    wire: TrafficWire | None = None

    def events(self) -> Iterator[dict]:
        """The plan's events, built by its wire's generator (the fraud events a chunk at a time)."""
        return self.wire.events(EventSource(self.count, self.seed, self.id_prefix, tuple(self.drift)))


@dataclass(frozen=True)
class TrafficTopics:
    """Where the traffic goes in and where its scored records and dead letters come out."""

    events: str
    scored: str
    dead: str

    @classmethod
    def of(cls, settings: Settings) -> TrafficTopics:
        """The settings' own events, scored and dead-letter topics."""
        return cls(settings.topic("events").name, settings.topic("scored").name, settings.topic("dead_letter").name)


def run_traffic(settings: Settings, plan: TrafficPlan, topics: TrafficTopics | None = None) -> TrafficReport:
    """Send ``plan`` to ``topics`` (default: the settings' own) and account for every event by id."""
    topics = topics or TrafficTopics.of(settings)
    if plan.wire is None:
        plan = dataclasses.replace(plan, wire=confluent_traffic(
            settings, FRAUD_MODEL, OutputTopics(topics.events, topics.scored, topics.dead)))
    id_prefix = plan.id_prefix
    report = TrafficReport()
    collector = _Collector(settings, topics, report, plan)
    collector.start()
    try:
        stats = produce_transactionally(settings, topics.events, _payloads(plan, report),
                                        TransactionPlan(rate=plan.rate, transaction_size=plan.transaction_size))
        report.produce_seconds = stats["seconds"]
        report.drain_seconds = _wait_accounted(settings, report, collector, plan.timeout_s)
    finally:
        collector.stop_event.set()
        collector.join(10)
    if _mine(report, id_prefix) < report.produced:  # the final word is a fresh read_committed read
        _recount(settings, report, collector)
    report.dead_letters = [d for d in report.dead_letters if _is_mine(d, report, id_prefix)]
    return report


STALL_S = 20.0  # no new record for this long while some are missing: check with a fresh read


def _wait_accounted(settings: Settings, report: TrafficReport, collector: _Collector, timeout_s: float) -> float:
    """Wait until every produced record is seen (scored or dead-lettered), at most ``timeout_s``.
    A live consumer can stall (seen once after a broker restart): after ``STALL_S`` without
    progress a fresh read counts, and ends the wait when it finds every record."""
    began = last_progress = time.monotonic()
    seen = _mine(report, collector.id_prefix)
    while time.monotonic() < began + timeout_s and seen < report.produced:
        time.sleep(0.2)
        now_seen = _mine(report, collector.id_prefix)
        if now_seen > seen:
            seen, last_progress = now_seen, time.monotonic()
        elif time.monotonic() - last_progress > STALL_S:
            last_progress = time.monotonic()
            fresh = _fresh_read(settings, report, collector)
            if _mine(fresh, collector.id_prefix) >= report.produced:
                _adopt(report, fresh, collector)
                break
    time.sleep(1.0)  # a late duplicate would show up here
    return time.monotonic() - began


def _recount(settings: Settings, report: TrafficReport, collector: _Collector) -> None:
    """The final word when the live count is short: a fresh read, taken when it holds more."""
    fresh = _fresh_read(settings, report, collector)
    if _mine(fresh, collector.id_prefix) > _mine(report, collector.id_prefix):
        _adopt(report, fresh, collector)


def _fresh_read(settings: Settings, report: TrafficReport, collector: _Collector) -> TrafficReport:
    """The scored and dead-letter topics read afresh (read_committed) from where the collector started."""
    fresh = TrafficReport(malformed=report.malformed)
    counter = _Collector(settings, collector.topics, fresh, collector.plan, start=collector.start_offsets)
    try:
        for msg in _drain_all(counter.consumer):
            counter._take(msg.topic(), msg.value(), time.time() * 1000.0)
    finally:
        counter.consumer.close()
    return fresh


def _adopt(report: TrafficReport, fresh: TrafficReport, collector: _Collector) -> None:
    """Take the fresh read's records (the live collector stops first, so nothing counts twice).
    Records first seen by the fresh read count as visible then: an upper bound of their latency."""
    collector.stop_event.set()
    collector.join(5)
    for (event_time, seen_ms), event_id in zip(fresh.arrivals, fresh.scored):
        if event_id not in report.scored:
            report.arrivals.append((event_time, seen_ms))
            report.latencies_ms.append(seen_ms - event_time)
    report.scored, report.scored_duplicates = fresh.scored, fresh.scored_duplicates
    report.dead_letters = fresh.dead_letters
    report.recounted += 1


def _drain_all(consumer, idle_s: float = 5.0):
    """Every record from the assigned positions until ``idle_s`` without one."""
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        for msg in consumer.consume(num_messages=2000, timeout=0.5):
            if msg.error() is None:
                last = time.monotonic()
                yield msg


def _mine(report: TrafficReport, id_prefix: str) -> int:
    dead = len({(d["source_partition"], d["source_offset"]) for d in list(report.dead_letters)
                if _is_mine(d, report, id_prefix)})  # a dead letter read twice is one record
    return len(report.scored) + dead  # a duplicate is no record more: the wait goes on for a missing one


def _is_mine(dead: dict, report: TrafficReport, id_prefix: str) -> bool:
    if dead.get("event_id"):
        return dead["event_id"].startswith(id_prefix)
    return any(dead["original_bytes"] == m.payload for m in report.malformed)
