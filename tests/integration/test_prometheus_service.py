"""The optional Prometheus of the local stack, alone, on free ports under a temporary STREAMSCORE_HOME.

It never touches the dev stack on the default ports: only the prometheus service is started, and
the "Flink reporter" it scrapes is a stub served by this test that writes label values the way
Flink's reporter does (``le="_Inf"``, ``version="1_0_0"``), so the relabelling is checked too.
Needs Debian's ``prometheus`` (``make setup`` installs it); without it the test fails.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streamscore.foundation.config import load_settings
from streamscore.stack import Stack
from streamscore.stack.process import pid_alive, running_pid
from streamscore.stack.prometheus import find_prometheus

pytestmark = pytest.mark.integration

PREFIX = "flink_taskmanager_job_task_operator_model_version_"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "streamscore.json"
STUB_METRICS = (
    f'{PREFIX}le_latency_ms_bucket{{job_name="it_prom",model="fraud",version="1_0_0",le="500"}} 90\n'
    f'{PREFIX}le_latency_ms_bucket{{job_name="it_prom",model="fraud",version="1_0_0",le="_Inf"}} 100\n'
    f'{PREFIX}latency_ms_count{{job_name="it_prom",model="fraud",version="1_0_0"}} 100\n'
)


def free_port_pair() -> int:
    """A port p with p and p + 1 free (Flink's reporter range is two ports)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with socket.socket() as other:
            try:
                other.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue
    raise RuntimeError("no two adjacent free ports")


class _StubReporter(BaseHTTPRequestHandler):
    def do_GET(self):
        body = STUB_METRICS.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_reporter():
    port = free_port_pair()
    server = ThreadingHTTPServer(("127.0.0.1", port), _StubReporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()
    server.server_close()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def query(base: str, promql: str) -> list[dict]:
    return get_json(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}")["data"]["result"]


def wait_until(check, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(1)
    return check()


def assert_dashboard_queries_parse(base: str) -> None:
    """Every query of the Grafana dashboard, its variables filled in, is valid PromQL for this Prometheus."""
    board = json.loads(DASHBOARD.read_text())
    filled = {"$__rate_interval": "1m", "$__range": "5m", "$model": ".*", "$version": ".*", "$job": ".*"}
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in filled.items():
                expr = expr.replace(name, value)
            url = f"{base}/api/v1/query?query={urllib.parse.quote(expr)}"
            try:
                status = get_json(url)["status"]
            except urllib.error.HTTPError as exc:
                status = f"{exc.code}: {exc.read().decode()[:300]}"
            assert status == "success", f"panel {panel['title']!r}: {expr}: {status}"


def test_local_prometheus_starts_alone_loads_the_rules_scrapes_and_stops(tmp_path, stub_reporter):
    find_prometheus()  # a clear failure when Debian's prometheus is missing
    port = free_port_pair()
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path / "home"), "STREAMSCORE_PROMETHEUS": "on",
                              "STREAMSCORE_PROMETHEUS_ADDRESS": f"127.0.0.1:{port}",
                              "STREAMSCORE_FLINK_METRICS_PORT": str(stub_reporter)})
    stack = Stack(settings)
    prometheus = stack.service("prometheus")
    pid = None
    try:
        reports = stack.up(only=["prometheus"])
        assert [(r.service, r.started) for r in reports] == [("prometheus", True)]
        pid = running_pid(prometheus.prepare()[0])
        assert pid is not None
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as resp:
            assert resp.status == 200
        groups = {g["name"] for g in get_json(f"{base}/api/v1/rules")["data"]["groups"]}
        assert {"streamscore-scoring", "streamscore-slo", "streamscore-drift"} <= groups
        health = {h.service: h for h in stack.status()}["prometheus"]
        assert health.healthy and f"{base}/graph" in health.detail

        relabelled = wait_until(lambda: query(base, f'{PREFIX}le_latency_ms_bucket{{le="+Inf", version="1.0.0"}}'))
        assert relabelled and relabelled[0]["value"][1] == "100", "Flink's _Inf / 1_0_0 were not relabelled"
        assert_dashboard_queries_parse(base)
        targets = get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]
        assert {t["scrapeUrl"] for t in targets} == {f"http://127.0.0.1:{stub_reporter}/metrics",
                                                     f"http://127.0.0.1:{stub_reporter + 1}/metrics"}
    finally:
        stopped = stack.down()
    assert "prometheus" in stopped
    assert pid is not None and not pid_alive(pid), f"prometheus (pid {pid}) still runs after stack down"
    assert not (settings.run_dir / "prometheus.pid").exists()
