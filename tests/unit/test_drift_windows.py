"""The drift sidecar's stateful step (jobs.drift_windows.DriftWindows) on fake Flink state: time windows
are merged until their timer, judged once, and a partial arriving after that is dropped and counted,
never re-opening the window (which would judge it twice and repeat its alert ids). Labelled windows are
cut over whole buckets of label time in label-time order, whatever order their partials arrive in."""

from __future__ import annotations

import numpy as np
import pytest
from pyflink.datastream.time_domain import TimeDomain

from drift.labelled import label_counts
from jobs.drift_config import DriftJobConfig
from jobs.drift_windows import DriftWindows
from jobs.label_windows import LabelWindow
from models.demo_data import generate_events
from schemas.serde import serde_for

WINDOW_MS, LATENESS_MS = 60_000, 5_000
START_MS = 1_700_000_040_000  # a multiple of WINDOW_MS


class _Counter:
    def __init__(self):
        self.value = 0

    def inc(self, n=1):
        self.value += n


class _Group:
    def __init__(self, counters):
        self.counters = counters

    def add_group(self, key, value=None):
        return self

    def counter(self, name):
        return self.counters.setdefault(name, _Counter())

    def gauge(self, name, read):
        pass


class _Value:
    def __init__(self):
        self.held = None

    def value(self):
        return self.held

    def update(self, value):
        self.held = value

    def clear(self):
        self.held = None


class _Map(dict):
    def put(self, key, value):
        self[key] = value

    def remove(self, key):
        del self[key]


class _Runtime:
    def __init__(self):
        self.counters, self.maps, self.values = {}, {}, {}

    def get_metrics_group(self):
        return _Group(self.counters)

    def get_state(self, descriptor):
        return self.values.setdefault(descriptor.name, _Value())

    def get_map_state(self, descriptor):
        return self.maps.setdefault(descriptor.name, _Map())


class _Timers:
    def __init__(self):
        self.watermark, self.registered, self.now, self.processing = -(2**63), [], 0, []

    def current_watermark(self):
        return self.watermark

    def register_event_time_timer(self, at):
        self.registered.append(at)

    def current_processing_time(self):
        return self.now

    def register_processing_time_timer(self, at):
        self.processing.append(at)


class _Context:
    def __init__(self, timers):
        self._timers, self.domain = timers, TimeDomain.EVENT_TIME

    def timer_service(self):
        return self._timers

    def time_domain(self):
        return self.domain


@pytest.fixture()
def windows():
    config = DriftJobConfig(bootstrap="x", window_kind="time", window_ms=WINDOW_MS,
                            allowed_lateness_ms=LATENESS_MS).checked()
    function, runtime = DriftWindows(config), _Runtime()
    function.open(runtime)
    return function, runtime, _Context(_Timers())


def _partial(function, seed: int, n: int = 400):
    """(window_start, n, counts) of ``n`` demo events inside the first window."""
    events = generate_events(n, seed, start_time_ms=START_MS)
    millis = np.asarray([min(e["event_time"], START_MS + WINDOW_MS - 1) for e in events], dtype=np.int64)
    payloads = [serde_for("event").encode(e) for e in events]
    (partial,) = function.logic.partials("events", payloads, millis, WINDOW_MS)
    assert partial[0] == START_MS
    return (*partial, False)


def test_a_window_merges_its_partials_until_its_timer_and_is_judged_once(windows):
    function, runtime, ctx = windows
    for seed in (1, 2):
        assert list(function.process_element(_partial(function, seed), ctx)) == []
    closes = START_MS + WINDOW_MS + LATENESS_MS - 1
    assert ctx.timer_service().registered == [closes]  # one timer, however many partials
    assert function.logic.events_in(runtime.maps["windows"][START_MS]) == 800
    ctx.timer_service().watermark = closes
    list(function.on_timer(closes, ctx))
    assert runtime.counters["windows_closed"].value == 1 and START_MS not in runtime.maps["windows"]


