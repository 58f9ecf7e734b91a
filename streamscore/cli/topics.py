"""``streamscore topics create | list`` and ``streamscore consume TOPIC``: the topics and what is on them."""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Iterable

from streamscore.cli.arg_types import positive_float
from streamscore.cli.cli_metrics import error_reason, metrics_port, serve_metrics
from streamscore.foundation.config import TOPIC_ROLES, Settings
from streamscore.foundation.errors import InputError, StreamscoreError


def register(sub) -> None:
    topics = sub.add_parser("topics", help="create or list the topics")
    topics.add_argument("action", choices=["create", "list"])
    topics.add_argument("--topic", nargs="+", default=[], metavar="NAME",
                        help="create: also these topics (your own model's input and outputs)")
    topics.add_argument("--partitions", type=int, default=2, help="of each --topic (default 2)")
    topics.set_defaults(handler=create_or_list)
    consume = sub.add_parser("consume", help="print decoded records of a topic as JSON lines (read_committed)")
    consume.add_argument("topic", help="a topic name or role (events, scored, dead-letter, drift-alerts, control)")
    consume.add_argument("--from-beginning", action="store_true")
    consume.add_argument("--max", type=int, default=None)
    consume.add_argument("--follow", action="store_true")
    consume.add_argument("--idle-timeout", type=positive_float, default=5.0)
    consume.add_argument("--metrics-port", type=metrics_port, default=None, metavar="PORT",
                         help="serve Prometheus metrics on 127.0.0.1:PORT while consuming")
    consume.set_defaults(handler=lambda args, settings: consume_topic(settings, args))


def create_or_list(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.kafka_clients import create_topics, existing_topics

    if args.action == "create":
        from streamscore.foundation.config import TopicSpec

        if args.partitions < 1:
            raise InputError(f"--partitions must be >= 1, got {args.partitions}")
        for name, outcome in create_topics(settings).items():
            print(f"{name:16s} {outcome}")
        if args.topic:
            for name, outcome in create_topics(settings, [TopicSpec("own", t, args.partitions)
                                                          for t in args.topic]).items():
                print(f"{name:16s} {outcome}")
        for subject, schema_id in register_schemas(settings).items():
            print(f"{subject:22s} schema id {schema_id} (BACKWARD) at {settings.schema_registry.url}")
    else:
        for name, parts in sorted(existing_topics(settings).items()):
            print(f"{name:16s} {parts} partition(s)")
    return 0


def register_schemas(settings: Settings) -> dict[str, int]:
    """Each topic's schema under its ``TOPIC-value`` subject in the Schema Registry."""
    from connectors.schema_registry import SchemaRegistry, register_topic_schemas

    topics = {role: settings.topic(role).name for role in TOPIC_ROLES}
    return register_topic_schemas(SchemaRegistry(settings.schema_registry), topics)


def resolve_topic(settings: Settings, name_or_role: str) -> str:
    role = name_or_role.replace("-", "_")
    return settings.topic(role).name if role in TOPIC_ROLES else name_or_role


def consume_topic(settings: Settings, args: argparse.Namespace) -> int:
    from connectors.kafka_reads import read_topic

    topic = resolve_topic(settings, args.topic)
    if args.max is not None and args.max <= 0:
        raise InputError("--max must be > 0")
    records = read_topic(settings, topic, max_records=args.max, idle_timeout_s=args.idle_timeout,
                         from_beginning=args.from_beginning, follow=args.follow)
    reader = registered_reader(settings)
    with serve_metrics(getattr(args, "metrics_port", None)) as metrics:
        if metrics is None:
            for record in records:
                print(json.dumps(decode_for_display(record.value, reader), default=str), flush=True)
            return 0
        return _consume_counted(records, topic, metrics, reader)


def registered_reader(settings: Settings):
    """What reads Confluent-framed payloads of any registered schema (the registry asked per new id)."""
    from connectors.schema_registry import SchemaRegistry
    from schemas.confluent import RegisteredReader

    return RegisteredReader(SchemaRegistry(settings.schema_registry))


def _consume_counted(records: Iterable, topic: str, metrics, reader=None) -> int:
    """Print ``records`` as ``consume`` does, counting them and their failures in ``metrics``."""
    try:
        for record in records:
            metrics.consumed(topic)
            view = decode_for_display(record.value, reader)
            if "_error" in view:
                metrics.consume_failed(topic, "decode")
            print(json.dumps(view, default=str), flush=True)
    except (StreamscoreError, KeyboardInterrupt) as exc:
        metrics.consume_failed(topic, error_reason(exc))
        raise
    return 0


def decode_for_display(payload: bytes | None, reader=None) -> dict:
    """A JSON-able view of a payload: decoded fields, or the error and the raw bytes.

    A payload that starts with the Confluent magic byte 00 is read through the Schema Registry
    (``reader``: a ``schemas.confluent.RegisteredReader``); one in Avro single-object encoding
    (``C3 01``, what streamscore wrote before the registry) by its fingerprint, for migration.
    """
    from schemas import SerdeError, decode_any
    from streamscore.foundation.errors import RegistryError

    try:
        if payload and payload[0] == 0 and reader is not None:
            schema, record = reader.decode(payload)
            return {"_schema": schema, **_jsonable(record)}
        decoded = decode_any(payload or b"")
    except (SerdeError, RegistryError) as exc:
        return {"_error": str(exc), "_raw_base64": base64.b64encode(payload or b"").decode()}
    record = decoded.record if hasattr(decoded, "record") else decoded
    schema = getattr(decoded, "schema_name", None)
    view = _jsonable(record)
    return {"_schema": schema, **view} if schema else view


def _jsonable(record) -> dict:
    """A record's fields, bytes as base64; a value that is no record (a schema of a primitive type, or the null of
    a nullable record) as ``_value``."""
    if not isinstance(record, dict):
        return {"_value": base64.b64encode(record).decode() if isinstance(record, bytes) else record}
    return {k: (base64.b64encode(v).decode() if isinstance(v, bytes) else v) for k, v in record.items()}
