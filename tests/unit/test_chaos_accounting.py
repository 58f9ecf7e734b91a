"""The fault harness's report: counts from identities, recovery per fault, the schedule of a plan."""

from __future__ import annotations

import pytest

from streamscore.harness.accounting import Identities
from streamscore.harness.chaos import FaultPlan, _account
from streamscore.harness.traffic import TrafficReport

KEYS = {(0, 0): "a", (0, 1): "b", (0, 2): "m"}
IDS = Identities("events", frozenset(KEYS.values()), frozenset({"m"}), KEYS)
DEAD_M = {"source_topic": "events", "source_partition": 0, "source_offset": 2, "event_id": None}


def _report(scored, dead_letters=(), duplicates=0, arrivals=()):
    report = TrafficReport(produced=3, valid_ids=["a", "b"], malformed_keys=["m"])
    report.scored = {i: {} for i in scored}
    report.scored_duplicates = duplicates
    report.dead_letters = list(dead_letters)
    report.arrivals = list(arrivals)
    return report


def test_a_clean_run_passes():
    result = _account("f", _report(["a", "b"], [DEAD_M], arrivals=[(9_000, 9_500)]), [10_000], IDS)
    assert result.passed and (result.scored, result.dead_lettered) == (2, 1) and result.recovery_s == 0.5


def test_missing_duplicates_and_both_fail_the_run():
    assert not _account("f", _report(["a"], [DEAD_M]), [10_000], IDS).passed  # b missing
    assert _account("f", _report(["a", "b"], [DEAD_M, DEAD_M]), [10_000], IDS).duplicates == 1
    assert _account("f", _report(["a", "b"], [DEAD_M], duplicates=2), [10_000], IDS).duplicates == 2
    lost_dead = _account("f", _report(["a", "b"]), [10_000], IDS)
    assert lost_dead.missing == 1 and "m" in lost_dead.examples


def test_recovery_is_the_worst_latency_around_each_fault():
    arrivals = [(1_000, 1_500), (7_900, 30_000), (8_500, 29_000), (12_000, 12_600), (41_000, 49_000)]
    one = _account("f", _report(["a", "b"], [DEAD_M], arrivals=arrivals), [10_000], IDS)
    assert one.recoveries == (20.5,) and one.recovery_s == 20.5
    two = _account("f+g", _report(["a", "b"], [DEAD_M], arrivals=arrivals), [10_000, 40_000], IDS)
    assert two.recoveries == (20.5, 8.0) and two.fault_at_s == (10.0, 40.0)
    unseen = _account("f+g", _report(["a", "b"], [DEAD_M], arrivals=arrivals[:3]), [10_000, 40_000], IDS)
    assert unseen.recovery_s is None  # nothing sent after the second fault was ever scored


def test_a_fault_in_a_pause_of_the_traffic_takes_the_first_events_sent_after_it():
    # the producer sent nothing from 9 s to 50 s (an earlier broker restart held its transaction back): the
    # fault at 20 s, whose span ends 2 s before the next fault at 40 s, takes the events sent from 50 s to 52 s
    arrivals = [(1_000, 1_500), (9_000, 55_000), (50_000, 53_000), (51_500, 52_000), (53_000, 53_100)]
    report = _account("f+g+h", _report(["a", "b"], [DEAD_M], arrivals=arrivals), [8_000, 20_000, 40_000], IDS)
    assert report.recoveries == (46.0, 3.0, 3.0) and report.recovery_s == 46.0


def test_a_plan_spaces_its_faults_and_starts_an_outage_early():
    assert FaultPlan(("kill-taskmanager",), count=30_000, rate=1000.0).schedule() == [(10.0, "kill-taskmanager")]
    assert FaultPlan(("redis-outage",)).schedule() == [(5.0, "redis-outage")]
    plan = FaultPlan(("kill-python-worker", "restart-kafka"), first_at_s=8.0, spacing_s=20.0)
    assert plan.schedule() == [(8.0, "kill-python-worker"), (28.0, "restart-kafka")]


def test_a_fault_run_scores_a_demo_model():
    from streamscore.foundation.errors import StreamscoreError
    from streamscore.harness.chaos import run_faults

    with pytest.raises(StreamscoreError, match=r"fraud:1\.0\.0 or sensor:1\.0\.0, not my-model:2\.0\.0"):
        run_faults(None, FaultPlan(("kill-taskmanager",), model="my-model:2.0.0"))


def test_bound_traffic_breaks_the_contract_where_the_schema_cannot_see_it():
    import math

    from models.registry import load_model
    from streamscore.harness.traffic_wire import _contract_breaks

    breaks = _contract_breaks(load_model("sensor:1.0.0").card.contract)
    field, value, _ = breaks["nan"]
    assert field == "temperature_c" and math.isnan(value)
    assert breaks["out_of_range"][:2] == ("rpm", 2**31 - 1)


def test_bound_traffic_calls_valid_only_what_the_contract_accepts():
    from models.registry import load_model
    from models.sensor_demo import generate_readings
    from streamscore.harness.traffic_wire import CHUNK, EventSource, _sensor_readings, _within_contract

    contract = load_model("sensor:1.0.0").card.contract
    drawn = generate_readings(CHUNK, seed=2 * 7919, prefix="x")  # seed 2's first chunk
    assert [i for i, _ in contract.to_matrix(drawn).rejects] == [9598, 28017]  # beyond the training ranges
    readings = list(_within_contract(_sensor_readings, contract)(EventSource(CHUNK + 10, 2, "x")))
    ids = [r["reading_id"] for r in readings]
    assert len(ids) == len(set(ids)) == CHUNK + 10 and ids[-1] == f"x{CHUNK + 11:07d}"  # 2 left out, a 2nd chunk
    assert not contract.to_matrix(readings).rejects and not {"x0009598", "x0028017"} & set(ids)


def test_a_restart_from_a_savepoint_waits_out_a_registry_outage_then_gives_up(monkeypatch):
    from streamscore.foundation.errors import RegistryUnavailable
    from streamscore.harness import fault_actions

    answers = [RegistryUnavailable("down"), RegistryUnavailable("down"), "job-2"]

    def submit(settings, config, savepoint):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return f"{answer} from {savepoint}"

    monkeypatch.setattr(fault_actions, "submit_scoring", submit)
    monkeypatch.setattr(fault_actions.time, "sleep", lambda s: None)
    ctx = fault_actions.FaultContext(None, None, None, "job-1")
    assert fault_actions.resubmit(ctx, None, "sp-1") == "job-2 from sp-1" and not answers
    answers[:] = [RegistryUnavailable("still down")] * 3
    with pytest.raises(RegistryUnavailable, match="still down"):
        fault_actions.resubmit(ctx, None, "sp-1", wait_s=0.0)
