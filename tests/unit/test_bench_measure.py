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
    from benchmarks.system_specs import catalogue

    spec = next(s for s in catalogue(FULL.sweep_batches, FULL.sweep_delays) if s.key == "wire-jvm-eo")
    first = FULL.backlog(backlog_rate(spec, []))
    assert first == FULL.backlog(backlog_rate(spec, [54_000.0])) == FULL.max_backlog  # a slow first run stays
    slow = dataclasses.replace(spec, rate_hint=1000.0)
    assert backlog_rate(slow, [3000.0, 5000.0]) == 4000.0  # a row faster than its hint: its median


def _specs(*shapes: tuple):
    """Rows of the given (kind, decoder[, framing]) shapes."""
    from benchmarks.system_specs import SystemSpec

    return [SystemSpec(f"row-{i}", "a row", shape[0], "wire", decoder=shape[1], framing=(shape + (None,))[2])
            for i, shape in enumerate(shapes)]


# eight Flink shapes of their own, none of them ("flink-scoring", "jvm")
_EIGHT_SHAPES = (("flink-passthrough", None), ("flink-scoring", "python"), ("flink-scoring", None),
                 ("flink-scoring", "jvm", "single-object"), ("flink-scoring", "python", "single-object"),
                 ("flink-scoring", None, "single-object"), ("flink-scoring", "jvm", "confluent"),
                 ("flink-scoring", "python", "confluent"))


@pytest.mark.parametrize(("shapes", "repetitions", "expected"), [
    ((("loop-score", None), ("flink-scoring", "jvm"), ("flink-scoring", "jvm"), ("flink-passthrough", None)), 3,
     ["row-1", "row-3"]),  # one run of each Flink shape, none of a loop
    ((("flink-scoring", "jvm"), ("flink-scoring", "jvm")) + _EIGHT_SHAPES, 2,
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


def _in_thread(function):
    import threading

    out = []
    thread = threading.Thread(target=lambda: out.append(function()))
    thread.start()
    thread.join()
    return out[0]


def test_the_apparatus_yields_the_cpu_in_its_own_thread_only():
    import os
    import threading

    from benchmarks.feed import yield_cpu

    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert _in_thread(lambda: yield_cpu(main + 5)) == main + 5
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main  # the benchmark's own thread
    # a thread already yielding more stays so (lowering a nice value needs privileges)
    assert _in_thread(lambda: (yield_cpu(main + 7), yield_cpu(main))[1]) == main + 7


def test_a_collector_that_cannot_read_fails_the_wait_instead_of_stalling(monkeypatch):
    from benchmarks import sink

    monkeypatch.setattr(sink, "existing_topics", lambda settings: {"out": 2})

    def refused(settings, **config):
        raise OSError("no broker")

    monkeypatch.setattr(sink, "read_committed_consumer", refused)
    collector = sink.SinkCollector(settings=None, topics=["out"], keyed_topics=set(), nice=3)
    collector.start()
    collector.join(5)
    with pytest.raises(OSError, match="no broker"):
        collector.wait_for(10, stall_s=30, timeout_s=30)
    assert collector.nice_in_force is not None and collector.nice_in_force >= 3


@pytest.mark.parametrize(("kind", "group", "refused"), [("flink-0", "wire", "kind 'flink-0'"),
                                                        ("quix", "wires", "group 'wires'")])
def test_a_row_of_an_unknown_kind_or_group_is_refused(kind, group, refused):
    from benchmarks.system_specs import SystemSpec

    with pytest.raises(ValueError, match=refused):
        SystemSpec("row", "a row", kind, group)


def test_latency_loads_are_fractions_of_the_drained_rate_and_the_half_load_is_not_measured_twice():
    from benchmarks.bench import FULL, checked_loads
    from streamscore.foundation.errors import ConfigError

    assert checked_loads([0.4, 0.5, 0.2, 0.4]) == (0.4, 0.2)
    with pytest.raises(ConfigError, match=r"--latency-loads: .* got \[0.0, 0.6\]"):
        checked_loads([0.3, 0.0, 0.6])  # above the half load a phase could fall behind and void the run
    plan = dataclasses.replace(FULL, extra_loads=(0.3,))
    assert plan.run_params(50_000.0).extra_loads == (0.3,)
    assert plan.run_params(50_000.0, latency_seconds=2.0).extra_loads == ()  # a warm-up: one short phase


def test_each_latency_phase_sends_ids_of_its_own():
    from benchmarks.feed import EventPool

    pool = EventPool(settings=None)
    phases = [pool.latency(50, phase=number) for number in range(3)]
    ids = [events.ids() for events in phases]
    assert all(len(i) == 50 for i in ids)
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert not (ids[1] & pool.backlog(50).ids())
    values = [set(events.values) for events in phases]  # not the same features again (the cache keys on them)
    assert not (values[0] & values[1]) and not (values[1] & values[2])
