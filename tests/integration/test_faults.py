"""Exactly-once under faults, every record accounted by identity: scored or dead-lettered exactly once,
a dead letter tied to its record by source partition and offset.

The process faults and the rescale run in one traffic run, one after the other (a savepoint waits
until the job runs again); the Redis outage runs alone, with the prediction cache on and evidence
that it degraded and came back."""

from __future__ import annotations

import pytest

from streamscore.harness.chaos import FaultPlan, run_faults

pytestmark = pytest.mark.integration

PROCESS_FAULTS = ("kill-python-worker", "restart-kafka", "savepoint-restart", "rescale", "kill-taskmanager")


def _assert_exactly_once(report, count: int) -> None:
    print(report.line())
    assert report.produced == count
    assert report.missing == 0, report.line()
    assert report.duplicates == 0, report.line()
    assert report.in_both == 0, report.line()
    assert report.misrouted == 0 and report.unidentified == 0, report.line()
    assert report.scored + report.dead_lettered == report.produced
    assert report.recovery_s is not None, f"events sent after a fault were never scored: {report.line()}"
    # the drift sidecar ran through the faults: the drift in the second half was alerted, never twice
    assert report.alerts >= 1 and report.triggers >= 1, report.line()
    assert report.drift_duplicates == 0, report.line()


def test_exactly_once_survives_five_faults_in_one_run(settings, stack):
    # 3,000 events/s for 150 s: faults 10, 35, 60 and 85 s in; the rescale (1 -> 2 -> 1) takes ~40 s,
    # so the TaskManager is killed ~125 s in, and ~25 s of traffic follow it
    plan = FaultPlan(PROCESS_FAULTS, count=450_000, rate=3000.0, first_at_s=10.0, spacing_s=25.0)
    report = run_faults(settings, plan)
    _assert_exactly_once(report, plan.count)
    assert len(report.recoveries) == len(PROCESS_FAULTS)


def test_exactly_once_survives_a_redis_outage(settings, stack):
    # the outage lasts 30 s from 5 s in: at 4,000 events/s the run (40 s) outlives it by ~5 s
    report = run_faults(settings, FaultPlan(("redis-outage",), count=160_000, rate=4000.0))
    _assert_exactly_once(report, 160_000)
    assert report.cache["errors"] >= 1 and report.cache["lookups"] > 0, report.line()
    assert report.cache["log_events"][:2] == ["prediction_cache_unavailable", "prediction_cache_recovered"], \
        report.line()
