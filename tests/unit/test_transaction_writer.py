"""The harness's transactional writer keeps every record through broker failures (fake producers, no Kafka)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from connectors.kafka_clients import KafkaClientError
from connectors.kafka_transactions import _TransactionWriter


def _abortable() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "125 message(s) failed delivery",
                                     txn_requires_abort=True))


class FakeProducer:
    """Records what it was asked; its commits fail ``failures`` times with an abortable error."""

    def __init__(self, failures: int):
        self.failures, self.sent, self.committed, self.calls = failures, [], [], []

    def begin_transaction(self):
        self.calls.append("begin")
        self.open = []

    def produce(self, topic, value, key=None, timestamp=0):
        self.open.append(key)

    def commit_transaction(self, timeout):
        self.calls.append("commit")
        if self.failures:
            self.failures -= 1
            raise _abortable()
        self.committed.extend(self.open)

    def abort_transaction(self, timeout):
        self.calls.append("abort")

    def purge(self):
        self.calls.append("purge")


def _writer(failures_per_producer: list[int], refused_starts: int = 0):
    made: list[FakeProducer] = []
    starts = {"refused": refused_starts}

    def factory(settings, transactional_id, **config):
        if made and starts["refused"]:  # the broker's coordinator is not back yet
            starts["refused"] -= 1
            raise KafkaClientError("cannot start a transaction at broker: coordinator not available")
        made.append(FakeProducer(failures_per_producer[len(made)]))
        made[-1].transactional_id = transactional_id
        return made[-1]

    unused_settings = object()  # only the producer factory would read them
    return _TransactionWriter(unused_settings, "t", {}, producer_factory=factory), made


def _send(writer, keys):
    for key in keys:
        writer.add(key, b"v", None)
    writer.commit()


def test_a_failed_commit_is_resent_once_on_the_same_producer():
    writer, made = _writer([1])
    _send(writer, [b"a", b"b"])
    assert made[0].committed == [b"a", b"b"] and len(made) == 1
    assert made[0].calls == ["begin", "commit", "abort", "begin", "commit"]
    assert (writer.transactions, writer.resent, writer.restarts) == (1, 1, 0)


def test_a_resent_transaction_that_fails_again_goes_on_a_fresh_producer_under_the_same_id():
    writer, made = _writer([2, 0])
    _send(writer, [b"a", b"b", b"c"])
    assert len(made) == 2 and made[1].transactional_id == made[0].transactional_id
    assert made[0].committed == [] and "purge" in made[0].calls
    assert made[1].committed == [b"a", b"b", b"c"]
    assert (writer.transactions, writer.resent, writer.restarts) == (1, 2, 1)


def test_the_next_transaction_may_be_resent_on_the_new_producer_again():
    writer, made = _writer([2, 1])
    _send(writer, [b"a"])
    _send(writer, [b"b"])
    assert made[1].committed == [b"a", b"b"] and len(made) == 2
    assert writer.restarts == 1 and writer.transactions == 2


def test_it_gives_up_with_the_broker_error_after_its_deadline(monkeypatch):
    writer, _ = _writer([99, 99, 99, 99])
    monkeypatch.setattr(_TransactionWriter, "RETRY_DEADLINE_S", -1.0)
    writer.add(b"a", b"v", None)
    with pytest.raises(Exception, match="commit failed: 125 message"):
        writer.commit()


def test_a_fresh_producer_that_cannot_start_yet_is_tried_again_until_it_can(monkeypatch):
    monkeypatch.setattr("connectors.kafka_transactions.time.sleep", lambda s: None)
    writer, made = _writer([2, 0], refused_starts=3)
    _send(writer, [b"a", b"b"])
    assert len(made) == 2 and made[1].committed == [b"a", b"b"]
    assert writer.restarts == 1 and writer.transactions == 1


def test_a_fresh_producer_refused_past_the_deadline_gives_up_with_the_reason(monkeypatch):
    import time

    real_sleep = time.sleep  # the module's time is this one: patched below
    monkeypatch.setattr("connectors.kafka_transactions.time.sleep", lambda s: real_sleep(0.01))
    monkeypatch.setattr(_TransactionWriter, "RETRY_DEADLINE_S", 0.2)  # the resend comes first, then refusals
    writer, _ = _writer([2], refused_starts=10_000)
    writer.add(b"a", b"v", None)
    with pytest.raises(KafkaClientError, match=r"cannot start a fresh transactional producer: .*coordinator"):
        writer.commit()


@pytest.mark.parametrize("failures", [[0], [1], [2, 0], [2, 2, 0]])
def test_on_commit_hears_each_transaction_once_with_its_records_whatever_was_resent(failures):
    writer, made = _writer(failures)
    heard = []
    writer.on_commit = lambda records: heard.append([key for key, _, _ in records])
    _send(writer, [b"a", b"b"])
    writer.commit()  # nothing open: nothing to hear
    _send(writer, [b"c"])
    assert heard == [[b"a", b"b"], [b"c"]]
    assert made[-1].committed[-1:] == [b"c"]


def test_a_producer_that_cannot_begin_a_transaction_fails_in_one_line():
    writer, made = _writer([0])

    def fatal():
        raise KafkaException(KafkaError(KafkaError._FATAL, "producer fenced", fatal=True))

    made[0].begin_transaction = fatal
    with pytest.raises(KafkaClientError, match="cannot begin a transaction on 't': producer fenced") as caught:
        writer.add(b"a", b"v", None)
    assert isinstance(caught.value.__cause__, KafkaException)
    assert writer.pending == []  # nothing was taken in


def test_a_slow_sender_commits_before_its_transaction_grows_old(monkeypatch):
    """10 records at 20/s in transactions of 1000: without the age bound one transaction would stay open for the
    whole send (at 10 records/s and 1000 a transaction, 100 s: past the broker's 60 s timeout)."""
    from connectors import kafka_transactions
    from connectors.kafka_transactions import TransactionPlan, produce_transactionally

    made: list[FakeProducer] = []
    real_writer = kafka_transactions._TransactionWriter

    def writer(settings, topic, config):
        return real_writer(settings, topic, config,
                           producer_factory=lambda *args, **kwargs: made.append(FakeProducer(0)) or made[-1])

    monkeypatch.setattr(kafka_transactions, "_TransactionWriter", writer)
    items = [(f"k{i}".encode(), b"v", None) for i in range(10)]
    plan = TransactionPlan(rate=20, transaction_size=1000, max_open_s=0.18)  # not 0.2: a record every 0.05 s
    stats = produce_transactionally(object(), "t", items, plan)  # would land on the bound itself
    assert made[0].committed == [key for key, _, _ in items]  # each once, in order
    assert 3 <= stats["transactions"] <= 5  # ~0.2 s of records (4) a transaction, not one for all 10
