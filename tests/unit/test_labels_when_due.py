"""Labels written as they come due (``streamscore.harness.labels.LabelsWhenDue``) and the commit mark of
``produce_transactionally`` (fake producers and writers, no Kafka)."""

from __future__ import annotations

import time

import numpy as np
import pytest

import connectors.kafka_transactions as kafka_transactions
import streamscore.harness.labels as labels_module
from connectors.kafka_transactions import COMMIT_NOW, KafkaClientError, TransactionPlan, produce_transactionally
from models.demo_labels import LabelPlan, label_record, label_records, observed_classes
from streamscore.cli.produce_labels import DemoLabels
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


def _wait_for(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_each_label_comes_out_at_its_time_in_label_time_order(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(labels_module, "produce_labels", recorder)
    now = time.time() * 1000
    with LabelsWhenDue(FakeSettings(), tick_s=0.02) as writer:
        for event_id, offset_ms in [("b", 1300), ("a", 1000), ("past", -1000), ("c", 1600)]:
            writer.add(_label(event_id, now + offset_ms))
        _wait_for(lambda: recorder.labels())
        assert [r["event_id"] for r in recorder.labels()] == ["past"]  # only what is due
    labels = recorder.labels()
    assert [r["event_id"] for r in labels] == ["past", "a", "b", "c"]  # leaving waited for the last
    out_ms = {item["event_id"]: at for at, item in recorder.items if item is not COMMIT_NOW}
    assert all(out_ms[r["event_id"]] >= r["label_time"] for r in labels)  # never before its time
    assert out_ms["a"] < labels[-1]["label_time"]  # as it came due, not at the end
    assert recorder.items[-1][1] is COMMIT_NOW  # each tick's labels committed before it waits
    assert writer.stats == {"produced": 4}


def test_leaving_on_an_error_writes_no_more_labels(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(labels_module, "produce_labels", recorder)
    now = time.time() * 1000
    with pytest.raises(KeyboardInterrupt), LabelsWhenDue(FakeSettings(), tick_s=0.02) as writer:
        writer.add(_label("now", now - 1))
        writer.add(_label("later", now + 60_000))
        _wait_for(lambda: recorder.labels())
        raise KeyboardInterrupt
    assert [r["event_id"] for r in recorder.labels()] == ["now"]


def test_a_failure_of_the_writing_thread_is_raised_by_the_next_add_and_on_leaving(monkeypatch):
    monkeypatch.setattr(labels_module, "produce_labels", Recorder(fail_after=0))
    with pytest.raises(KafkaClientError, match="broker gone"), LabelsWhenDue(FakeSettings(), tick_s=0.02) as writer:
        writer.add(_label("x", time.time() * 1000 - 1))
        _wait_for(lambda: writer._failure is not None)
        with pytest.raises(KafkaClientError, match="broker gone"):
            writer.add(_label("y", time.time() * 1000))  # the run stops at once, not after every event
    with pytest.raises(KafkaClientError, match="broker gone"), LabelsWhenDue(FakeSettings(), tick_s=0.02) as writer:
        writer.add(_label("x", time.time() * 1000 - 1))


def test_demo_labels_go_out_only_for_committed_events(monkeypatch, capsys):
    recorder = Recorder()
    monkeypatch.setattr(labels_module, "produce_labels", recorder)
    plan = LabelPlan(delay_ms=0, seed=3)
    events = [{"event_id": f"e{i}", "event_time": int(time.time() * 1000), "correlation_id": None} for i in range(4)]
    with DemoLabels(FakeSettings(), plan, len(events), (), "labels-topic") as labels:
        passed = list(labels.follow(events))
        time.sleep(0.1)
        assert recorder.labels() == []  # nothing committed yet: no label, however due
        labels.committed([(b"e2", b"", None), (b"e0", b"", None)])  # e1 refused, e3 never committed
    assert passed == events
    assert sorted(r["event_id"] for r in recorder.labels()) == ["e0", "e2"]
    assert "; 2 labels of refused events not written" in capsys.readouterr().out


def test_commit_now_commits_the_open_transaction_at_once(monkeypatch):
    commits: list[list[bytes]] = []

    class FakeProducer:
        def begin_transaction(self):
            self.open = []

        def produce(self, topic, value, key=None, timestamp=0):
            self.open.append(key)

        def commit_transaction(self, timeout):
            commits.append(self.open)

    real_writer = kafka_transactions._TransactionWriter

    def writer(settings, topic, config):
        return real_writer(settings, topic, config, producer_factory=lambda *args, **kwargs: FakeProducer())

    monkeypatch.setattr(kafka_transactions, "_TransactionWriter", writer)
    items = [(b"a", b"1", None), COMMIT_NOW, COMMIT_NOW, (b"b", b"2", None), (b"c", b"3", None), COMMIT_NOW,
             (b"d", b"4", None)]
    stats = produce_transactionally(object(), "t", items, TransactionPlan(transaction_size=100))
    assert commits == [[b"a"], [b"b", b"c"], [b"d"]]  # an empty transaction is not committed
    assert (stats["produced"], stats["transactions"]) == (4, 3)


def test_labels_one_by_one_equal_labels_made_at_once():
    plan = LabelPlan(delay_ms=500, flip_rate=0.4, flip_after=3, seed=9)
    events = [{"event_id": f"e{i}", "event_time": 1000 + i, "correlation_id": None} for i in range(10)]
    truth = np.array([0, 1] * 5)
    classes = observed_classes(truth, plan)
    assert classes[:3].tolist() == truth[:3].tolist() and classes.tolist() != truth.tolist()  # flips after 3
    assert [label_record(e, c, plan) for e, c in zip(events, classes.tolist())] == label_records(events, truth, plan)
