"""The drift sidecar's stateful step (jobs.drift_job.DriftWindows) on fake Flink state: time windows
are merged until their timer, judged once, and a partial arriving after that is dropped and counted,
never re-opening the window (which would judge it twice and repeat its alert ids)."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.drift_config import DriftJobConfig
from jobs.drift_job import DriftWindows
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
        self.counters, self.maps = {}, {}

    def get_metrics_group(self):
        return _Group(self.counters)

    def get_state(self, descriptor):
        return _Value()

    def get_map_state(self, descriptor):
        return self.maps.setdefault(descriptor.name, _Map())


class _Timers:
    def __init__(self):
        self.watermark, self.registered = -(2**63), []

    def current_watermark(self):
        return self.watermark

    def register_event_time_timer(self, at):
        self.registered.append(at)


class _Context:
    def __init__(self, timers):
        self._timers = timers

    def timer_service(self):
        return self._timers


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
    return partial


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
