"""Producing the ``labels`` topic: delayed ground truth, for the drift sidecar's accuracy windows."""

from __future__ import annotations

import heapq
import itertools
import queue
import threading
import time
from collections.abc import Iterable, Iterator

from streamscore.foundation.config import Settings
from streamscore.foundation.logs import get_logger


def produce_labels(settings: Settings, records: Iterable[dict], *, topic: str | None = None,
                   transaction_size: int = 1000) -> dict:
    """Write label records (see ``models.demo_labels``) transactionally, keyed by event id, with the
    label time as Kafka timestamp, on the Confluent wire. Each record is validated against
    ``schemas/avro/label.avsc``."""
    from connectors.kafka_transactions import TransactionPlan, produce_transactionally

    topic = topic or settings.topic("labels").name
    return produce_transactionally(settings, topic, _encoded(settings, topic, records),
                                   TransactionPlan(transaction_size=transaction_size))


def _encoded(settings: Settings, topic: str, records: Iterable[dict]) -> Iterator:
    from connectors.kafka_transactions import COMMIT_NOW
    from connectors.schema_registry import writer_of

    encode = writer_of(settings.schema_registry, topic, "label").encode
    for record in records:
        yield COMMIT_NOW if record is COMMIT_NOW else (record["event_id"].encode(), encode(record),
                                                       record["label_time"])


class LabelsWhenDue:
    """Labels written while their events are still being sent, each once its label time has come by the
    wall clock, as real ground truth arrives: a label is never visible before its label time, and comes
    at most ``tick_s`` (plus a commit) after it, so the drift sidecar's watermark has not passed it.

    A context manager: ``add`` labels (any order) while it is open; leaving it normally waits for the
    last label's time and writes it; leaving it on an exception (or interrupted while waiting) writes no
    more (the open transaction is aborted). A failure of the writing thread is raised by the next ``add``
    or when the block is left, or logged when the block is left on an exception of its own."""

    STOP_WAIT_S = 15.0  # leaving on an error: how long the thread may take to abort its transaction

    def __init__(self, settings: Settings, topic: str | None = None, tick_s: float = 0.1):
        self.settings, self.topic, self.tick_s = settings, topic or settings.topic("labels").name, tick_s
        self.stats: dict = {"produced": 0}
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._finishing, self._stopping = threading.Event(), threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._write, name="labels-when-due", daemon=True)

    def add(self, record: dict) -> None:
        """Queue a label; a failure of the writing thread is raised here at once (not after the whole run)."""
        if self._failure is not None:
            raise self._failure
        self._inbox.put(record)

    def __enter__(self) -> LabelsWhenDue:
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self._stop(exc)
            return
        self._finishing.set()
        try:
            self._thread.join()
        except BaseException:  # interrupted while waiting for the last labels' time
            self._stop(None)
            raise
        if self._failure is not None:
            raise self._failure

    def _stop(self, leaving: BaseException | None) -> None:
        """Write no more: the thread aborts its open transaction (a commit in retry may hold it a while). A
        failure of its own that is not what the block is left with (``add`` raised it) is logged."""
        self._stopping.set()
        self._thread.join(timeout=self.STOP_WAIT_S)
        failure = self._failure
        if failure is not None and failure is not leaving and not isinstance(failure, _Stopped):
            get_logger("streamscore.labels").warning("labels_writer_failed", topic=self.topic,
                                                     error=f"{type(failure).__name__}: {failure}")

    def _write(self) -> None:
        try:
            self.stats = produce_labels(self.settings, self._due(), topic=self.topic)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that left the block
            self._failure = exc

    def _due(self) -> Iterator:
        """Labels in label-time order as each comes due, a commit after each tick's group; ends when the
        block is left and every label is written (or at once when it is left on an exception)."""
        from connectors.kafka_transactions import COMMIT_NOW

        waiting: list[tuple[int, int, dict]] = []
        order = itertools.count()
        while not self._stopping.is_set():
            finishing = self._finishing.is_set()  # read before draining: nothing added after it is missed
            while not self._inbox.empty():
                record = self._inbox.get()
                heapq.heappush(waiting, (record["label_time"], next(order), record))
            due = []
            while waiting and waiting[0][0] <= time.time() * 1000:
                due.append(heapq.heappop(waiting)[2])
            yield from due
            if due:
                yield COMMIT_NOW
            if finishing and not waiting:
                return
            self._stopping.wait(self.tick_s)
        raise _Stopped()


class _Stopped(Exception):
    """The block was left on an exception: the open transaction is aborted, no more labels are written."""