def test_a_partial_after_its_window_was_judged_is_dropped_and_counted(windows):
    function, runtime, ctx = windows
    list(function.process_element(_partial(function, 1), ctx))
    closes = START_MS + WINDOW_MS + LATENESS_MS - 1
    ctx.timer_service().watermark = closes
    list(function.on_timer(closes, ctx))
    assert list(function.process_element(_partial(function, 3), ctx)) == []
    assert START_MS not in runtime.maps["windows"]  # not re-opened: no second judgement, no repeated alert ids
    assert ctx.timer_service().registered == [closes]
    assert runtime.counters["late_partials_dropped"].value == 1
    assert runtime.counters["windows_closed"].value == 1


def test_a_partial_within_its_allowed_lateness_still_counts(windows):
    function, runtime, ctx = windows
    list(function.process_element(_partial(function, 1), ctx))
    ctx.timer_service().watermark = START_MS + WINDOW_MS + LATENESS_MS - 2  # past the end, not the lateness
    list(function.process_element(_partial(function, 2), ctx))
    assert function.logic.events_in(runtime.maps["windows"][START_MS]) == 800
    assert runtime.counters["late_partials_dropped"].value == 0


# -- labelled windows: buckets of label time ----------------------------------------------------------

BUCKET_MS = 1_000


def _fresh_labelled():
    config = DriftJobConfig(bootstrap="x", label_window_events=1000, label_bucket_ms=BUCKET_MS,
                            label_flush_ms=10_000).checked()
    function, runtime = DriftWindows(config), _Runtime()
    function.open(runtime)
    return function, runtime, _Context(_Timers())


@pytest.fixture()
def labelled():
    return _fresh_labelled()


def _labels(bucket: int, n: int, seed: int, accuracy: float = 0.96):
    """A labelled partial of ``n`` joined rows in ``bucket`` (its index from START_MS), ``accuracy`` right."""
    rng = np.random.default_rng(seed)
    actual = (rng.random(n) < 0.1).astype(np.int64)
    right = rng.random(n) < accuracy
    predicted = np.where(right, actual, 1 - actual)
    counts = label_counts(rng.random(n), predicted, actual)
    return START_MS + bucket * BUCKET_MS, n, counts.tobytes(), True


def _close_buckets(function, ctx, up_to: int) -> list:
    """The watermark passes buckets 0..up_to; their timers fire in order (as Flink fires them)."""
    out, timers = [], ctx.timer_service()
    timers.watermark = START_MS + (up_to + 1) * BUCKET_MS - 1
    for at in sorted(t for t in set(timers.registered) if t <= timers.watermark):
        timers.registered.remove(at)
        out += list(function.on_timer(at, ctx))
    return out


def _judged(function, runtime, ctx, partials, up_to: int) -> list[tuple]:
    """(start, end, size, accuracy) of each labelled window judged after ``partials`` arrive in that order."""
    judged = []
    original = function.logic.judge_labelled

    def record(closed, state):
        outputs, new_state = original(closed, state)
        accuracy = function.logic.last_labelled.summary.accuracy
        judged.append((closed.start, closed.end, closed.events, round(accuracy, 4)))
        return outputs, new_state

    function.logic.judge_labelled = record
    for partial in partials:
        list(function.process_element(partial, ctx))
    _close_buckets(function, ctx, up_to)
    return judged


def test_labelled_windows_take_whole_buckets_in_label_time_order_whatever_the_arrival_order(labelled):
    partials = [_labels(0, 400, 1), _labels(1, 700, 2), _labels(1, 200, 3), _labels(2, 600, 4), _labels(3, 500, 5)]
    function, runtime, ctx = labelled
    in_order = _judged(function, runtime, ctx, partials, up_to=3)
    function, runtime, ctx = _fresh_labelled()  # a second sidecar: the same partials in another order
    shuffled = _judged(function, runtime, ctx, [partials[3], partials[2], partials[4], partials[0], partials[1]],
                       up_to=3)
    # buckets 0+1 (1,300 labels) close the first window; 2+3 (1,100) the second; the same either way
    assert in_order == shuffled
    assert [(start, end, size) for start, end, size, _ in in_order] == [
        (START_MS, START_MS + 2 * BUCKET_MS, 1300), (START_MS + 2 * BUCKET_MS, START_MS + 4 * BUCKET_MS, 1100)]
    assert runtime.counters["late"].value == 0


