"""Producing the ``labels`` topic: delayed ground truth, for the drift sidecar's accuracy windows."""

from __future__ import annotations

from collections.abc import Iterable

from streamscore.foundation.config import Settings


def produce_labels(settings: Settings, records: Iterable[dict], *, topic: str | None = None,
                   transaction_size: int = 1000) -> dict:
    """Write label records (see ``models.demo_labels``) transactionally, keyed by event id, with the
    label time as Kafka timestamp, on the Confluent wire. Each record is validated against
    ``schemas/avro/label.avsc``."""
    from connectors.kafka_clients import produce_transactionally
    from connectors.schema_registry import writer_of

    topic = topic or settings.topic("labels").name
    encode = writer_of(settings.schema_registry, topic, "label").encode
    items = ((record["event_id"].encode(), encode(record), record["label_time"]) for record in records)
    return produce_transactionally(settings, topic, items, transaction_size=transaction_size)
