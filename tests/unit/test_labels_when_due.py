"""Labels written as they come due (``streamscore.harness.labels.LabelsWhenDue``) and the commit mark of
``produce_transactionally`` (fake producers and writers, no Kafka)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import connectors.kafka_clients as kafka_clients
import streamscore.harness.labels as labels_module
from connectors.kafka_clients import COMMIT_NOW, KafkaClientError, produce_transactionally
from models.demo_labels import LabelPlan, label_record, label_records, observed_classes
from streamscore.harness.labels import LabelsWhenDue


class Recorder:
    """Stands in for ``produce_labels``: pulls the stream, noting the wall time each item came out."""

    def __init__(self, fail_after: int | None = None):
        self.items: list[tuple[float, object]] = []
        self.fail_after = fail_after

    def __call__(self, settings, records, *, topic=None, transaction_size=1000):
        for item in records:
            self.items.append((time.time() * 1000, item))
            if self.fail_after is not None and len(self.items) > self.fail_after:
                raise KafkaClientError("commit failed: broker gone")
        return {"produced": sum(1 for _, item in self.items if item is not COMMIT_NOW)}

    def labels(self) -> list[dict]:
        return [item for _, item in self.items if item is not COMMIT_NOW]


class FakeSettings:
    def topic(self, role):
        return type("Topic", (), {"name": f"{role}-topic"})()


def _label(event_id: str, label_time: float) -> dict:
    return {"event_id": event_id, "label": 1, "event_time": int(label_time) - 10, "label_time": int(label_time)}


def test_each_label_comes_out_at_its_time_in_label_time_order(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(labels_module, "produce_labels", recorder)
    now = time.time() * 1000
    with LabelsWhenDue(FakeSettings(), tick_s=0.02) as writer:
        for event_id, offset_ms in [("b", 300), ("a", 150), ("past", -1000), ("c", 450)]:
            writer.add(_label(event_id, now + offset_ms))
        time.sleep(0.05)
        assert [r["event_id"] for r in recorder.labels()] == ["past"]  # only what is due
    assert [r["event_id"] for r in recorder.labels()] == ["past", "a", "b", "c"]  # leaving waited for the last
    for out_ms, item in recorder.items:
        if item is not COMMIT_NOW and item["event_id"] != "past":
            assert item["label_time"] <= out_ms < item["label_time"] + 1000, item  # never early, not much later
    assert recorder.items[-1][1] is COMMIT_NOW  # each tick's labels committed before it waits
    assert writer.stats == {"produced": 4}


def test_leaving_on_an_error_writes_no_more_labels_and_keeps_the_error(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(labels_module, "produce_labels", recorder)
    now = time.time() * 1000
    with pytest.raises(KeyboardInterrupt), LabelsWhenDue(FakeSettings(), tick_s=0.02) as writer:
        writer.add(_label("now", now - 1))
        writer.add(_label("later", now + 60_000))
        time.sleep(0.1)
        raise KeyboardInterrupt
    assert [r["event_id"] for r in recorder.labels()] == ["now"]


def test_a_failure_of_the_writing_thread_is_raised_when_the_block_is_left(monkeypatch):
    monkeypatch.setattr(labels_module, "produce_labels", Recorder(fail_after=0))
    with pytest.raises(KafkaClientError, match="broker gone"), LabelsWhenDue(FakeSettings(), tick_s=0.02) as writer:
        writer.add(_label("x", time.time() * 1000 - 1))


def test_commit_now_commits_the_open_transaction_at_once(monkeypatch):
    commits: list[list[bytes]] = []

    class FakeProducer:
        def begin_transaction(self):
            self.open = []

        def produce(self, topic, value, key=None, timestamp=0):
            self.open.append(key)

        def commit_transaction(self, timeout):
            commits.append(self.open)

    real_writer = kafka_clients._TransactionWriter

    def writer(settings, topic, config):
        return real_writer(settings, topic, config, producer_factory=lambda *args, **kwargs: FakeProducer())

    monkeypatch.setattr(kafka_clients, "_TransactionWriter", writer)
    items = [(b"a", b"1", None), COMMIT_NOW, COMMIT_NOW, (b"b", b"2", None), (b"c", b"3", None), COMMIT_NOW,
             (b"d", b"4", None)]
    stats = produce_transactionally(object(), "t", items, transaction_size=100)
    assert commits == [[b"a"], [b"b", b"c"], [b"d"]]  # an empty transaction is not committed
    assert (stats["produced"], stats["transactions"]) == (4, 3)


def test_labels_one_by_one_equal_labels_made_at_once():
    plan = LabelPlan(delay_ms=500, flip_rate=0.4, flip_after=3, seed=9)
    events = [{"event_id": f"e{i}", "event_time": 1000 + i, "correlation_id": None} for i in range(10)]
    truth = np.array([0, 1] * 5)
    classes = observed_classes(truth, plan)
    assert classes[:3].tolist() == truth[:3].tolist() and classes.tolist() != truth.tolist()  # flips after 3
    assert [label_record(e, c, plan) for e, c in zip(events, classes.tolist())] == label_records(events, truth, plan)
