"""Exactly-once under faults: 200,000 events, one fault each, every id exactly once in scored or dead-letter."""

from __future__ import annotations

import pytest

from streamscore.harness.chaos import run_fault

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fault", ["kill-taskmanager", "kill-python-worker", "restart-kafka", "savepoint-restart",
                                   "redis-outage"])
def test_exactly_once_survives(settings, stack, fault):
    # the Redis outage lasts 30 s: at 4,000 events/s the run (50 s) outlives it by ~15 s
    report = run_fault(settings, fault, count=200_000, rate=4000.0 if fault == "redis-outage" else 5000.0)
    print(report.line())
    assert report.produced == 200_000
    assert report.missing == 0, report.line()
    assert report.duplicates == 0, report.line()
    assert report.in_both == 0, report.line()
    assert report.scored + report.dead_lettered == report.produced
    assert report.recovery_s is not None, "no event sent after the fault was ever scored"
    # the drift sidecar ran through the fault: the drift in the second half was alerted, never twice
    assert report.alerts >= 1 and report.triggers >= 1, report.line()
    assert report.drift_duplicates == 0, report.line()
    if fault == "redis-outage":  # the cache degraded visibly and came back; scoring never stopped
        assert report.cache["errors"] >= 1 and report.cache["lookups"] > 0, report.line()
        assert report.cache["log_events"][:2] == ["prediction_cache_unavailable", "prediction_cache_recovered"], \
            report.line()
