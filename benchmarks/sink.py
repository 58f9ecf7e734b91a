"""The read_committed sink every system is measured at: arrival times and distinct event ids.

A record counts when a read_committed consumer can see it (for exactly-once systems: when its
transaction commits). The collector polls with a 5 ms timeout, so arrival times are exact to
a few ms while a core is free; it runs at a lower CPU priority than the system measured (nice 15),
so when that system keeps both cores busy a record is seen later, never earlier. Ids are taken from
the Kafka key where it is the event id (scored records), else decoded from the value (dead letters,
pass-through copies of the event).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, TopicPartition

from benchmarks.feed import APPARATUS_NICE, yield_cpu
from connectors.kafka_clients import existing_topics
from connectors.kafka_reads import read_committed_consumer
from schemas import SerdeError, serde_for
from streamscore.foundation.config import Settings


@dataclass(frozen=True)
class Arrival:
    at: float  # time.time() when visible
    topic: str
    key: bytes | None
    value: bytes | None  # kept only when the key is not the event id
    timestamp_ms: int | None = None  # the record's Kafka timestamp (a scoring job forwards its input's: the send)
    kept_value: bytes | None = None  # a keyed record's value, kept while the collector keeps values (decoded later)


class SinkCollector(threading.Thread):
    """Reads ``topics`` from their beginning (fresh topics), read_committed, until stopped. Its thread and its
    Kafka client's run at CPU priority ``nice`` (``benchmarks.feed.APPARATUS_NICE``; ``nice_in_force`` once
    it runs): at a lower priority than the system measured, an arrival is seen later when that system keeps
    both cores busy, never earlier, so latency errs high."""

    def __init__(self, settings: Settings, topics: list[str], keyed_topics: set[str], nice: int = APPARATUS_NICE):
        super().__init__(daemon=True, name="bench-sink")
        self.nice = nice
        self.nice_in_force: int | None = None
        self.failure: BaseException | None = None  # what stopped the thread early (raised by wait_for)
        self.settings = settings
        self.keyed = keyed_topics
        self.arrivals: list[Arrival] = []
        self.stop_event = threading.Event()
        self.keep_values = threading.Event()  # set: keep a keyed record's value too (a latency phase's split)
        counts = existing_topics(settings)
        self.partitions = [TopicPartition(t, p, 0) for t in topics for p in range(counts[t])]

    def run(self) -> None:
        consumer = None
        try:
            self.nice_in_force = yield_cpu(self.nice)  # before the client: its threads inherit the priority
            consumer = read_committed_consumer(self.settings, **{"enable.partition.eof": False,
                                                                 "fetch.wait.max.ms": 5})
            consumer.assign(self.partitions)
            self._read(consumer)
        except BaseException as exc:  # noqa: BLE001 - handed to the measuring thread by wait_for
            self.failure = exc
        finally:
            if consumer is not None:
                consumer.close()

    def _read(self, consumer) -> None:
        while not self.stop_event.is_set():
            msgs = consumer.consume(num_messages=2000, timeout=0.005)
            if not msgs:
                continue
            now, keep = time.time(), self.keep_values.is_set()
            for m in msgs:
                if m.error() is None:
                    keyed = m.topic() in self.keyed and m.key()
                    kind, stamp = m.timestamp()
                    self.arrivals.append(Arrival(now, m.topic(), m.key(), None if keyed else m.value(),
                                                 stamp if kind != TIMESTAMP_NOT_AVAILABLE else None,
                                                 m.value() if keyed and keep else None))

    def stop(self) -> None:
        self.stop_event.set()
        self.join(15)

    def wait_for(self, count: int, stall_s: float, timeout_s: float) -> bool:
        """Until ``count`` records arrived (True), or nothing new for ``stall_s`` / ``timeout_s`` passed."""
        began = last_change = time.monotonic()
        seen = len(self.arrivals)
        while len(self.arrivals) < count:
            if self.failure is not None:
                raise self.failure
            now = time.monotonic()
            if len(self.arrivals) != seen:
                seen, last_change = len(self.arrivals), now
            if now - last_change > stall_s or now - began > timeout_s:
                return False
            time.sleep(0.02)
        return True


class IdReader:
    """Event id of an arrival: the key, or decoded from the value (event, scored or dead letter)."""

    def __init__(self) -> None:
        self._serdes = [serde_for(name) for name in ("scored", "event", "dead_letter")]

    def event_id(self, arrival: Arrival) -> str | None:
        if arrival.value is None:
            return arrival.key.decode()
        for serde in self._serdes:
            try:
                return serde.decode(arrival.value).get("event_id")
            except SerdeError:
                continue
        return None


@dataclass(frozen=True)
class Accounting:
    expected: int
    distinct: int
    lost: int
    duplicates: int
    dead_lettered: int
    first_at: dict[str, float]  # event id -> first arrival time

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicates == 0


def account(arrivals: list[Arrival], expected_ids: set[str], dead_topic: str | None = None) -> Accounting:
    """Distinct expected ids seen, lost, duplicated (ids seen more than once) and dead-lettered."""
    reader = IdReader()
    counts: Counter[str] = Counter()
    first_at: dict[str, float] = {}
    dead = 0
    for arrival in arrivals:
        event_id = reader.event_id(arrival)
        if event_id not in expected_ids:
            continue
        counts[event_id] += 1
        first_at.setdefault(event_id, arrival.at)
        dead += arrival.topic == dead_topic
    duplicates = sum(c - 1 for c in counts.values())
    return Accounting(len(expected_ids), len(counts), len(expected_ids) - len(counts), duplicates, dead, first_at)
