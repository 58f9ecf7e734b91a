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


def _specs(*kinds: str):
    from benchmarks.systems import SystemSpec

    return [SystemSpec(f"row-{i}", "a row", kind, "wire") for i, kind in enumerate(kinds)]


@pytest.mark.parametrize(("kinds", "repetitions", "expected"), [
    (("loop-score", "flink-scoring", "flink-passthrough"), 3, "row-1"),
    (("flink-passthrough", "flink-scoring"), 2, "row-0"),
    (("loop-score", "quix"), 3, None),
    (("flink-scoring",), 1, None),  # one repetition (a smoke run): nothing to protect from a cold sample
])
def test_a_full_run_warms_the_stack_up_with_its_first_flink_system_unmeasured(monkeypatch, kinds, repetitions,
                                                                              expected):
    from benchmarks import bench

    measured: list[tuple[str, int]] = []
    monkeypatch.setattr(bench, "measure", lambda _s, spec, _p, params, _pids: measured.append((spec.key,
                                                                                             params.backlog)))
    monkeypatch.setattr(bench, "_stack_pids", lambda _s: {})
    plan = bench.BenchPlan(**{**bench.FULL.__dict__, "repetitions": repetitions})
    assert bench.warm_up(None, plan, _specs(*kinds), None) == expected
    assert measured == ([(expected, 10 * plan.min_backlog)] if expected else [])
