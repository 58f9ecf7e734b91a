"""The peer framework: Quix Streams (3.x), exactly-once, doing what the scoring job does.

Decode (the project's Avro serde) -> feature contract -> ONNX Runtime -> scored or dead-letter
record, through the same :class:`jobs.batch_scorer.BatchScorer` as every other system, one
record per model call. Quix Streams' StreamingDataFrame processes one record at a time and has
no micro-batching step (its count windows are stateful aggregations that emit when a window
closes, not a batching mechanism), so per record is what a Quix user writes.

Transactions commit every ``commit_interval_ms`` (``commit_interval`` in Quix), the same
interval as every other system's commits or checkpoints.
"""

from __future__ import annotations

import logging

from quixstreams import Application, message_context
from quixstreams.models.serializers import Serializer

from benchmarks.handwritten import LoopPlan, batch_scorer
from streamscore.foundation.config import Settings


class _Body(Serializer):
    """The value is (is_scored, key, Avro body); the body goes on the wire as is."""

    def __call__(self, value, ctx) -> bytes:
        return value[2]


def build_app(settings: Settings, source: str, scored: str, dead: str, *, group: str,
              commit_interval_ms: int = 1000) -> Application:
    app = Application(
        broker_address=settings.kafka_bootstrap, consumer_group=group, auto_offset_reset="earliest",
        commit_interval=commit_interval_ms / 1000.0, processing_guarantee="exactly-once",
        auto_create_topics=False, use_changelog_topics=False, loglevel=logging.WARNING,
        producer_extra_config={"linger.ms": 5, "compression.type": "lz4"},
    )
    scorer = batch_scorer(settings, LoopPlan(source, scored, dead))
    source_topic = app.topic(source, value_deserializer="bytes", key_deserializer="bytes")
    topics = {True: app.topic(scored, value_serializer=_Body(), key_serializer="bytes"),
              False: app.topic(dead, value_serializer=_Body(), key_serializer="bytes")}

    def score_one(payload: bytes):
        ctx = message_context()
        result = scorer.score([payload], [ctx.partition], [ctx.offset])
        return result.is_scored[0], result.keys[0], result.bodies[0]

    sdf = app.dataframe(source_topic).apply(score_one)
    sdf.to_topic(lambda value, key, timestamp, headers: topics[value[0]], key=lambda value: value[1])
    return app


def run(settings: Settings, source: str, scored: str, dead: str, *, group: str, commit_interval_ms: int) -> None:
    """Runs until SIGTERM/SIGINT (Quix stops gracefully on either)."""
    build_app(settings, source, scored, dead, group=group, commit_interval_ms=commit_interval_ms).run()
