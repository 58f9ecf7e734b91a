"""The benchmark's own process must not add latency to what it measures."""

from __future__ import annotations

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
