"""confluent-kafka clients configured from Settings: admin, topics, the transactional producer.

Reading topics: connectors.kafka_reads; writing records in transactions: connectors.kafka_transactions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from connectors.kafka_errors import ConnectionWatch, KafkaClientError, blocking_call, watch_of
from connectors.kafka_security import librdkafka_properties
from streamscore.foundation.config import Settings, TopicSpec

__all__ = ["KafkaClientError", "client_config"]  # KafkaClientError lives in kafka_errors; imported from here too

def client_config(settings: Settings) -> dict[str, str]:
    """The settings every client shares, security included: the one place a client's config starts."""
    security = librdkafka_properties(settings.kafka_security)  # {} for PLAINTEXT
    watch = {"error_cb": ConnectionWatch()} if security else {}  # a refused login fails at once
    return {"bootstrap.servers": settings.kafka_bootstrap, "log_level": 4, **security, **watch}  # log: warnings+


def _list_topics(settings: Settings, client: AdminClient, timeout_s: float):
    return blocking_call(settings, client, getattr(client, "streamscore_watch", None),
                         lambda t: client.list_topics(timeout=t), timeout_s)


def admin(settings: Settings) -> AdminClient:
    conf = client_config(settings)
    client = AdminClient(conf)
    client.streamscore_watch = watch_of(conf)  # None for PLAINTEXT
    return client


def existing_topics(settings: Settings, timeout_s: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count, as the broker sees them."""
    try:
        meta = _list_topics(settings, admin(settings), timeout_s)
    except KafkaException as exc:
        raise KafkaClientError(f"Kafka at {settings.kafka_bootstrap} is unreachable: {exc}") from exc
    return {name: len(t.partitions) for name, t in meta.topics.items() if not name.startswith("__")}


def create_topics(settings: Settings, specs: Iterable[TopicSpec] | None = None) -> dict[str, str]:
    """Create the topics that are missing (idempotent). Returns topic -> 'created' | 'exists'."""
    specs = list(settings.topics if specs is None else specs)
    have = existing_topics(settings)
    result: dict[str, str] = {}
    wanted = []
    for spec in specs:
        if spec.name in have:
            result[spec.name] = "exists"
            if have[spec.name] != spec.partitions:
                result[spec.name] = f"exists with {have[spec.name]} partitions (configured {spec.partitions})"
        else:
            wanted.append(NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=1))
    if wanted:
        client = admin(settings)  # keep a reference: the futures die with the client
        futures = client.create_topics(wanted, operation_timeout=30)
        for name, future in futures.items():
            try:
                future.result(timeout=30)
                result[name] = "created"
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise KafkaClientError(f"cannot create topic {name!r}: {exc.args[0].str()}") from exc
                result[name] = "exists"
        _wait_until_visible(settings, [t.topic for t in wanted])
    return result


def _wait_until_visible(settings: Settings, names: list[str], timeout_s: float = 15.0) -> None:
    """Creation is acknowledged by the controller before every broker's metadata has the topic."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = set(names) - set(existing_topics(settings))
        if not missing:
            return
        if time.monotonic() > deadline:
            raise KafkaClientError(f"topics {sorted(missing)} were created but are not visible after {timeout_s:.0f} s")
        time.sleep(0.1)


def broker_config_value(settings: Settings, key: str, timeout_s: float = 10.0) -> str | None:
    """A broker setting as the (first) broker reports it, e.g. transaction.max.timeout.ms."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    client = admin(settings)
    try:
        brokers = _list_topics(settings, client, timeout_s).brokers
        resource = ConfigResource(ResourceType.BROKER, str(min(brokers)))
        configs = client.describe_configs([resource], request_timeout=timeout_s)[resource].result(timeout_s)
    except (KafkaException, ValueError) as exc:
        raise KafkaClientError(f"Kafka at {settings.kafka_bootstrap} is unreachable: {exc}") from exc
    entry = configs.get(key)
    return entry.value if entry is not None else None


def delete_topics(settings: Settings, names: list[str]) -> None:
    client = admin(settings)
    futures = client.delete_topics(names, operation_timeout=30)
    for name, future in futures.items():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise KafkaClientError(f"cannot delete topic {name!r}: {exc.args[0].str()}") from exc


def transactional_producer(settings: Settings, transactional_id: str | None = None, **overrides) -> Producer:
    """An idempotent, transactional producer, already initialised."""
    conf = client_config(settings) | {
        "transactional.id": transactional_id or f"streamscore-cli-{uuid.uuid4().hex[:12]}",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "transaction.timeout.ms": 60000,
    }
    conf.update(overrides)
    producer = Producer(conf)
    try:
        blocking_call(settings, producer, watch_of(conf), producer.init_transactions, 30)
    except KafkaException as exc:
        raise KafkaClientError(f"cannot start a transaction at {settings.kafka_bootstrap}: {exc}") from exc
    return producer
