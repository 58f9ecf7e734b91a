"""Publishing a lifecycle message: a broker failure aborts the open transaction and says what became of it;
a message flushed too late is aborted and stamped anew.

The producer and the registry's writer are replaced by fakes (a unit test: no broker); the integration
tests (test_lifecycle.py, test_retrain_loop.py) publish on the real stack."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException

import connectors.kafka_clients
import connectors.schema_registry
from connectors.kafka_errors import KafkaClientError
from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.lifecycle.control import PUBLISH_TRIES, publish


class _Producer:
    def __init__(self, fail_at: str | None, abort_fails: bool = False):
        self.fail_at, self.abort_fails, self.calls = fail_at, abort_fails, []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_at or (name == "abort" and self.abort_fails):
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out", retriable=True))

    def begin_transaction(self):
        self._call("begin")

    def produce(self, topic, value, key):
        self._call("produce")

    def flush(self, timeout):
        self._call("flush")

    def commit_transaction(self, timeout):
        self._call("commit")

    def abort_transaction(self, timeout):
        self._call("abort")


class _Serde:
    def encode(self, message: dict) -> bytes:
        return b"m"


@pytest.fixture
def producer(monkeypatch):
    made = []

    def fake(fail_at=None, abort_fails=False):
        made.append(_Producer(fail_at, abort_fails))
        monkeypatch.setattr(connectors.kafka_clients, "transactional_producer", lambda settings: made[-1])
        return made[-1]

    monkeypatch.setattr(connectors.schema_registry, "writer_of", lambda *args: _Serde())
    return fake


def _stamp(now_ms: int) -> dict:
    return {"model_name": "fraud", "kind": "PROMOTE", "emitted_time": now_ms}


def test_a_clean_publish_commits_once(producer):
    fake = producer()
    message = publish(load_settings({}), "control", _stamp, guard_ms=5000)
    assert message["kind"] == "PROMOTE" and fake.calls == ["begin", "produce", "flush", "commit"]


@pytest.mark.parametrize("fail_at", ["produce", "flush", "commit"])
def test_a_broker_failure_aborts_and_says_nothing_was_published(producer, fail_at):
    fake = producer(fail_at)
    with pytest.raises(KafkaClientError) as info:
        publish(load_settings({}), "control", _stamp, guard_ms=5000)
    assert fake.calls[-1] == "abort"
    assert str(info.value) == ("publishing the PROMOTE message to 'control' failed (Timed out); "
                               "aborted, nothing published: try again")
    assert info.value.retriable  # the cause is kept


def test_a_failed_abort_says_the_outcome_is_unknown(producer):
    producer("commit", abort_fails=True)
    with pytest.raises(KafkaClientError, match="its outcome is unknown: read the control topic"):
        publish(load_settings({}), "control", _stamp, guard_ms=5000)


def test_no_guard_no_publish(producer):
    fake = producer()
    with pytest.raises(StreamscoreError, match="the activation delay must be > 0 ms"):
        publish(load_settings({}), "control", _stamp, guard_ms=0)
    assert fake.calls == []


def _slow_stamps(slow: int):
    """A stamp whose first ``slow`` messages look flushed 10 s after they were stamped."""
    stamped = []

    def stamp(now_ms: int) -> dict:
        stamped.append(now_ms)
        return _stamp(now_ms - (10_000 if len(stamped) <= slow else 0))
    return stamp


def test_a_publish_flushed_too_late_is_aborted_and_stamped_anew(producer):
    fake = producer()
    message = publish(load_settings({}), "control", _slow_stamps(2), guard_ms=5000)
    assert fake.calls == ["begin", "produce", "flush", "abort"] * 2 + ["begin", "produce", "flush", "commit"]
    assert abs(message["emitted_time"] - time.time() * 1000) < 5000  # the third stamp, the one committed


def test_a_publish_too_late_every_time_publishes_nothing(producer):
    fake = producer()
    with pytest.raises(StreamscoreError, match=r"took longer than 2500 ms 3 times; aborted \(nothing published\)"):
        publish(load_settings({}), "control", _slow_stamps(PUBLISH_TRIES), guard_ms=5000)
    assert fake.calls == ["begin", "produce", "flush", "abort"] * PUBLISH_TRIES
