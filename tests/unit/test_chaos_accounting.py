"""The fault harness's accounting: it must see missing, duplicated and doubly-routed ids."""

from __future__ import annotations

from types import SimpleNamespace

from schemas.malformed import MalformedPayload
from streamscore.harness.chaos import _account
from streamscore.harness.traffic import TrafficReport


def _report(valid, scored, dead_ids, malformed=0, duplicates=0, arrivals=()):
    report = TrafficReport(produced=len(valid) + malformed, valid_ids=list(valid))
    report.malformed = [MalformedPayload("garbage", b"x%d" % i, None, "DECODE", "bad_marker", "bad_marker")
                        for i in range(malformed)]
    report.scored = {i: {} for i in scored}
    report.scored_duplicates = duplicates
    report.dead_letters = [{"event_id": i} for i in dead_ids]
    report.arrivals = list(arrivals)
    return report


FAULT = SimpleNamespace(fault_ms=10_000)


def test_a_clean_run_passes():
    result = _account("f", _report(["a", "b"], ["a", "b"], [None], malformed=1, arrivals=[(9_000, 9_500)]), FAULT)
    assert result.passed and result.missing == 0 and result.duplicates == 0 and result.recovery_s == 0.5


def test_missing_duplicates_and_both_are_caught():
    assert _account("f", _report(["a", "b"], ["a"], []), FAULT).missing == 1
    assert _account("f", _report(["a"], ["a"], [], duplicates=2), FAULT).duplicates == 2
    assert _account("f", _report(["a"], ["a"], [None, None], malformed=1), FAULT).duplicates == 1
    assert _account("f", _report(["a"], ["a"], [None], malformed=2), FAULT).missing == 1
    both = _account("f", _report(["a"], ["a"], ["a"]), FAULT)
    assert both.in_both == 1 and not both.passed


def test_recovery_is_the_worst_latency_around_the_fault():
    arrivals = [(1_000, 1_500), (7_900, 30_000), (8_500, 29_000), (12_000, 12_600)]
    assert _account("f", _report(["a"], ["a"], [], arrivals=arrivals), FAULT).recovery_s == 20.5
