"""Labelled windows cut in label time: the same windows at any parallelism and in any run.

Labels come late and from several subtasks, so a window closed where the arriving counts reach
``label_window_events`` would take them in the order the subtasks deliver them. Instead each labelled
partial count carries its bucket of label time (the labels record's Kafka timestamp, ``label_bucket_ms``
wide). The judging key keeps one count vector per bucket and, when the watermark passes a bucket's end,
adds the bucket to the open window, so buckets join windows in label-time order; a window closes at the
first bucket that takes it to ``label_window_events`` or more. Which labels share a window then depends
on their label times alone (window sizes vary by up to a bucket).

Two exceptions, both counted in the sidecar's metrics: a label whose bucket was added already (it came
later than the watermark) joins the open window; and when the watermark has not moved for
``label_flush_ms`` (every source idle: the stream paused; sampled, so noticed after one to two
intervals), the open buckets are added in label-time order as they are, and the windows they complete
are judged (a remainder below ``label_window_events`` waits for more labels, as any open window does).

Pure: no Flink. ``jobs.drift_windows`` holds the buckets in Flink state and calls this.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift.labelled import merge

_HEADER = 2  # int64s before the counts in the stored open window: its start and end


@dataclass(frozen=True, eq=False)  # its counts are an array: compare the fields
class LabelWindow:
    """Labelled counts (``drift.labelled.label_counts`` layout) over label times [start, end)."""

    counts: np.ndarray | None = None
    start: int = 0
    end: int = 0

    @property
    def events(self) -> int:
        return 0 if self.counts is None else int(self.counts[0])

    def to_bytes(self) -> bytes:
        counts = np.zeros(0, dtype=np.int64) if self.counts is None else self.counts
        return np.concatenate([np.asarray([self.start, self.end], dtype=np.int64), counts]).tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> LabelWindow:
        if not raw:
            return cls()
        values = np.frombuffer(raw, dtype=np.int64)
        counts = values[_HEADER:].copy()
        return cls(counts if len(counts) else None, int(values[0]), int(values[1]))


class LabelWindowCutter:
    """Buckets of label time and the rule that cuts windows over them."""

    def __init__(self, bucket_ms: int, window_events: int):
        self.bucket_ms, self.window_events = bucket_ms, window_events

    def buckets(self, millis: np.ndarray) -> np.ndarray:
        """The bucket (its first millisecond) of each label time."""
        millis = np.asarray(millis, dtype=np.int64)
        return millis - millis % self.bucket_ms

    def closes_at(self, bucket: int) -> int:
        """The watermark at which a bucket is complete: its last millisecond (its event-time timer)."""
        return bucket + self.bucket_ms - 1

    def bucket_closing_at(self, timer: int) -> int:
        return timer + 1 - self.bucket_ms

    def is_closed(self, bucket: int, watermark: int) -> bool:
        return self.closes_at(bucket) <= watermark

    def add(self, window: LabelWindow, counts: np.ndarray, bucket: int) -> tuple[LabelWindow, LabelWindow | None]:
        """``counts`` of ``bucket`` added to the open ``window`` -> (the open window after it, the window
        closed by it or None). A late bucket (older than the window's start) moves the start back, never
        the end."""
        merged = merge(window.counts, counts)
        start = bucket if window.counts is None else min(window.start, bucket)
        end = max(window.end, bucket + self.bucket_ms)
        grown = LabelWindow(merged, start, end)
        if grown.events >= self.window_events:
            return LabelWindow(), grown
        return grown, None
