"""The model-lifecycle protocol on the control topic: promote, rollback, shadow-attach/-detach, canary.

Lifecycle changes are control messages (``schemas/avro/control.avsc``) on the control topic,
each with ``payload_json`` = ``{"version", "effective_from_ms", "previous"[, "percent"]}``,
``effective_from_ms`` = publish time + activation delay. Scoring jobs that follow control route
records by event time against these messages (``jobs/model_router.py`` says why this keeps
replays deterministic, and why a message must commit within half the delay: :func:`publish`
checks that and fails loudly otherwise). A promotion also sets the Redis pointer
``streamscore:model:<name>:current`` for readers outside Flink (a Redis failure only warns).
``streamscore models ACTION`` (``streamscore.cli.models``) and ``streamscore retrain`` both make
their changes through :func:`apply_change`.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from jobs.model_router import DEFAULT_ACTIVATION_DELAY_MS, change_from_control
from models.registry import ModelRegistry, parse_ref
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import ModelError, StreamscoreError
from streamscore.foundation.vocabulary import PRIMARY_KINDS, ControlKind, LifecycleAction


@dataclass(frozen=True)
class LifecycleChange:
    """One change a user (or the retrainer) asks for: ``ref`` is NAME:VERSION, or NAME for rollback and
    shadow-detach; ``percent`` only for canary."""

    action: LifecycleAction
    ref: str
    control_topic: str | None = None  # default: the settings' control topic
    registry_dir: str | None = None
    activation_delay_ms: int = DEFAULT_ACTIVATION_DELAY_MS
    percent: int | None = None


@dataclass(frozen=True)
class PublishedChange:
    """What :func:`apply_change` published, and the one line that says so."""

    message: dict
    topic: str
    name: str
    version: str | None
    previous: str | None
    percent: int | None

    @property
    def effective_from_ms(self) -> int:
        return json.loads(self.message["payload_json"])["effective_from_ms"]

    def line(self) -> str:
        primary = self.message["kind"] in PRIMARY_KINDS
        return (f"{self.message['kind']} {self.name}:{self.version or '-'}"
                + (f" {self.percent}%" if self.percent is not None else "")
                + (f" (previous {self.previous})" if self.previous and primary else "")
                + f", effective from event time {self.effective_from_ms} ms, on {self.topic}")


def pointer_key(name: str) -> str:
    return f"streamscore:model:{name}:current"


def lifecycle_message(kind: ControlKind, name: str, version: str, *, now_ms: int, delay_ms: int,
                      previous: str | None = None, percent: int | None = None) -> dict:
    """The control record announcing one lifecycle change."""
    payload = {"version": version, "effective_from_ms": now_ms + delay_ms, "previous": previous}
    if percent is not None:
        payload["percent"] = percent
    return {"message_id": str(uuid.uuid4()), "kind": str(kind), "model_name": name, "model_version": version,
            "tier": None, "action": str(kind).lower(), "reasons": [], "window_ids": [],
            "payload_json": json.dumps(payload, sort_keys=True), "emitted_time": now_ms}


def current_primary(messages: list[dict], name: str) -> dict | None:
    """The payload of the promotion/rollback of ``name`` that the scoring jobs end up following: the latest
    effective time, log order among equal ones (as they order changes), or None. A malformed one (a
    hand-written message: not a JSON object, or no version) is skipped, as the scoring jobs skip it. (Log order
    alone would name B after "promote A, effective in 60 s", then "promote B, effective in 10 s": the jobs
    score with B from 10 s on and with A from 60 s on.)"""
    followed = [(int(payload["effective_from_ms"]), position, payload) for position, message in enumerate(messages)
                if message.get("kind") in PRIMARY_KINDS and message.get("model_name") == name
                and (payload := _primary_payload(message, name)) is not None]
    return max(followed, key=lambda found: found[:2])[2] if followed else None


def _primary_payload(message: dict, name: str) -> dict | None:
    """The payload of a promotion or rollback the scoring jobs follow (``change_from_control``), else None."""
    change = change_from_control(message, (0, 0), name)
    if change is None or change.version is None:
        return None
    payload = json.loads(message.get("payload_json") or "{}")
    previous = payload.get("previous")
    return {**payload, "version": change.version, "previous": previous if isinstance(previous, str) else None}


def rollback_target(messages: list[dict], name: str) -> tuple[str, str]:
    """(version to go back to, version in force now): the previous of the latest promotion."""
    current = current_primary(messages, name)
    if not current or not current.get("previous"):
        raise StreamscoreError(f"nothing to roll back for model {name!r}: no promotion with a previous version "
                               f"on the control topic")
    return current["previous"], current["version"]


def read_control(settings: Settings, topic: str, timeout_s: float = 15.0) -> list[dict]:
    """Every decodable message of the control topic, read_committed, up to its end as of now."""
    from confluent_kafka import KafkaException, TopicPartition

    from connectors.kafka_clients import KafkaClientError, existing_topics
    from connectors.kafka_reads import read_committed_consumer
    from connectors.schema_registry import reader_of
    from schemas import SerdeError

    partitions = existing_topics(settings).get(topic)
    if partitions is None:
        raise KafkaClientError(f"control topic {topic!r} does not exist at {settings.kafka_bootstrap}")
    serde, messages, deadline = reader_of(settings.schema_registry, "control"), [], time.monotonic() + timeout_s
    consumer = read_committed_consumer(settings, **{"enable.partition.eof": False})
    try:
        tps = [TopicPartition(topic, p, -2) for p in range(partitions)]
        consumer.assign(tps)
        ends = [consumer.get_watermark_offsets(tp, timeout=5, cached=False)[1] for tp in tps]
        while any(end > 0 and tp.offset < end for tp, end in zip(consumer.position(tps), ends)):
            if time.monotonic() > deadline:
                raise KafkaClientError(f"could not read control topic {topic!r} to its end in {timeout_s:.0f} s")
            for record in consumer.consume(num_messages=500, timeout=0.2):
                if record.error() is None:
                    try:
                        messages.append(serde.decode(record.value()))
                    except SerdeError:
                        continue
    except KafkaException as exc:
        raise KafkaClientError(f"could not read control topic {topic!r}: {exc.args[0].str() if exc.args else exc}") \
            from exc
    finally:
        consumer.close()
    return messages


PUBLISH_TRIES = 3


def publish(settings: Settings, topic: str, stamp: Callable[[int], dict], guard_ms: int) -> dict:
    """One transaction with one message, ``stamp(now_ms)``; returns it. The message is stamped only
    once the transactional producer is ready (its start-up, seconds on a busy machine, is not spent
    from the guard). A message not flushed within half the guard is aborted (nothing published) and
    stamped anew, up to ``PUBLISH_TRIES`` times; a commit that lands later than the guard is reported.
    A broker failure aborts the transaction (readers of the control topic do not wait for it to time
    out)."""
    from connectors.kafka_clients import transactional_producer
    from connectors.schema_registry import writer_of

    if guard_ms <= 0:
        raise StreamscoreError(f"the activation delay must be > 0 ms (its guard is {guard_ms} ms)")
    serde = writer_of(settings.schema_registry, topic, "control")  # registered once: publishing needs no registry
    producer = transactional_producer(settings)
    for _ in range(PUBLISH_TRIES):
        message = stamp(int(time.time() * 1000))
        if _commit_within(producer, topic, serde.encode(message), message, guard_ms // 2):
            break
    else:
        raise StreamscoreError(f"publishing to {topic!r} took longer than {guard_ms // 2} ms {PUBLISH_TRIES} times; "
                               f"aborted (nothing published): try again")
    late = int(time.time() * 1000) - message["emitted_time"]
    if late > guard_ms:
        raise StreamscoreError(f"the {message['kind']} message committed {late} ms after it was stamped (guard "
                               f"{guard_ms} ms): jobs may have routed records near its effective time differently")
    return message


def _commit_within(producer, topic: str, value: bytes, message: dict, limit_ms: int) -> bool:
    """Produce ``message`` in a transaction and commit it if it was flushed within ``limit_ms`` of its stamp;
    else abort it and return False."""
    from confluent_kafka import KafkaException

    from connectors.kafka_clients import KafkaClientError

    try:
        producer.begin_transaction()
        producer.produce(topic, value, key=message["model_name"].encode())
        producer.flush(10)
        if int(time.time() * 1000) - message["emitted_time"] > limit_ms:
            producer.abort_transaction(10)
            return False
        producer.commit_transaction(10)
    except KafkaException as exc:
        raise KafkaClientError(f"publishing the {message['kind']} message to {topic!r} failed "
                               f"({exc.args[0].str() if exc.args else exc}); {_abort(producer)}") from exc
    return True


def _abort(producer) -> str:
    """Abort the open transaction after a failure; what became of the message, for the user."""
    from confluent_kafka import KafkaException

    try:
        producer.abort_transaction(10)
    except KafkaException:
        return "its outcome is unknown: read the control topic (streamscore control) before trying again"
    return "aborted, nothing published: try again"


def _set_pointer(settings: Settings, name: str, version: str) -> None:
    try:
        from connectors.redis_client import redis_client

        redis_client(settings).set(pointer_key(name), version)
    except Exception as exc:  # noqa: BLE001 - the pointer is a convenience; control is the truth
        print(f"warning: Redis pointer {pointer_key(name)} not updated: {type(exc).__name__}: {exc}", file=sys.stderr)


def _check_same_contract(registry: ModelRegistry, name: str, version: str, other: str | None) -> None:
    model = registry.load(name, version)  # checksum and ONNX graph
    if other and other != version and registry.load(name, other).card.features != model.card.features:
        raise ModelError(f"{name}:{version} has another feature contract than {name}:{other}: a running job "
                         f"cannot switch between them (deploy it as a new job)")


def apply_change(settings: Settings, change: LifecycleChange) -> PublishedChange:
    """Publish ``change`` on control (checked against the registry and the control history first)."""
    action = LifecycleAction(change.action)
    topic = change.control_topic or settings.topic("control").name
    name, version, previous, percent = _resolve(change, read_control(settings, topic))
    if version is not None:
        _check_same_contract(ModelRegistry(change.registry_dir), name, version, previous)
    message = publish(settings, topic, lambda now_ms: lifecycle_message(
        action.kind, name, version or "", now_ms=now_ms, delay_ms=change.activation_delay_ms,
        previous=previous, percent=percent), guard_ms=change.activation_delay_ms // 2)
    if action in (LifecycleAction.PROMOTE, LifecycleAction.ROLLBACK):
        _set_pointer(settings, name, version)
    return PublishedChange(message, topic, name, version, previous, percent)


def _resolve(change: LifecycleChange, history: list[dict]) -> tuple[str, str | None, str | None, int | None]:
    """(name, version, previous primary version, canary percent) of the requested change."""
    action = LifecycleAction(change.action)
    if ":" in change.ref:
        ref = parse_ref(change.ref)
        name, version = ref.name, ref.version
    else:
        name, version = change.ref, None
    current = current_primary(history, name)
    previous = current["version"] if current else None
    percent = None
    if action is LifecycleAction.ROLLBACK:
        version, previous = rollback_target(history, name)
    elif action is LifecycleAction.CANARY:
        percent = change.percent
        if percent is None or not 0 <= percent <= 100:
            raise StreamscoreError("models canary needs --percent between 0 and 100")
    elif action is LifecycleAction.SHADOW_DETACH:
        version = None
    if version is None and action is not LifecycleAction.SHADOW_DETACH:
        raise StreamscoreError(f"models {action} needs NAME:VERSION")
    return name, version, previous, percent
