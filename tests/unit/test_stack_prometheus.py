"""The local stack's optional Prometheus, without starting it: settings, generated config, membership, down.

The generated configuration is checked with ``promtool check config`` (which also checks the rule
files it loads); promtool comes with Debian's ``prometheus`` package (``make setup``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import ConfigError, StackError
from streamscore.stack import Stack
from streamscore.stack.process import ProcessSpec, pid_alive, running_pid, start_process
from streamscore.stack.prometheus import DEPLOY_DIR, PrometheusService, compose_relabel_configs


def settings_for(tmp_path, **env):
    overrides = {f"STREAMSCORE_{k}": v for k, v in env.items()}
    return load_settings({"STREAMSCORE_HOME": str(tmp_path / "home"), **overrides})


@pytest.mark.parametrize(("raw", "mode"), [("off", "off"), ("on", "local"), ("ON", "local"), ("local", "local"),
                                           ("external", "external")])
def test_prometheus_modes(tmp_path, raw, mode):
    assert settings_for(tmp_path, PROMETHEUS=raw).prometheus_mode == mode


def test_prometheus_is_off_by_default_on_9090(tmp_path):
    settings = settings_for(tmp_path)
    assert (settings.prometheus_mode, str(settings.prometheus)) == ("off", "127.0.0.1:9090")
    assert "prometheus" not in {svc.name for svc in Stack(settings).services}


@pytest.mark.parametrize("env", [{"PROMETHEUS": "yes"},
                                 {"PROMETHEUS": "on", "PROMETHEUS_ADDRESS": "prometheus.example:9090"},
                                 {"PROMETHEUS_ADDRESS": "127.0.0.1:99999"}])
def test_bad_prometheus_settings_are_config_errors(tmp_path, env):
    with pytest.raises(ConfigError, match="PROMETHEUS"):
        settings_for(tmp_path, **env)


def test_on_adds_a_fifth_service(tmp_path):
    stack = Stack(settings_for(tmp_path, PROMETHEUS="on", PROMETHEUS_ADDRESS="127.0.0.1:19090"))
    assert [svc.name for svc in stack.services] == ["kafka", "redis", "registry", "flink", "prometheus"]
    assert stack.service("prometheus").ports() == [19090]


def test_every_taskmanager_is_scraped(tmp_path):
    # Flink's reporter takes one port of the range a process: the JobManager's and one a TaskManager
    settings = settings_for(tmp_path, PROMETHEUS="on", FLINK_METRICS_PORT="19249", FLINK_TASKMANAGERS="3")
    assert PrometheusService(settings).scrape_targets() == [f"127.0.0.1:{p}" for p in (19249, 19250, 19251, 19252)]


def test_generated_config_scrapes_both_flink_reporters_and_loads_the_rules(tmp_path):
    settings = settings_for(tmp_path, PROMETHEUS="on", FLINK_METRICS_PORT="19249")
    config = PrometheusService(settings).config()
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:19249", "127.0.0.1:19250"]}]
    assert config["rule_files"] == [str(DEPLOY_DIR / "rules" / "*.yml")]
    compose = yaml.safe_load((DEPLOY_DIR / "prometheus.yml").read_text())
    assert job["metric_relabel_configs"] == compose["scrape_configs"][0]["metric_relabel_configs"]
    relabel_sources = {tuple(r["source_labels"]) for r in job["metric_relabel_configs"]}
    assert {("le",), ("version",)} <= relabel_sources  # docs/metrics.md: _Inf and 1_0_0 are put back


def test_generated_config_passes_promtool(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's 'prometheus' package (`make setup` does)")
    service = PrometheusService(settings_for(tmp_path, PROMETHEUS="on"))
    service.dir.mkdir(parents=True)
    service.config_file.write_text(yaml.safe_dump(service.config()))
    proc = subprocess.run([promtool, "check", "config", str(service.config_file)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_missing_deploy_files_are_stack_errors(tmp_path):
    service = PrometheusService(settings_for(tmp_path, PROMETHEUS="on"), deploy_dir=tmp_path / "nowhere")
    with pytest.raises(StackError, match="rules directory"):
        service.config()
    with pytest.raises(StackError, match=r"prometheus.yml"):
        compose_relabel_configs(tmp_path / "nowhere")


def test_down_stops_a_prometheus_started_earlier_even_when_now_off(tmp_path):
    """`STREAMSCORE_PROMETHEUS=on stack up`, then a plain `stack down`: the Prometheus must not leak."""
    settings = settings_for(tmp_path)  # off
    pid_file = settings.run_dir / "prometheus.pid"
    stand_in = ProcessSpec("prometheus", [sys.executable, "-c", "import time; time.sleep(60)"],
                           settings.log_dir / "prometheus.log", pid_file)
    pid = start_process(stand_in)
    try:
        assert running_pid(stand_in) == pid
        stopped = Stack(settings).down()
        assert "prometheus" in stopped
        assert not pid_alive(pid)
    finally:
        if pid_alive(pid):
            import os
            import signal

            os.kill(pid, signal.SIGKILL)
