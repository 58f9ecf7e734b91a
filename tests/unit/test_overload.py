"""The overload run's pure parts: latency by 10 s of send time, and the sampler's per-phase maxima."""

from __future__ import annotations

from streamscore.harness.overload import _p99_by_10s
from streamscore.harness.resources import GROUPS, ResourceSampler
from streamscore.harness.traffic import TrafficReport


def test_p99_by_10s_follows_a_growing_backlog():
    report = TrafficReport()
    # 30 s of sends, one per 100 ms; latency grows by 1 s every 10 s of send time
    report.arrivals = [(1_000_000 + i * 100, 1_000_000 + i * 100 + 200 + (i // 100) * 1000) for i in range(300)]
    assert _p99_by_10s(report) == (200.0, 1200.0, 2200.0)
    assert _p99_by_10s(TrafficReport()) == ()


def test_max_since_takes_only_the_samples_of_the_phase():
    sampler = ResourceSampler(settings=None, job_id=lambda: "")
    sampler.samples = [(t, {g: float(t * 10 + i) for i, g in enumerate(GROUPS)}, None) for t in (0.0, 5.0, 10.0)]
    assert sampler.max_since(5.0) == {g: 100.0 + i for i, g in enumerate(GROUPS)}
    assert sampler.max_since(11.0) == {}
