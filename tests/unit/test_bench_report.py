"""Benchmark target checks are stored as JSON booleans and numbers, not as the strings numpy prints."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.report import Check


def test_a_check_from_numpy_values_is_plain_json():
    ratio = np.float64(0.21)
    check = Check("streamscore EO / flink-passthrough throughput", ratio, ">= 0.5x", ratio >= 0.5)
    stored = json.loads(json.dumps(check.__dict__, default=str))
    assert stored["passed"] is False and stored["value"] == 0.21
    assert check.line() == "MISS  streamscore EO / flink-passthrough throughput: 0.21 (target >= 0.5x)"


def _capacity_row(parallelism: int, rate: float, job_cpu_s: float, events: int = 100_000, **extra) -> dict:
    return {"system": f"capacity-p{parallelism}", "group": "capacity", "events_per_s": rate,
            "drain_measured_events": events, "cpu_s_by_role": {"kafka": 0.5, "flink-jm": 0.1,
                                                                "flink-tm": job_cpu_s - 0.1 - 1.0,
                                                                "python-workers": 1.0}, **extra}


def test_capacity_entries_give_cpu_per_event_and_cores_per_rate():
    from benchmarks.capacity import TARGET_UTILIZATION, capacity, markdown

    rows = [_capacity_row(4, 9000, 3.0), _capacity_row(1, 10_000, 2.0), _capacity_row(1, 12_000, 2.2),
            _capacity_row(1, 11_000, 2.1), _capacity_row(2, 1, 9.0, void=True)]
    entries = capacity(rows)
    assert [e["parallelism"] for e in entries] == [1, 2, 4]
    p1, p2, p4 = entries
    assert p1["runs"] == 3 and p1["events_per_s"] == {"median": 11_000, "min": 10_000, "max": 12_000}
    assert abs(p1["job_us_per_event"] - 21.0) < 1e-9 and abs(p1["broker_us_per_event"] - 5.0) < 1e-9
    assert abs(p1["events_per_s_per_job_core"] - 1e6 / 21.0) < 1e-6
    assert abs(p1["job_cores_for"]["100000"] - 100_000 * 21e-6 / TARGET_UTILIZATION) < 1e-9
    assert p2["runs"] == 0 and p2["events_per_s"] is None and "job_cores_for" not in p2
    assert abs(p4["job_us_per_event"] - 30.0) < 1e-9
    table = markdown(entries)
    assert table.splitlines()[2].startswith("| 1 | 11,000 (10,000-12,000) | 21.0 | 5.0 | 47,619 | 0.4 | 3.5 | 35.0 |")
    assert "| 2 | void | - | - | - |" in table


def test_the_full_run_has_the_capacity_rows_and_the_smoke_checks_each_runner_once():
    from benchmarks.system_specs import catalogue

    full = {s.key: s for s in catalogue((1, 512), (10,))}
    assert [(full[f"capacity-p{p}"].parallelism, full[f"capacity-p{p}"].partitions) for p in (1, 2, 4)] == \
        [(1, 4), (2, 4), (4, 4)]
    smoke = [s.key for s in catalogue((), (), model_rows=False)]
    assert "handwritten-1" in full and "handwritten-1" not in smoke and "handwritten-batched" in smoke
    assert not any(key.startswith("capacity") for key in smoke)
    # at-least-once is smoked on the path now, not the path before
    assert "wire-jvm-alo" in smoke and "streamscore-alo" not in smoke and "streamscore-alo" in full
    assert "streamscore-eo" in smoke and "streamscore-eo-knobs-before" not in smoke
    assert "streamscore-eo-knobs-before" in full


def test_the_wire_rows_compare_the_jvm_path_with_its_baselines_at_the_bound_default_batch():
    """Issue 14's rows: Flink's avro-confluent pass-through and the hand-written loop on the same wire beside
    the JVM-decoded job at the bound default batch; the smoke run checks each of those runners once."""
    from benchmarks.system_specs import SENSOR_MODEL, catalogue
    from jobs.scoring_config import DEFAULT_BOUND_BATCH

    full = {s.key: s for s in catalogue((1, 512), (10,))}
    assert full["wire-jvm-eo"].max_batch == full["handwritten-confluent"].max_batch == DEFAULT_BOUND_BATCH
    assert {full[k].model for k in ("passthrough-confluent", "handwritten-confluent", "wire-jvm-eo")} == {SENSOR_MODEL}
    assert (full["passthrough-confluent"].kind, full["handwritten-confluent"].kind) == ("flink-passthrough",
                                                                                        "loop-score")
    assert {"wire-jvm-b512", "wire-python-b2048"} <= set(full) and "wire-jvm-b2048" not in full
    smoke = [s.key for s in catalogue((), (), model_rows=False)]
    assert {"passthrough-confluent", "handwritten-confluent", "wire-jvm-eo"} <= set(smoke)
    assert "wire-python-eo" not in smoke


def test_the_wire_checks_name_each_baseline_with_its_target():
    from benchmarks.report import wire_checks

    def row(rate):
        stats = {"median": rate, "min": rate, "max": rate, "n": 1}
        return {"events_per_s": stats, "cpu_s_per_million": {**stats, "median": 20.0}, "p99": {**stats, "median": 90},
                "commit_interval_ms": 1000, "max_delay_ms": 100}

    by = {"wire-jvm-eo": row(50_000), "passthrough-confluent": row(80_000), "handwritten-confluent": row(70_000),
          "wire-python-eo": row(30_000), "wire-jvm-alo": row(1)}
    checks = {c.name: c for c in wire_checks(by)}
    assert checks["JVM-decoded EO / passthrough-confluent throughput"].passed  # 0.625 >= 0.5
    assert not checks["JVM-decoded EO / handwritten-confluent throughput"].passed  # 0.71 < 0.8
    assert checks["JVM-decoded EO / wire-python-eo throughput"].passed  # 1.67 >= 1.6
    assert checks["JVM-decoded EO / flink-passthrough throughput"].value is None


def test_the_fraud_path_is_checked_against_its_path_before_with_todays_knobs_and_with_its_own():
    from benchmarks.report import fraud_path_checks

    def row(rate, cpu=20.0):
        stats = {"median": rate, "min": rate, "max": rate, "n": 1}
        return {"events_per_s": stats, "cpu_s_per_million": {**stats, "median": cpu}}

    by = {"wire-fraud-jvm-eo": row(57_000), "streamscore-eo": row(36_000), "streamscore-eo-knobs-before": row(30_000)}
    checks = {c.name: c for c in fraud_path_checks(by)}
    prefix = "fraud model, Confluent wire in the JVM / its path before"
    assert not checks[f"{prefix} (streamscore-eo) throughput"].passed  # 1.58 < 1.6
    assert checks[f"{prefix} (streamscore-eo-knobs-before) throughput"].passed  # 1.9
    assert checks["fraud model, Confluent wire in the JVM: CPU per event, us"].passed
    del by["streamscore-eo-knobs-before"]  # a run without the row has no line for it
    assert len(fraud_path_checks(by)) == 2


def test_the_alo_latency_from_the_actual_send_is_a_diagnosis_beside_the_target():
    from benchmarks.report import summarize, wire_checks

    def run(system, rate, p99, from_send=None):
        row = {"system": system, "label": system, "group": "wire", "commit_interval_ms": 1000, "max_delay_ms": 10,
               "events_per_s": rate, "cpu_s_per_million": 14.0, "p50_ms": 50.0, "p95_ms": 90.0, "p99_ms": p99}
        return row | ({"p50_from_send_ms": 20.0, "p99_from_send_ms": from_send} if from_send else {})

    rows = [run("wire-jvm-eo", 80_000, 1_100), run("wire-jvm-alo", 80_000, 259, 80.0),
            run("wire-jvm-alo", 80_000, 219, 120.0), run("wire-jvm-alo", 80_000, 264, 90.0)]
    by = {s["system"]: s for s in summarize(rows)}
    assert by["wire-jvm-alo"]["p99_from_send"]["median"] == 90.0 and by["wire-jvm-eo"]["p99_from_send"] is None
    checks = {c.name: c for c in wire_checks(by)}
    assert not checks["JVM-decoded ALO (delay 10 ms) p99 at 50% load, ms"].passed  # 259 > 100: the target
    assert checks["JVM-decoded ALO (delay 10 ms) p99 from the actual send (not the schedule), ms"].value == 90.0


def test_the_markdown_has_the_latency_split_of_the_rows_that_have_one():
    from benchmarks.report import markdown, summarize

    def run(system, to_step):
        row = {"system": system, "label": system, "group": "wire", "commit_interval_ms": 1000, "max_delay_ms": 10,
               "events_per_s": 80_000.0, "p50_ms": 50.0, "p95_ms": 90.0, "p99_ms": 120.0}
        split = {"p50_to_step_ms": to_step, "p99_to_step_ms": 90.0, "p50_after_step_ms": 25.0,
                 "p99_after_step_ms": 60.0, "p50_batch_rows": 1500.0, "p50_batch_cycle_ms": 45.0}
        return row | (split if to_step else {})

    summaries = summarize([run("wire-jvm-alo", 40.0), run("wire-jvm-alo", 50.0), run("passthrough", None)])
    assert summaries[0]["step_split"]["p50_to_step_ms"] == {"min": 40.0, "median": 45.0, "max": 50.0, "n": 2}
    table = markdown(summaries, None)
    assert "| wire-jvm-alo | 45 (40-50) / 90 (90-90) | 25 (25-25) / 60 (60-60) | 1,500 (1,500-1,500) | 45 (45-45) |" \
        in table
    assert "| passthrough | " not in table.split("to the step")[1]  # no split for a row without one


def test_a_split_without_a_cycle_says_not_applicable_not_void():
    from benchmarks.report import markdown, summarize

    row = {"system": "capacity-p2", "label": "capacity-p2", "group": "capacity", "commit_interval_ms": 1000,
           "events_per_s": 60_000.0, "p50_ms": 500.0, "p95_ms": 900.0, "p99_ms": 1000.0,
           "p50_to_step_ms": 100.0, "p99_to_step_ms": 200.0, "p50_after_step_ms": 400.0, "p99_after_step_ms": 800.0,
           "p50_batch_rows": 2048.0}
    table = markdown(summarize([row]), None)
    assert "| capacity-p2 | 100 / 200 | 400 / 800 | 2,048 | n/a |" in table


def test_the_peer_rows_differ_from_their_rows_only_in_the_apparatus_priority():
    """The A/B of the measuring apparatus' CPU priority is only that: same job, same knobs, same label but
    for what it says of the apparatus."""
    from dataclasses import replace

    from benchmarks.feed import APPARATUS_NICE
    from benchmarks.system_specs import catalogue

    full = {s.key: s for s in catalogue((1, 512), (10,))}
    assert APPARATUS_NICE > 0
    for base in ("wire-jvm-alo", "passthrough-confluent-alo"):
        peer = full[f"{base}-peer"]
        assert peer.apparatus_nice == 0 and full[base].apparatus_nice == APPARATUS_NICE
        same = replace(peer, key=base, label=full[base].label, group=full[base].group, apparatus_nice=APPARATUS_NICE)
        assert same == full[base]  # the group only places it in the report (a sweep row)
    assert all(s.apparatus_nice == APPARATUS_NICE for k, s in full.items() if not k.endswith("-peer"))


def test_the_latency_curve_lists_each_load_highest_first_with_its_medians():
    from benchmarks.report import markdown, summarize

    def run(p99_at_low):
        phases = {"0.5": {"latency_rate": 50_000.0, "p50_ms": 60.0, "p95_ms": 100.0, "p99_ms": 120.0},
                  "0.2": {"latency_rate": 20_000.0, "p50_ms": 30.0, "p95_ms": 50.0, "p99_ms": p99_at_low}}
        return {"system": "wire-jvm-alo", "label": "ALO", "group": "wire", "commit_interval_ms": 1000,
                "events_per_s": 100_000.0, "p50_ms": 60.0, "p95_ms": 100.0, "p99_ms": 120.0,
                "latency_by_load": phases}

    summaries = summarize([run(70.0), run(90.0), run(80.0)])
    assert list(summaries[0]["latency_by_load"]) == ["0.5", "0.2"]
    assert summaries[0]["latency_by_load"]["0.2"]["p99_ms"] == {"min": 70.0, "median": 80.0, "max": 90.0, "n": 3}
    table = markdown(summaries, None)
    assert "| ALO | 50% | 50,000 (50,000-50,000) | 60 (60-60) / 100 (100-100) / 120 (120-120) |" in table
    assert "| ALO | 20% | 20,000 (20,000-20,000) | 30 (30-30) / 50 (50-50) / 80 (70-90) |" in table
    late = run(75.0)
    late["latency_by_load"]["0.2"] |= {"latency_lost": 3, "latency_complete": False}
    assert "| ALO | 20% | 20,000 | 30 / 50 / 75 (1 incomplete) |" in markdown(summarize([late]), None)
    plain = dict(summaries[0], latency_by_load={})
    assert "load (of its drained rate)" not in markdown([plain], None)  # no curve: no table
