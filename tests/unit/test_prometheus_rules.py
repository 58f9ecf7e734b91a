"""The Prometheus rules: ``promtool check rules``, ``promtool test rules``, and the metric-name contract.

promtool comes from Debian's ``prometheus`` package, which ``make setup`` installs. Without it
these tests fail (they do not skip): the rules would otherwise ship unchecked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from metric_contract import RULES_DIR, documented_metrics, metric_names_in, recorded_names, rule_groups

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = RULES_DIR / "streamscore.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests.yml"
TRIGGERS_INCREASE = ("(sum by (model, version, job_name, tier) (increase("
                     "flink_taskmanager_job_task_operator_model_version_drift_tier_triggers[10m])) > 0)")
EXPECTED_ALERTS = {
    "StreamscoreLatencySLOFastBurn", "StreamscoreLatencySLOSlowBurn",
    "StreamscoreDeadLetterSLOFastBurn", "StreamscoreDeadLetterSLOSlowBurn",
    "StreamscoreScoringJobAbsent", "StreamscoreScoringNoThroughput", "StreamscoreInferenceErrors",
    "StreamscoreDriftSmall", "StreamscoreDriftModerate", "StreamscoreDriftSevere",
    "StreamscoreRetrainingTriggered", "StreamscoreLabelsRejected",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: install Debian's 'prometheus' package (`make setup` does, as root: "
                    "apt-get install prometheus)")
    return path


def run_promtool(promtool: str, *args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=120,
                          cwd=cwd, check=False)


def copy_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of rules/ and tests.yml under tmp_path, with one edit to the rules file."""
    text = RULES_FILE.read_text()
    assert old in text, f"the mutation target {old!r} is no longer in {RULES_FILE.name}"
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / RULES_FILE.name).write_text(text.replace(old, new))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    return tmp_path


def test_every_rules_file_passes_promtool_check(promtool):
    files = sorted(RULES_DIR.glob("*.yml"))
    assert RULES_FILE in files
    proc = run_promtool(promtool, "check", "rules", *files)
    assert proc.returncode == 0, f"promtool check rules failed:\n{proc.stdout}\n{proc.stderr}"


def test_rule_unit_tests_pass(promtool):
    proc = run_promtool(promtool, "test", "rules", RULE_TESTS)
    assert proc.returncode == 0, f"promtool test rules failed:\n{proc.stdout}\n{proc.stderr}"
    assert "SUCCESS" in proc.stdout


def test_promtool_check_rejects_a_broken_rules_file(promtool, tmp_path):
    copy = copy_with(tmp_path, "histogram_quantile(0.95,", "histogram_quantile(0.95 +")
    proc = run_promtool(promtool, "check", "rules", copy / "rules" / RULES_FILE.name)
    assert proc.returncode != 0, "promtool accepted a rules file with a PromQL syntax error"


@pytest.mark.parametrize(("old", "new"), [
    # The fast-burn threshold 10x too low: the short spike of test 4 would page.
    ("ratio_rate1h > (14.4 * 0.05)", "ratio_rate1h > (1.44 * 0.05)"),
    # The SLI read from the wrong bucket: every latency expectation moves.
    ('{le="500"}', '{le="250"}'),
    # The dead-letter fast-burn threshold 10x too high: 15 % dead letters would not page.
    ("(14.4 * 0.01)", "(14.4 * 0.1)"),
    # Retraining triggers without the "new series" clause: a trigger counter first seen at 1 is missed.
    (TRIGGERS_INCREASE + "\n          or\n", TRIGGERS_INCREASE + "\n          and\n"),
], ids=["latency-fast-burn-threshold", "latency-bucket", "dead-letter-fast-burn-threshold", "trigger-new-series"])
def test_rule_unit_tests_catch_a_wrong_rule(promtool, tmp_path, old, new):
    copy = copy_with(tmp_path, old, new)
    assert run_promtool(promtool, "check", "rules", copy / "rules" / RULES_FILE.name).returncode == 0
    proc = run_promtool(promtool, "test", "rules", copy / RULE_TESTS.name, cwd=copy)
    assert proc.returncode != 0, f"promtool test rules passed against a broken rule ({old!r} -> {new!r})"


def test_rules_read_only_documented_metrics_or_recorded_series():
    known = documented_metrics() | recorded_names()
    unknown = {}
    for group in rule_groups():
        for rule in group["rules"]:
            missing = metric_names_in(rule["expr"]) - known
            if missing:
                unknown[rule.get("record") or rule.get("alert")] = sorted(missing)
    assert not unknown, f"rules read metrics that docs/metrics.md does not list: {unknown}"


def test_every_alert_has_severity_summary_description_and_runbook():
    alerts = {rule["alert"]: rule for group in rule_groups() for rule in group["rules"] if "alert" in rule}
    assert set(alerts) == EXPECTED_ALERTS
    for name, rule in alerts.items():
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, name
        for key in ("summary", "description", "runbook"):
            assert rule.get("annotations", {}).get(key, "").strip(), f"{name} has no {key} annotation"


def test_rule_tests_cover_the_required_cases():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    quiet = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
             if not case["exp_alerts"]}
    assert {"StreamscoreLatencySLOFastBurn", "StreamscoreDeadLetterSLOFastBurn", "StreamscoreDriftSevere"} <= firing
    assert {"StreamscoreLatencySLOFastBurn", "StreamscoreDriftSevere"} <= quiet
    exprs = {case["expr"] for test in tests for case in test.get("promql_expr_test", [])}
    assert any("p95" in expr for expr in exprs)