def test_a_bucket_waits_for_the_watermark_and_one_timer_serves_its_partials(labelled):
    function, runtime, ctx = labelled
    for seed in (1, 2):
        list(function.process_element(_labels(0, 600, seed), ctx))
    assert ctx.timer_service().registered == [START_MS + BUCKET_MS - 1]
    assert function.logic.events_in(runtime.maps["label_buckets"][START_MS]) == 1200
    assert runtime.values["label_window"].value() is None  # nothing judged before the watermark passes it
    assert _judged(function, runtime, ctx, [], up_to=0)[0][2] == 1200


def test_a_label_later_than_its_bucket_joins_the_open_window_and_is_counted(labelled):
    function, runtime, ctx = labelled
    _judged(function, runtime, ctx, [_labels(0, 300, 1), _labels(1, 300, 2)], up_to=1)
    judged = _judged(function, runtime, ctx, [_labels(0, 300, 3)], up_to=1)  # bucket 0 is closed already
    assert runtime.counters["late"].value == 300
    assert judged == [] and START_MS not in runtime.maps["label_buckets"]
    judged = _judged(function, runtime, ctx, [_labels(2, 300, 4)], up_to=2)
    assert [(start, end, size) for start, end, size, _ in judged] == [(START_MS, START_MS + 3 * BUCKET_MS, 1200)]


def test_open_buckets_are_added_in_order_when_the_watermark_stands_still(labelled):
    function, runtime, ctx = labelled
    timers = ctx.timer_service()
    timers.watermark = START_MS - 1
    for partial in (_labels(2, 600, 1), _labels(0, 600, 2), _labels(1, 600, 3)):
        list(function.process_element(partial, ctx))
    assert timers.processing == [10_000]  # one idle check, set by the first bucket
    judged = []
    original = function.logic.judge_labelled
    function.logic.judge_labelled = lambda closed, state: (judged.append((closed.start, closed.end, closed.events)),
                                                           original(closed, state))[1]
    ctx.domain = TimeDomain.PROCESSING_TIME
    timers.watermark, timers.now = START_MS + 100, 10_000  # the watermark moved: check again later
    assert list(function.on_timer(10_000, ctx)) == [] and judged == []
    assert timers.processing == [10_000, 20_000]
    timers.now = 20_000  # it stood still for label_flush_ms: every open bucket is added, in label-time order
    list(function.on_timer(20_000, ctx))
    assert judged == [(START_MS, START_MS + 2 * BUCKET_MS, 1200)] and not runtime.maps["label_buckets"]
    assert runtime.values["label_window"].value() is not None  # bucket 2 opens the next window
    assert runtime.counters["idle_flushes"].value == 1
    # a label of a bucket the flush added is late, though the watermark has not reached it
    list(function.process_element(_labels(2, 500, 4), ctx))
    assert runtime.counters["late"].value == 500 and not runtime.maps["label_buckets"]
    assert judged[1:] == [(START_MS + 2 * BUCKET_MS, START_MS + 3 * BUCKET_MS, 1100)]
    ctx.domain = TimeDomain.EVENT_TIME
    assert _close_buckets(function, ctx, up_to=2) == [] and len(judged) == 2  # their timers find nothing


def test_after_a_restore_the_buckets_added_before_still_count_as_added(labelled):
    function, runtime, ctx = labelled
    _judged(function, runtime, ctx, [_labels(0, 400, 1), _labels(1, 400, 2)], up_to=1)
    ctx.timer_service().watermark = -(2**63)  # restored from a checkpoint: the watermark starts over
    judged = _judged(function, runtime, ctx, [_labels(1, 300, 3)], up_to=-1)  # a replayed label of bucket 1
    assert runtime.counters["late"].value == 300 and not runtime.maps["label_buckets"]  # late: no new bucket 1
    assert [(start, end, size) for start, end, size, _ in judged] == [(START_MS, START_MS + 2 * BUCKET_MS, 1100)]
    assert LabelWindow.from_bytes(runtime.values["label_window"].value()).counts is None
