"""The local stack for real: Kafka transactions, a PyFlink job on the session cluster, up/down cycles."""

from __future__ import annotations

import dataclasses
import os
import uuid

import pytest
from topic_reads import read_until

from connectors.kafka_clients import create_topics, transactional_producer
from connectors.kafka_reads import read_topic
from connectors.schema_registry import SchemaRegistry
from jobs.flink_cluster import JOBS_DIR, cancel_job, submit_python_job, wait_running
from jobs.submit import scoring_config_from_settings, submit_scoring
from streamscore.foundation.config import load_settings
from streamscore.stack import Stack
from streamscore.stack.process import port_open, running_pid, stop_process, wait_for

pytestmark = pytest.mark.integration


def _produce_batches(settings, topic, batches):
    """batches: list of (ids, commit?) — each batch is one transaction."""
    producer = transactional_producer(settings)
    for ids, commit in batches:
        producer.begin_transaction()
        for event_id in ids:
            producer.produce(topic, f"payload-{event_id}".encode(), key=event_id.encode())
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)  # the records reach the broker, then the transaction is aborted
            producer.abort_transaction(30)


def test_read_committed_sees_exactly_the_committed_transactions(settings, fresh_topics):
    (topic,) = fresh_topics("txn", partitions=2)
    batches = []
    for b in range(20):  # 20 transactions x 500 = 10,000 events; every third one aborted
        ids = [f"e{b:02d}-{i:04d}" for i in range(500)]
        batches.append((ids, b % 3 != 1))
    _produce_batches(settings, topic, batches)

    seen = [rec.key.decode() for rec in read_topic(settings, topic, idle_timeout_s=10)]
    committed = {i for ids, commit in batches if commit for i in ids}
    assert len(committed) == 500 * 13
    assert len(seen) == len(set(seen)), "an id was read twice"
    assert set(seen) == committed


def test_topics_keep_records_whatever_their_event_time(settings, fresh_topics):
    """Kafka's time retention reads record timestamps, which are event times: with the old 24 h limit
    a year-old reading was deleted at the next retention check (CI on 49409a3 lost 500 scored readings
    so). The broker retains by size; a topic of the stack says so, and keeps a 2025 record."""
    from confluent_kafka.admin import ConfigResource

    from connectors.kafka_clients import admin
    from connectors.kafka_transactions import produce_transactionally

    (topic,) = fresh_topics("old")
    client = admin(settings)  # kept: a collected client cancels its pending futures
    (future,) = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    entries = future.result(timeout=30)
    assert entries["retention.ms"].value == "-1", entries["retention.ms"]
    assert int(entries["retention.bytes"].value) >= 1 << 30, entries["retention.bytes"]
    produce_transactionally(settings, topic, [(b"old", b"2025", 1_764_547_200_000)])
    (record,) = read_topic(settings, topic, idle_timeout_s=3)
    assert (record.key, record.timestamp_ms) == (b"old", 1_764_547_200_000)


@pytest.mark.parametrize("submitter", ["cli", "daemon"])
def test_pyflink_job_on_the_session_cluster_copies_events(settings, fresh_topics, submitter):
    """By ``flink run`` and through the warm submitter (the suite's other jobs go through the latter)."""
    source, sink = fresh_topics("src", "dst")
    ids = [f"flink-{i:05d}" for i in range(2000)]
    _produce_batches(settings, source, [(ids[:1000], True), (ids[1000:], True)])

    settings = dataclasses.replace(settings, flink_submitter=submitter)
    job_id = submit_python_job(settings, JOBS_DIR / "passthrough.py", [
        "--bootstrap", settings.kafka_bootstrap, "--source-topic", source, "--sink-topic", sink,
        "--group-id", f"it-{uuid.uuid4().hex[:8]}", "--transactional-id-prefix", f"it-{uuid.uuid4().hex[:8]}",
        "--checkpoint-interval-ms", "1000", "--job-name", "it-passthrough",
    ])
    try:
        wait_running(settings, job_id)
        out = read_until(settings, sink, len(ids), bytes.decode)
    finally:
        cancel_job(settings, job_id)
    assert sorted(out) == sorted(f"payload-{i}" for i in ids)


def _other_ports_settings(tmp_path):
    env = dict(os.environ)
    env.update({
        "STREAMSCORE_HOME": str(tmp_path / "stack2"),
        "STREAMSCORE_KAFKA_BOOTSTRAP": "127.0.0.1:19092", "STREAMSCORE_KAFKA_CONTROLLER_PORT": "19093",
        "STREAMSCORE_FLINK_REST": "127.0.0.1:18081", "STREAMSCORE_FLINK_RPC_PORT": "16123",
        "STREAMSCORE_REDIS": "127.0.0.1:16379", "STREAMSCORE_FLINK_SLOTS": "1",
        "STREAMSCORE_FLINK_TASKMANAGER_MEMORY": "1536m",
        "STREAMSCORE_SCHEMA_REGISTRY_URL": "http://127.0.0.1:18085/apis/ccompat/v7",
    })
    return load_settings(env)


UPDOWN_SCHEMA = {"type": "record", "name": "UpDown", "fields": [{"name": "n", "type": "int"}]}


def test_a_second_stack_comes_up_and_down_without_leaking(tmp_path):
    settings = _other_ports_settings(tmp_path)
    stack = Stack(settings)
    from streamscore.stack import _specs

    reports = stack.up()
    assert all(r.started for r in reports), "something was already running"
    again = stack.up()  # idempotent: nothing new starts
    assert not any(r.started for r in again)
    health = stack.status()
    assert all(h.healthy for h in health), health
    pids = [p for h in health for p in h.pids]
    assert len(pids) == 5  # kafka, redis, registry, jobmanager, taskmanager
    registry = SchemaRegistry(settings.schema_registry)
    assert registry.register("updown-value", UPDOWN_SCHEMA) >= 0
    for spec in _specs(stack.service("registry")):  # the registry's storage is a file in the stack home:
        stop_process(spec)  # what was registered survives a restart
    stack.up(only=["registry"])
    assert registry.version("updown-value").schema == UPDOWN_SCHEMA
    pids = [p for h in stack.status() for p in h.pids]
    create_topics(settings)  # a job with Python workers (they must not outlive the TaskManager)
    job_id = submit_scoring(settings, scoring_config_from_settings(settings, job_name="updown"))
    wait_running(settings, job_id)
    cancel_job(settings, job_id)  # a canceled job's Python worker has outlived its TaskManager
    assert _processes_of(settings.home), "no process of the second stack found"

    stopped = stack.down()  # the warm submitter too, where the job went through it
    warm = ["flink-submitter"] if settings.flink_submitter == "daemon" else []
    assert sorted(stopped) == sorted(["flink-jobmanager", "flink-taskmanager", "kafka", "redis", "registry", *warm])
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or _is_zombie(pid), f"pid {pid} leaked"
    for port in (19092, 19093, 18081, 16379, 18085, 18086):
        assert not port_open("127.0.0.1", port), f"port {port} still open after down"
    assert all(running_pid(spec) is None for svc in stack.services for spec in _specs(svc))
    assert wait_for(lambda: not _processes_of(settings.home), 10), _processes_of(settings.home)
    assert stack.down() == []  # nothing left to stop


def _processes_of(home) -> list[int]:
    """Processes whose command line or environment names the stack's home (workers included)."""
    marker = str(home).encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as env, open(f"/proc/{entry}/cmdline", "rb") as cmd:
                    if marker in env.read() or marker in cmd.read():
                        found.append(int(entry))
            except OSError:
                continue
    return [pid for pid in found if not _is_zombie(pid)]


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
