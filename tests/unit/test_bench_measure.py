"""The benchmark's own process must not add latency to what it measures."""

from __future__ import annotations

import dataclasses
import gc

import pytest

from benchmarks.measure import collector_gc_paused


def test_the_collector_process_measures_with_the_garbage_collector_paused():
    assert gc.isenabled()
    with collector_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_garbage_collector_comes_back_when_a_measurement_fails():
    with pytest.raises(RuntimeError), collector_gc_paused():
        raise RuntimeError("a system failed")
    assert gc.isenabled()


def test_a_collector_that_ran_without_it_stays_without_it():
    gc.disable()
    try:
        with collector_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_every_repetition_drains_a_backlog_sized_alike():
    from benchmarks.bench import FULL, backlog_rate
    from benchmarks.systems import catalogue

    spec = next(s for s in catalogue(FULL.sweep_batches, FULL.sweep_delays) if s.key == "wire-jvm-eo")
    first = FULL.backlog(backlog_rate(spec, []))
    assert first == FULL.backlog(backlog_rate(spec, [54_000.0])) == FULL.max_backlog  # a slow first run stays
    slow = dataclasses.replace(spec, rate_hint=1000.0)
    assert backlog_rate(slow, [3000.0, 5000.0]) == 4000.0  # a row faster than its hint: its median
