"""What every system is fed: the same generated, Avro-encoded events, preloaded or sent open-loop.

- :class:`EventPool` generates the demo events once (one seed) and encodes them with the
  project's serde; every system gets a prefix of the same backlog list and of the same
  latency list, so all systems see identical bytes.
- :func:`preload` writes a backlog in large Kafka transactions (visible at once to the
  read_committed consumers of the systems under test).
- :func:`send_open_loop` sends at a fixed rate whatever the systems do: record ``i`` is due at
  ``t0 + i / rate``, carries that intended send time in the ``intended_send_ms`` header, and
  latency is measured from it, so a sender that falls behind cannot hide latency.
  :func:`send_open_loop_apart` runs it in a process of its own, so the sender and the sink
  collector of the benchmark process do not take turns on one interpreter lock.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from confluent_kafka import Producer

from connectors.kafka_clients import client_config
from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from models.demo_data import generate_events
from schemas import serde_for
from streamscore.foundation.config import Settings

# The CPU priority (nice) of the benchmark's own sender and sink reader: they yield the CPU to the system under
# test, as producers and consumers on other machines would. On this 2-core machine, at equal priority, the
# sender (~0.33 of a core at 45k events/s) and the reader competed with the job at half load and set its tail
# (docs/benchmarks.md, "The measuring apparatus yields the CPU"); rows named ``-peer`` measure them at 0.
APPARATUS_NICE = 15


def thread_nice() -> int:
    """The calling thread's CPU priority (its nice value; on Linux a thread's own)."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def yield_cpu(nice: int = APPARATUS_NICE) -> int:
    """Lower the calling thread's CPU priority to ``nice`` (on Linux a thread's own; the threads it starts later,
    such as a Kafka client's, inherit it); a thread already at a lower priority stays there (lowering a nice
    value needs privileges). Returns the nice value in force."""
    if nice > thread_nice():
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    return thread_nice()


SEED = 3
HEADER = "intended_send_ms"


@dataclass(frozen=True)
class EncodedEvents:
    keys: list[bytes]
    values: list[bytes]

    def head(self, count: int) -> EncodedEvents:
        return EncodedEvents(self.keys[:count], self.values[:count])

    def ids(self) -> set[str]:
        return {k.decode() for k in self.keys}

    def __len__(self) -> int:
        return len(self.keys)


class EventPool:
    """Backlog and latency events, generated lazily and grown on demand (prefixes never change).

    The demo fraud events on the single-object wire (the reference rows), or (``confluent``) on the
    Confluent wire; with ``model`` the sensor model, its readings on the Confluent wire; Confluent
    payloads are framed with the id the registry gives their schema."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self._lists: dict[str, EncodedEvents] = {}

    def backlog(self, count: int, repeat: float = 0.0, model: str | None = None,
                confluent: bool = False) -> EncodedEvents:
        return self._get("bk-", count, repeat, model, confluent)

    def latency(self, count: int, repeat: float = 0.0, model: str | None = None,
                confluent: bool = False, phase: int = 0) -> EncodedEvents:
        """The events of a run's latency phase ``phase`` (0: the half-load one): ids of its own per phase."""
        return self._get("lt-" if phase == 0 else f"l{phase}-", count, repeat, model, confluent, 1000 * phase)

    def _get(self, prefix: str, count: int, repeat: float, model: str | None, confluent: bool,
             seed_offset: int = 0) -> EncodedEvents:
        """``seed_offset``: values of their own (a later latency phase), not only ids: the prediction cache keys
        on the features, so a phase that repeated another's values would be all cache hits."""
        sensor = model == SENSOR_MODEL
        key = f"{prefix}{repeat}{'sensor' if sensor else ''}{'confluent' if confluent else ''}"
        have = self._lists.get(key)
        if have is None or len(have) < count:
            seed = SEED + len(prefix) + ord(prefix[0]) + seed_offset
            have = self._sensor(prefix, count, seed) if sensor else _fraud(prefix, count, seed, repeat)
            if confluent and not sensor:
                have = self._framed(have)
            self._lists[key] = have
        return have.head(count)

    def _writer(self, topic: str, schema: dict):
        from connectors.schema_registry import SchemaRegistry, topic_writer

        return topic_writer(SchemaRegistry(self.settings.schema_registry), topic, schema)

    def _sensor(self, prefix: str, count: int, seed: int) -> EncodedEvents:
        from models.registry import load_model
        from models.sensor_demo import generate_readings

        serde = self._writer("bench-readings", dict(load_model(SENSOR_MODEL).card.event_schema.schema))
        readings = [{k: v for k, v in r.items() if k != "is_anomaly"}
                    for r in generate_readings(count, seed=seed, prefix=prefix)]
        return EncodedEvents([r["reading_id"].encode() for r in readings], [serde.encode(r) for r in readings])

    def _framed(self, events: EncodedEvents) -> EncodedEvents:
        """The same demo events, the same Avro bodies, on the Confluent wire (re-framed, not re-encoded)."""
        from schemas.confluent import schema_id_key
        from schemas.serde import schema_document

        header = b"\x00" + schema_id_key(self._writer("bench-events", schema_document("event")).schema_id)
        return EncodedEvents(events.keys, [header + value[10:] for value in events.values])


