"""The thread that keeps a :class:`jobs.model_router.ModelRouter` up to date with the control topic.

Each round: note the wall time ``w``, ask the broker for every partition's end (read_committed:
the last stable offset, so an open transaction is not "the end"), consume up to it, and hand the
lifecycle changes read plus ``w`` to the router. Every message committed before ``w`` is then in
the router's view (see the module docstring of ``jobs.model_router`` for why that matters).
Runs in the Python worker of the scoring job, beside the vectorized UDF.
"""

from __future__ import annotations

import threading
import time

from jobs.model_router import Change, ModelRouter, change_from_control, is_lifecycle_message_of
from schemas import SerdeError, serde_for


class ControlFollower(threading.Thread):
    def __init__(self, client_env: dict[str, str], topic: str, router: ModelRouter, *,
                 poll_interval_s: float = 0.5, round_timeout_s: float = 10.0, log=None, serde=None) -> None:
        """``client_env``: the ``STREAMSCORE_KAFKA_*`` settings of the reader (bootstrap, security);
        ``serde``: how the control records are read (default: single-object)."""
        super().__init__(name=f"control-follower-{topic}", daemon=True)
        self.client_env, self.topic, self.router = client_env, topic, router
        self.poll_interval_s, self.round_timeout_s = poll_interval_s, round_timeout_s
        self.log = log
        self._stop = threading.Event()
        self._serde = serde or serde_for("control")
        self.rounds = 0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception as exc:  # noqa: BLE001 - keep trying; the router fails records clearly if it lasts
                reason = f"{type(exc).__name__}: {str(exc)[:300]}"
                self.router.reader_failed(reason)
                if self.log:
                    self.log.warning("control_reader_failed", topic=self.topic, reason=reason)
                self._stop.wait(1.0)

    def _follow(self) -> None:
        from confluent_kafka import TopicPartition

        from connectors.kafka_clients import existing_topics
        from connectors.kafka_reads import read_committed_consumer
        from streamscore.foundation.config import load_settings

        settings = load_settings(self.client_env)  # reads the SASL password from its file, here on the TaskManager
        partitions = existing_topics(settings).get(self.topic)
        if partitions is None:
            raise RuntimeError(f"control topic {self.topic!r} does not exist")
        consumer = read_committed_consumer(settings, **{"enable.partition.eof": False})
        try:
            consumer.assign([TopicPartition(self.topic, p, -2) for p in range(partitions)])
            while not self._stop.is_set():
                wall_ms = int(time.time() * 1000)
                changes = self._read_to_end(consumer, [TopicPartition(self.topic, p) for p in range(partitions)])
                self.router.apply(changes, view_wall_ms=wall_ms)
                self.rounds += 1
                self._stop.wait(self.poll_interval_s)
        finally:
            consumer.close()

    def _read_to_end(self, consumer, partitions) -> list[Change]:
        """Consume until every partition's position reaches its end as asked for now."""
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1] for tp in partitions}
        deadline = time.monotonic() + self.round_timeout_s
        changes: list[Change] = []
        while True:
            positions = {tp.partition: tp.offset for tp in consumer.position(partitions)}
            if all(ends[p] == 0 or positions[p] >= ends[p] for p in ends):
                return changes
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic!r} to its end {ends} in {self.round_timeout_s} s "
                                   f"(at {positions})")
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                if msg.error() is None:
                    change = self._change(msg)
                    if change is not None:
                        changes.append(change)

    def _change(self, msg) -> Change | None:
        try:
            message = self._serde.decode(msg.value())
        except SerdeError:
            if self.log:
                self.log.warning("control_message_undecodable", partition=msg.partition(), offset=msg.offset())
            return None
        change = change_from_control(message, (msg.partition(), msg.offset()), self.router.model_name)
        if change is None and self.log and is_lifecycle_message_of(message, self.router.model_name):
            self.log.warning("control_message_malformed", kind=str(message.get("kind")), partition=msg.partition(),
                             offset=msg.offset())
        if change is not None and self.log:
            self.log.info("control_change", role=change.role, version=change.version, percent=change.percent,
                          effective_from_ms=change.effective_from_ms, offset=msg.offset())
        return change
