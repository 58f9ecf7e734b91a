"""The soak's plan (random, reproducible, every fault kind) and its memory summary (the slope of a leak)."""

from __future__ import annotations

import pytest

from streamscore.harness.fault_kinds import FaultKind
from streamscore.harness.resources import GROUPS, summary
from streamscore.harness.soak import LEAD_S, TAIL_S, SoakRun, soak_plan


def test_a_soak_plan_has_every_kind_at_random_times_inside_the_traffic():
    plan = soak_plan(SoakRun(30, 2500.0, seed=7))
    schedule = plan.schedule()
    assert plan.count == 30 * 60 * 2500 and plan.sample_every_s
    assert set(plan.faults) == set(FaultKind)  # the registry outage too: every model's jobs ask the registry
    assert len(plan.faults) >= 30 * 60 // 60
    times = [at for at, _ in schedule]
    assert times == sorted(times) and times[0] >= LEAD_S and times[-1] <= 30 * 60 - TAIL_S
    assert soak_plan(SoakRun(30, 2500.0, seed=7)) == plan and soak_plan(SoakRun(30, 2500.0, seed=8)) != plan


def test_a_short_soak_still_has_every_kind_once_and_a_too_short_one_is_refused():
    assert sorted(soak_plan(SoakRun(3, 1000.0, seed=1)).faults) == sorted(FaultKind)
    with pytest.raises(ValueError, match="at least"):
        soak_plan(SoakRun(1, 1000.0, seed=1))


def _samples(per_minute: float) -> list:
    return [(t * 30.0, dict.fromkeys(GROUPS, 500.0 + per_minute * t / 2), 1000 + t) for t in range(20)]


def test_the_summary_reports_a_leak_as_a_slope_and_a_flat_run_as_none():
    leaking = summary(_samples(12.0))
    assert leaking["taskmanagers"]["slope_mib_per_min"] == pytest.approx(12.0)
    assert leaking["kafka"]["max_mib"] == pytest.approx(500.0 + 12.0 * 19 / 2)
    flat = summary(_samples(0.0))
    assert flat["python_workers"]["slope_mib_per_min"] == 0.0
    assert flat["checkpoint_bytes"] == {"first": 1000, "last": 1019, "median": 1009, "max": 1019}
    assert summary([]) == {}


def test_a_soak_on_the_confluent_wire_draws_the_registry_outage_too():
    plan = soak_plan(SoakRun(30, 2500.0, seed=7, model="sensor:1.0.0"))
    assert set(plan.faults) == set(FaultKind) and plan.model == "sensor:1.0.0" and plan.lifecycle_every_s
