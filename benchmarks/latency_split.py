"""Where a scored record's latency goes: the split of a latency phase at the Python step.

Every scored record carries ``scored_time`` (taken when the Python step starts its batch) and ``batch_id``.
With the record's intended send time and the moment it became visible at the sink, each latency splits in two:

- **to the step**: the sender's client, the broker, the Flink source, the JVM decoder, the wait for the batch
  to close (a full batch, or the bundle timer) and its hand-over into the Python worker;
- **after the step**: the step's own work on the batch, the results' way back to the JVM, the Kafka sink
  and the read (and, exactly-once, the wait for the checkpoint's transaction to commit: most of it there).

The batches themselves show the hand-over's rhythm: how many rows one held, and how long from one batch's
start to the next (the cycle: while the JVM waits at a bundle's end for its results, it reads nothing).
Percentiles of each part: a p99 of the parts does not add up to the whole's. The batches are seen through
the measured records only: a batch cut by the warm-up or holding dead letters looks smaller, and one with no
measured record is not seen. The cycle is one worker's only at parallelism 1 (a batch id does not name its
subtask), so it is left out at more.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ScoredSample:
    intended_ms: float  # the sender's intended send time
    scored_ms: int  # the record's scored_time: its batch's start in the Python step
    batch_id: str
    visible_ms: float  # first visible at the read_committed sink


def split(samples: Iterable[ScoredSample], *, with_cycle: bool = True) -> dict:
    """Medians and p99s of both parts, and the batches' rows and (``with_cycle``: one worker's batches) cycle
    (medians, p90 of the cycle); {} without samples."""
    samples = list(samples)
    if not samples:
        return {}
    to_step = np.array([s.scored_ms - s.intended_ms for s in samples])
    after_step = np.array([s.visible_ms - s.scored_ms for s in samples])
    started: dict[str, int] = {}
    rows: dict[str, int] = defaultdict(int)
    for s in samples:
        started.setdefault(s.batch_id, s.scored_ms)
        rows[s.batch_id] += 1
    cycles = np.diff(sorted(started.values()))
    out = {"p50_to_step_ms": _pct(to_step, 50), "p99_to_step_ms": _pct(to_step, 99),
           "p50_after_step_ms": _pct(after_step, 50), "p99_after_step_ms": _pct(after_step, 99),
           "step_batches": len(rows), "p50_batch_rows": _pct(np.array(list(rows.values())), 50)}
    if with_cycle and len(cycles):
        out |= {"p50_batch_cycle_ms": _pct(cycles, 50), "p90_batch_cycle_ms": _pct(cycles, 90)}
    return out


def _pct(values: np.ndarray, q: int) -> float:
    return round(float(np.percentile(values, q)), 1)
