"""``--metrics-port`` of ``streamscore produce`` / ``consume``: served in-process, scraped over HTTP.

No Kafka: the command paths run with ``produce_transactionally`` / ``read_topic`` replaced by fakes
that scrape the endpoint while the command runs.
"""

from __future__ import annotations

import argparse
import socket
import urllib.request

import pytest
from metric_contract import documented_metrics
from prometheus_client.parser import text_string_to_metric_families

from connectors.kafka_clients import KafkaClientError
from connectors.kafka_reads import ConsumedRecord
from models.demo_data import generate_events
from schemas import serde_for
from streamscore.cli import produce, topics
from streamscore.cli.cli_metrics import DeliveryCounter, MetricsServerError, serve_metrics
from streamscore.cli.main import EXIT_USAGE, build_parser
from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import SerdeError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from the endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def settings(monkeypatch, tmp_path):
    return load_settings({"STREAMSCORE_HOME": str(tmp_path), "STREAMSCORE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})


def test_served_names_are_the_documented_ones():
    port = free_port()
    with serve_metrics(port) as metrics:
        metrics.produced("events")
        metrics.produce_failed("events", "kafka")
        metrics.consumed("scored")
        metrics.consume_failed("scored", "decode")
        names = {name for name, _ in scrape(port) if not name.endswith("_created")}
    documented = {name for name in documented_metrics() if name.startswith("streamscore_")}
    assert documented and names == documented


def test_delivery_counter_counts_commits_and_what_never_got_delivered():
    port = free_port()
    with serve_metrics(port) as metrics:
        counter = DeliveryCounter(metrics, "events")
        items = counter.count_pulled(range(2500))
        for _ in range(2300):
            next(items)
        counter(1000, 0.1)
        counter(2000, 0.2)
        counter.failed(KafkaClientError("commit failed"))
        values = scrape(port)
    assert values[("streamscore_produced_total", (("topic", "events"),))] == 2000
    assert values[("streamscore_produce_errors_total", (("reason", "kafka"), ("topic", "events")))] == 300


def test_produce_command_serves_metrics_while_it_runs(settings, monkeypatch):
    port, seen = free_port(), {}

    def fake_produce(settings, topic, items, plan):
        produced = 0
        for _ in items:
            produced += 1
            if produced % plan.transaction_size == 0:
                plan.progress(produced, 0.1)
        plan.progress(-produced, 0.2)
        seen.update(scrape(port))  # the command still runs: the endpoint is up
        return {"produced": produced, "seconds": 0.2, "rate": produced / 0.2, "transactions": 3}

    monkeypatch.setattr("connectors.kafka_transactions.produce_transactionally", fake_produce)
    monkeypatch.setattr("streamscore.cli.produce._require_topic", lambda settings, topic: None)
    monkeypatch.setattr("streamscore.cli.produce.demo_wire", _unregistered_wire)
    args = build_parser().parse_args(["produce", "--count", "250", "--transaction-size", "100", "--quiet",
                                      "--metrics-port", str(port)])
    assert produce.produce_from(settings, args) == 0
    assert seen[("streamscore_produced_total", (("topic", "events"),))] == 250
    with pytest.raises(OSError):  # and it is gone once the command returns
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def _unregistered_wire(settings, topic):
    """The demo events' encoder without a registry (these tests are about the counters, not the wire)."""
    return produce.EventWire(serde_for("event").encode)


def test_produce_counts_the_records_of_a_failed_transaction(settings, monkeypatch):
    """Two good records pulled, the third fails to encode: the open transaction (3 records) fails."""
    events = list(generate_events(3, seed=1, id_prefix="t-"))
    events[2]["amount"] = "not a number"

    def fake_produce(settings, topic, items, plan):
        for _ in items:
            pass

    monkeypatch.setattr("connectors.kafka_transactions.produce_transactionally", fake_produce)
    monkeypatch.setattr("streamscore.cli.produce._require_topic", lambda settings, topic: None)
    monkeypatch.setattr("streamscore.cli.produce.demo_wire", _unregistered_wire)
    port = free_port()
    with serve_metrics(port) as metrics:
        with pytest.raises(SerdeError, match="amount"):
            produce.produce_events(settings, "events", events, metrics=metrics)
        values = scrape(port)
    assert values[("streamscore_produce_errors_total", (("reason", "encode"), ("topic", "events")))] == 3
    assert values.get(("streamscore_produced_total", (("topic", "events"),)), 0) == 0


def test_consume_command_counts_records_and_decode_errors(settings, monkeypatch):
    port, seen = free_port(), {}
    good = serde_for("event").encode(next(iter(generate_events(1, seed=2, id_prefix="c-"))))
    payloads = [good, b"\x00garbage", good]

    def fake_read_topic(settings, topic, **kwargs):
        for offset, value in enumerate(payloads):
            yield ConsumedRecord(topic, 0, offset, None, value, 0, ())
        seen.update(scrape(port))
        raise KafkaClientError("consume failed: broker gone")

    monkeypatch.setattr("connectors.kafka_reads.read_topic", fake_read_topic)
    args = build_parser().parse_args(["consume", "scored", "--metrics-port", str(port)])
    with pytest.raises(KafkaClientError):
        topics.consume_topic(settings, args)
    assert seen[("streamscore_consumed_total", (("topic", "scored"),))] == 3
    assert seen[("streamscore_consume_errors_total", (("reason", "decode"), ("topic", "scored")))] == 1


def test_a_taken_port_is_one_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        with pytest.raises(MetricsServerError, match="cannot serve metrics"), serve_metrics(sock.getsockname()[1]):
            pass


@pytest.mark.parametrize("value", ["0", "70000", "abc"])
def test_metrics_port_must_be_a_port(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["consume", "scored", "--metrics-port", value])
    assert exit_info.value.code == EXIT_USAGE
    assert "--metrics-port" in capsys.readouterr().err


def test_no_port_serves_nothing():
    with serve_metrics(None) as metrics:
        assert metrics is None


def test_argparse_namespace_without_the_option_still_works(settings, monkeypatch):
    """Callers that build their own Namespace (the demo) need not know the option."""
    monkeypatch.setattr("connectors.kafka_reads.read_topic", lambda *a, **k: iter(()))
    args = argparse.Namespace(topic="scored", max=None, idle_timeout=0.1, from_beginning=True, follow=False)
    assert topics.consume_topic(settings, args) == 0

