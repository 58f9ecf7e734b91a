"""Labelled windows over buckets of label time (jobs.label_windows) and the labelled partial counts that feed
them (jobs.drift_logic.SidecarLogic.label_partials), and their settings: pure, no Flink."""

from __future__ import annotations

import numpy as np
import pytest

from drift.labelled import VECTOR_LENGTH, label_counts
from jobs.drift_config import DriftJobConfig
from jobs.drift_logic import SidecarLogic
from jobs.label_windows import LabelWindow, LabelWindowCutter
from streamscore.foundation.errors import ConfigError


def _counts(n: int) -> np.ndarray:
    return label_counts(np.full(n, 0.9), np.ones(n, dtype=np.int64), np.ones(n, dtype=np.int64))


def test_a_label_window_survives_its_state_bytes():
    window = LabelWindow(_counts(7), start=1_000, end=3_000)
    back = LabelWindow.from_bytes(window.to_bytes())
    assert (back.start, back.end, back.events) == (1_000, 3_000, 7)
    assert np.array_equal(back.counts, window.counts)
    empty = LabelWindow.from_bytes(LabelWindow().to_bytes())
    assert LabelWindow.from_bytes(None).counts is None and empty.counts is None and empty.events == 0


def test_buckets_are_aligned_to_their_width():
    cutter = LabelWindowCutter(bucket_ms=1_000, window_events=100)
    assert cutter.buckets(np.array([0, 999, 1_000, 12_345])).tolist() == [0, 0, 1_000, 12_000]
    assert cutter.closes_at(12_000) == 12_999 and cutter.bucket_closing_at(12_999) == 12_000
    assert not cutter.is_closed(12_000, 12_998) and cutter.is_closed(12_000, 12_999)


def test_a_window_closes_at_the_first_bucket_that_takes_it_to_its_size():
    cutter = LabelWindowCutter(bucket_ms=1_000, window_events=100)
    window, closed = cutter.add(LabelWindow(), _counts(60), 5_000)
    assert closed is None and (window.start, window.end, window.events) == (5_000, 6_000, 60)
    window, closed = cutter.add(window, _counts(70), 6_000)
    assert window.counts is None and (closed.start, closed.end, closed.events) == (5_000, 7_000, 130)
    # a late bucket (older than the open window) widens its span backwards, never forwards
    window, _ = cutter.add(LabelWindow(_counts(10), 8_000, 9_000), _counts(5), 2_000)
    assert (window.start, window.end, window.events) == (2_000, 9_000, 15)


def test_joined_rows_are_counted_per_bucket_of_their_label_time():
    cutter = LabelWindowCutter(bucket_ms=1_000, window_events=100)
    scores = np.array([0.9, 0.1, 0.8, 0.2, 0.7])
    predicted, actual = (scores >= 0.5).astype(np.int64), np.array([1, 0, 0, 0, 1])
    millis = np.array([1_500, 1_999, 2_000, 4_100, 1_000])
    partials = SidecarLogic.label_partials((scores, predicted, actual), millis, cutter)
    assert [(bucket, n) for bucket, n, _ in partials] == [(1_000, 3), (2_000, 1), (4_000, 1)]
    total = sum(np.frombuffer(blob, dtype=np.int64) for _, _, blob in partials)
    assert len(total) == VECTOR_LENGTH and np.array_equal(total, label_counts(scores, predicted, actual))


def test_the_idle_flush_must_wait_longer_than_a_paused_source_takes_to_count_as_idle():
    with pytest.raises(ConfigError, match=r"label_flush_ms \(9999\) must be at least twice idle_timeout_ms \(5000\)"):
        DriftJobConfig(bootstrap="x", labels_topic="labels", label_flush_ms=9_999, idle_timeout_ms=5_000).checked()
    with pytest.raises(ConfigError, match="and 2000"):
        DriftJobConfig(bootstrap="x", labels_topic="labels", label_flush_ms=1_999, idle_timeout_ms=0).checked()
    with pytest.raises(ConfigError, match="label_bucket_ms must be >= 1, got 0"):
        DriftJobConfig(bootstrap="x", label_bucket_ms=0).checked()
    assert DriftJobConfig(bootstrap="x", labels_topic=None, label_flush_ms=1).checked().label_flush_ms == 1
