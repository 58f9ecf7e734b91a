"""The Grafana dashboard: every query reads only metrics of docs/metrics.md or series the rules record.

A metric renamed in the jobs (and so in docs/metrics.md) or a recording rule renamed in
deploy/prometheus/rules/ breaks this test until the dashboard follows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from metric_contract import documented_metrics, metric_names_in, recorded_names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "streamscore.json"


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(board: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every panel target and every templating variable."""
    found = [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        found.append((f"${variable['name']}", query.removeprefix("label_values(").rsplit(",", 1)[0]))
    return found


def unknown_metrics(board: dict) -> dict[str, list[str]]:
    known = documented_metrics() | recorded_names()
    unknown: dict[str, list[str]] = {}
    for title, expr in queries(board):
        missing = metric_names_in(expr) - known
        if missing:
            unknown.setdefault(title, []).extend(sorted(missing))
    return unknown


def test_every_query_reads_documented_metrics_or_recorded_series(board):
    assert queries(board), "the dashboard has no queries"
    assert unknown_metrics(board) == {}, "queries read metrics that neither docs/metrics.md nor the rules define"


def test_a_renamed_metric_is_caught(board):
    renamed = json.loads(json.dumps(board).replace("_events_in", "_events_input"))
    assert unknown_metrics(renamed), "a renamed metric went unnoticed: the check cannot fail"


def test_uid_and_variables_are_stable(board):
    assert board["uid"] == "streamscore"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert set(variables) == {"model", "version", "job"}
    assert all(v["datasource"]["uid"] == "prometheus" for v in variables.values())


def test_panels_have_unique_ids_and_a_prometheus_datasource(board):
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "prometheus", panel["title"]
        assert panel.get("gridPos", {}).keys() >= {"x", "y", "w", "h"}, panel["title"]
        assert panel["targets"] and all(t.get("expr") for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("needle", [
    "events_in", "events_scored", "stage_events_dead_lettered", "reason_events_dead_lettered",
    "model_version:streamscore_latency_ms:p50_rate1m", "model_version:streamscore_latency_ms:p95_rate1m",
    "model_version:streamscore_latency_ms:p99_rate1m", "le_batch_size_bucket", "le_inference_us_bucket",
    "model_version:streamscore_inference_ms:p95_rate5m", "le_score_milli_bucket",
    "model_version:streamscore_low_confidence_ratio:rate5m", "model_version_feature:streamscore_drift_psi:last",
    "model_version_feature:streamscore_drift_ks:last", "drift_tier_alerts", "drift_tier_triggers",
    "streamscore_produced_total", "streamscore_consumed_total",
])
def test_the_required_views_are_there(board, needle):
    assert any(needle in expr for _, expr in queries(board)), f"no panel reads {needle}"
