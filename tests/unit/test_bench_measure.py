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


def test_a_row_at_its_hint_drains_the_same_backlog_in_every_repetition():
    from benchmarks.bench import FULL, backlog_rate
    from benchmarks.systems import catalogue

    spec = next(s for s in catalogue(FULL.sweep_batches, FULL.sweep_delays) if s.key == "wire-jvm-eo")
    first = FULL.backlog(backlog_rate(spec, []))
    assert first == FULL.backlog(backlog_rate(spec, [54_000.0])) == FULL.max_backlog  # a slow first run stays
    slow = dataclasses.replace(spec, rate_hint=1000.0)
    assert backlog_rate(slow, [3000.0, 5000.0]) == 4000.0  # a row faster than its hint: its median


def _specs(*shapes: tuple[str, str | None]):
    from benchmarks.systems import SystemSpec

    return [SystemSpec(f"row-{i}", "a row", kind, "wire", decoder=decoder) for i, (kind, decoder) in enumerate(shapes)]


@pytest.mark.parametrize(("shapes", "repetitions", "expected"), [
    ((("loop-score", None), ("flink-scoring", "jvm"), ("flink-scoring", "jvm"), ("flink-passthrough", None)), 3,
     ["row-1", "row-3"]),  # one run of each Flink shape, none of a loop
    ((("flink-scoring", "jvm"), ("flink-scoring", "jvm")) + tuple((f"flink-{i}", None) for i in range(8)), 2,
     ["row-0", *(f"row-{i}" for i in range(2, 7))]),  # the repeated shape once; at most WARM_UP_RUNS (6)
    ((("loop-score", None), ("quix", None)), 3, []),
    ((("flink-scoring", "jvm"),), 1, []),  # one repetition (a smoke run): no warm-up
])
def test_a_run_warms_the_fresh_cluster_up_with_one_run_of_each_flink_shape(monkeypatch, shapes, repetitions,
                                                                          expected):
    from benchmarks import bench

    measured: list[tuple[str, int]] = []
    monkeypatch.setattr(bench, "measure", lambda _s, spec, _p, params, _pids: measured.append((spec.key,
                                                                                             params.backlog)))
    monkeypatch.setattr(bench, "_stack_pids", lambda _s: {})
    plan = bench.BenchPlan(**{**bench.FULL.__dict__, "repetitions": repetitions})
    assert bench.warm_up(None, plan, _specs(*shapes), None) == expected
    assert measured == [(key, plan.backlog(5000.0)) for key in expected]
