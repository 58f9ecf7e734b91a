"""Scraping Flink's Prometheus reporter of the local cluster for one job's streamscore metrics
(the fault harness reads them before it cancels its job; the tests compare them with Kafka)."""

from __future__ import annotations

import re
import urllib.request
from collections import defaultdict

OPERATOR_PREFIX = "flink_taskmanager_job_task_operator_model_version_"
LIFECYCLE_PREFIX = "flink_taskmanager_job_task_operator_model_lifecycle_"
_GROUP_LABELS = ("stage", "reason", "le", "feature", "tier", "provider")


def job_series(settings, job_name: str, prefix: str) -> list[tuple[str, dict[str, str], float]]:
    """(name after ``prefix``, labels, value) of one job's series, from every reporter port."""
    sample = re.compile(rf"^{re.escape(prefix)}(\w+)\{{([^}}]*)\}}\s+(\S+)$")
    out = []
    first = settings.flink_metrics_port  # the JobManager's and each TaskManager's reporter
    for port in range(first, first + settings.flink_taskmanagers + 1):
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        except OSError:
            continue
        for line in text.splitlines():
            match = sample.match(line)
            if not match:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            if labels.get("job_name") == job_name.replace("-", "_"):
                out.append((match.group(1), labels, float(match.group(3))))
    return out


def scrape(settings, job_name: str) -> dict[str, dict[str, float]]:
    """metric (after the prefix) -> {its group label's value, or '': value}, from every reporter port, over
    every subtask of the job (see :func:`aggregate`)."""
    return aggregate(job_series(settings, job_name, OPERATOR_PREFIX))


def aggregate(series: list[tuple[str, dict[str, str], float]]) -> dict[str, dict[str, float]]:
    """One value per metric and group label over a job's subtasks (each reports its own series): counters
    (and the counter-made histograms) summed; gauges (``*_milli``: the last window judged) the largest. The
    sidecar judges every window on one key, so one subtask holds the gauges' values and the others report
    their initial 0: the largest is the judging subtask's (at parallelism 1, the one subtask's)."""
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for name, labels, value in series:
        group = next((labels[k] for k in _GROUP_LABELS if k in labels), "")
        have = values[name].get(group)
        if have is None:
            values[name][group] = value
        else:
            values[name][group] = max(have, value) if name.endswith("_milli") else have + value
    return values
