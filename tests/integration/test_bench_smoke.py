"""``streamscore bench --smoke`` on the real stack: every system processes every event exactly once.

Not a timed test: the numbers of a smoke run mean nothing (a few thousand events, mostly
start-up); what must hold is the accounting and the shape of the results.
"""

from __future__ import annotations

import json

import pytest

from benchmarks.bench import ONNX_BATCHES, SMOKE, parse_args, run
from benchmarks.system_specs import catalogue

pytestmark = pytest.mark.integration


def test_bench_smoke_accounts_for_every_event(settings, stack, tmp_path):
    # a second latency phase at a quarter of the drained rate: its own ids, counted with the rest
    payload = run(parse_args(["--smoke", "--out", str(tmp_path), "--note", "test", "--latency-loads", "0.25"]),
                  settings)

    specs = catalogue(SMOKE.sweep_batches, SMOKE.sweep_delays, model_rows=False)
    expected_systems = [s.key for s in specs]
    rows = payload["rows"]
    scoring = {s.key for s in specs if s.kind == "flink-scoring"}
    assert scoring  # the smoke run has scoring rows to split
    assert [r["system"] for r in rows] == expected_systems
    for row in rows:
        assert not row.get("error"), f"{row['system']}: {row.get('error')}\n{row.get('trace', '')}"
        assert row["drained"], f"{row['system']} did not drain its backlog"
        phases = row["latency_by_load"]
        assert list(phases) == ["0.5", "0.25"] and all(p["latency_complete"] for p in phases.values()), phases
        assert row["expected"] == row["backlog"] + sum(p["latency_events"] for p in phases.values()), row["system"]
        assert phases["0.5"]["latency_events"] == row["latency_events"]
        assert (row["lost"], row["duplicates"]) == (0, 0), f"{row['system']}: {row['lost']} lost, " \
                                                           f"{row['duplicates']} duplicated"
        assert row["distinct"] == row["expected"]
        assert row["events_per_s"] > 0 and row["p99_ms"] > 0
        assert row["commit_interval_ms"] == SMOKE.commit_interval_ms
        assert "kafka" in row["peak_rss_mb"]
        assert not row["void"]
        if row["system"] in scoring:  # the latency split at the Python step, read back from the scored records
            assert "step_split_error" not in row, f"{row['system']}: {row.get('step_split_error')}"
            assert row["p50_to_step_ms"] > 0 and row["p50_after_step_ms"] > 0, row["system"]
            assert 1 <= row["p50_batch_rows"] <= row["max_batch"], row["system"]

    written = json.loads(next(tmp_path.glob("bench-*-smoke.json")).read_text())
    assert [s["system"] for s in written["summaries"]] == expected_systems
    assert sorted(int(b) for b in written["onnx_rows_per_s"]) == sorted(ONNX_BATCHES)
    assert {c["name"].split(":")[0] for c in written["checks"]} >= {"streamscore EO / quix throughput"}
    assert next(tmp_path.glob("bench-*-smoke.md")).read_text().startswith("| system |")
