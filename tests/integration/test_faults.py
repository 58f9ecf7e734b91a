"""Exactly-once under faults: 200,000 events, one fault each, every id exactly once in scored or dead-letter."""

from __future__ import annotations

import pytest

from streamscore.chaos import run_fault

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fault", ["kill-taskmanager", "kill-python-worker", "restart-kafka", "savepoint-restart"])
def test_exactly_once_survives(settings, stack, fault):
    report = run_fault(settings, fault, count=200_000, rate=5000.0)
    print(report.line())
    assert report.produced == 200_000
    assert report.missing == 0, report.line()
    assert report.duplicates == 0, report.line()
    assert report.in_both == 0, report.line()
    assert report.scored + report.dead_lettered == report.produced
    assert report.recovery_s is not None, "no event sent after the fault was ever scored"