SENSOR_MODEL = "sensor:1.0.0"  # the bound model whose rows run on the Confluent wire


def _fraud(prefix: str, count: int, seed: int, repeat: float) -> EncodedEvents:
    encode = serde_for("event").encode_trusted
    events = generate_events(count, seed=seed, id_prefix=prefix)
    if repeat:
        with_repeats(events, repeat, seed=SEED)
    return EncodedEvents([e["event_id"].encode() for e in events], [encode(e) for e in events])


HOT_SET = 1000  # repeated inputs are drawn from the first events: a warm cache holds them all


def with_repeats(events: list[dict], fraction: float, seed: int) -> None:
    """Give a ``fraction`` of the events after the first :data:`HOT_SET` the features of one of
    those (ids, correlation ids and times stay unique): repeated inputs, as a prediction cache sees them."""
    rng = np.random.default_rng(seed)
    keep = ("event_id", "correlation_id", "event_time")
    for i in range(HOT_SET, len(events)):
        if rng.random() < fraction:
            source = events[int(rng.integers(0, HOT_SET))]
            events[i].update({k: v for k, v in source.items() if k not in keep})


def preload(settings: Settings, topic: str, events: EncodedEvents) -> float:
    """Write ``events`` transactionally; returns the seconds it took."""
    items = ((k, v, None) for k, v in zip(events.keys, events.values))
    return produce_transactionally(settings, topic, items, TransactionPlan(transaction_size=20_000))["seconds"]


@dataclass
class OpenLoopResult:
    intended_ms: np.ndarray  # per event index
    sent: int
    seconds: float
    max_lag_ms: float  # how far the sender fell behind its schedule (0 = on time)
    nice: int = 0  # the sender's CPU priority while it sent


def send_open_loop(settings: Settings, topic: str, events: EncodedEvents, rate: float) -> OpenLoopResult:
    """Send every event at its due time (non-transactional, idempotent; visible at once)."""
    producer = Producer(client_config(settings) | {"enable.idempotence": True, "linger.ms": 1,
                                                   "compression.type": "lz4"})
    count = len(events)
    t0 = time.time() + 0.05
    intended = (t0 + np.arange(count) / rate) * 1000.0
    sent, max_lag = 0, 0.0
    while sent < count:
        due = min(count, int((time.time() - t0) * rate) + 1)
        if due > sent:
            max_lag = max(max_lag, time.time() * 1000.0 - intended[sent])
        while sent < due:
            header = [(HEADER, b"%d" % int(intended[sent]))]
            try:
                producer.produce(topic, events.values[sent], key=events.keys[sent], headers=header)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        time.sleep(0.0005)
    producer.flush(30)
    return OpenLoopResult(intended, sent, time.time() - t0, max(0.0, max_lag), thread_nice())


def send_open_loop_apart(settings: Settings, topic: str, events: EncodedEvents, rate: float,
                         nice: int = APPARATUS_NICE) -> OpenLoopResult:
    """:func:`send_open_loop` in a fresh process at CPU priority ``nice``: in the benchmark's own process the
    sender and the sink collector's thread share one interpreter lock, and each held the other up by tens of
    milliseconds at tens of thousands of events a second (records waited in the collector, and the sender fell
    behind)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=yield_cpu, initargs=(nice,)) as pool:
        return pool.submit(send_open_loop, settings, topic, events, rate).result()
