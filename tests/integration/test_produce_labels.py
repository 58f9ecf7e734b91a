"""``streamscore produce --labels`` on the real broker: each label is written while the events still flow,
once its label time has come and its event is committed, never before; one label per event, with the
flipped truth the plan says.

The drift sidecar counts a label late when the watermark has passed its label time; labels written long
after their time (as they were, all after the events) were late in any run longer than the delay."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import pytest
from topic_reads import decoder_of

from connectors.kafka_reads import read_topic
from models.demo_data import draw_labels, generate_columns
from models.demo_labels import LabelPlan, observed_classes

pytestmark = pytest.mark.integration

COUNT, RATE, DELAY_MS, SEED = 3000, 400, 1000, 5  # 7.5 s of events; the first labels due after 1 s


def _watch(settings, topic: str, schema: str, seen: list) -> threading.Thread:
    """Records of ``topic`` as a read_committed consumer sees them, each with the wall time it arrived."""
    decode = decoder_of(settings, schema)

    def follow():
        for record in read_topic(settings, topic, max_records=COUNT, follow=True):
            seen.append((time.time() * 1000, record.timestamp_ms, decode(record.value)))

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def test_demo_labels_are_written_as_they_come_due_while_events_flow(settings, fresh_topics):
    events_t, labels_t = fresh_topics("events", "labels")
    prefix = f"lab-{uuid.uuid4().hex[:8]}-"
    seen: list[tuple[float, int, dict]] = []
    events_seen: list[tuple[float, int, dict]] = []
    watchers = [_watch(settings, labels_t, "label", seen), _watch(settings, events_t, "event", events_seen)]
    produced = subprocess.run(
        [sys.executable, "-m", "streamscore.cli.main", "produce", "--count", str(COUNT), "--rate", str(RATE),
         "--transaction-size", "200", "--topic", events_t, "--labels", "--labels-topic", labels_t,
         "--label-delay-ms", str(DELAY_MS), "--label-flip", "0.5", "--drift-after", "1500", "--seed", str(SEED),
         "--id-prefix", prefix, "--quiet"],
        capture_output=True, text=True, timeout=180, check=False)
    assert produced.returncode == 0, produced.stderr[-2000:]
    assert f"produced {COUNT} labels to {labels_t}" in produced.stdout, produced.stdout
    for watcher in watchers:
        watcher.join(timeout=60)
    events = {event["event_id"]: (arrived, event) for arrived, _, event in events_seen}

    assert len(events) == COUNT and len(seen) == COUNT, (len(events), len(seen))
    labels = {label["event_id"]: label for _, _, label in seen}
    assert sorted(labels) == sorted(events)  # one label per event, none twice
    truth = observed_classes(draw_labels(generate_columns(COUNT, SEED), SEED), LabelPlan(DELAY_MS, 0.5, 1500, SEED))
    assert [labels[f"{prefix}{i:09d}"]["label"] for i in range(COUNT)] == truth.tolist()
    for arrived_ms, kafka_ms, label in seen:
        event_arrived_ms, event = events[label["event_id"]]
        assert label["event_time"] == event["event_time"]
        assert kafka_ms == label["label_time"] == label["event_time"] + DELAY_MS
        assert arrived_ms >= label["label_time"], label  # never visible before its time ...
        assert arrived_ms >= event_arrived_ms, label  # ... nor before its event
    lags = sorted(arrived - label["label_time"] for arrived, _, label in seen)
    assert lags[-1] < 5000, lags[-10:]  # each went out once due and committed (0.1 s ticks), not at the end
    last_event_ms = max(event["event_time"] for _, event in events.values())
    assert seen[0][0] < last_event_ms - 3000, "the first labels came after the events, not while they flowed"
