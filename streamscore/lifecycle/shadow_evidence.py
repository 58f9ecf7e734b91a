"""Reading the ends of Kafka topics for the retrainer: its training data and its shadow's evidence.

Glue only: :func:`read_tail` reads the last records of a topic (read_committed); :func:`read_evidence`
counts a challenger's shadow evidence from the job's ``scored`` and ``scored-shadow`` records and
the ``labels`` topic (the join and the counting are ``models.promotion_policy``, pure).

"Recent" is counted from the end of each topic: the last ``recent`` records of ``scored-shadow``,
the last ``2 x recent`` of ``scored`` (the champion records of the same events; the shadow only
covers events since its attach) and the last ``3 x recent`` of ``labels`` (labels arrive late).
"""

from __future__ import annotations

import math
import time
from collections import Counter

from models.promotion_policy import ShadowEvidence, evidence_from_records
from streamscore.foundation.config import Settings


def read_tail(settings: Settings, topic: str, count: int, decode, timeout_s: float = 60.0, *,
              skipped: Counter | None = None) -> list[dict]:
    """Decoded committed records among the last ``count`` offsets of ``topic`` (spread over its partitions);
    records that do not decode are skipped (counted in ``skipped`` by error, where given)."""
    from confluent_kafka import KafkaException, TopicPartition

    from connectors.kafka_clients import KafkaClientError, existing_topics
    from connectors.kafka_reads import read_committed_consumer
    from streamscore.foundation.errors import SerdeError

    partitions = existing_topics(settings).get(topic)
    if partitions is None:
        raise KafkaClientError(f"topic {topic!r} does not exist at {settings.kafka_bootstrap}")
    consumer = read_committed_consumer(settings, **{"enable.partition.eof": False})
    records, deadline, share = [], time.monotonic() + timeout_s, math.ceil(count / partitions)
    try:
        bounds = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)
                  for p in range(partitions)]
        tps = [TopicPartition(topic, p, max(low, high - share)) for p, (low, high) in enumerate(bounds)]
        consumer.assign(tps)
        ends = [high for _low, high in bounds]
        while any(end > start.offset and tp.offset < end
                  for tp, start, end in zip(consumer.position(tps), tps, ends)):
            if time.monotonic() > deadline:
                raise KafkaClientError(f"could not read the end of topic {topic!r} in {timeout_s:.0f} s")
            for record in consumer.consume(num_messages=1000, timeout=0.2):
                if record.error() is None:
                    try:
                        records.append(decode(record.value()))
                    except SerdeError as exc:
                        if skipped is not None:
                            skipped[type(exc).__name__] += 1
    except KafkaException as exc:
        raise KafkaClientError(f"could not read topic {topic!r}: {exc.args[0].str() if exc.args else exc}") from exc
    finally:
        consumer.close()
    return records


def read_evidence(settings: Settings, topics: dict[str, str], ref: tuple[str, str], recent: int) -> ShadowEvidence:
    """The shadow evidence of challenger ``ref`` (model name, version): ``topics`` names the ``scored``,
    ``shadow`` and ``labels`` topics."""
    from connectors.schema_registry import SchemaRegistry, topic_reader

    registry = SchemaRegistry(settings.schema_registry)
    scored = topic_reader(registry, "scored").decode
    shadow = read_tail(settings, topics["shadow"], recent, scored)
    champion = read_tail(settings, topics["scored"], 2 * recent, scored) if shadow else []
    labels = topic_reader(registry, "label").decode
    truth = {r["event_id"]: int(r["label"])
             for r in read_tail(settings, topics["labels"], 3 * recent, labels)} if shadow else {}
    return evidence_from_records(*ref, champion, shadow, truth)
