"""Reading what the jobs logged: the structlog JSON lines their Python workers wrote into the TaskManagers' logs."""

from __future__ import annotations

import json


def json_lines(text: str) -> list[dict]:
    """The JSON objects of a log's lines (a TaskManager line carries its own prefix before the object)."""
    out = []
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            out.append(json.loads(line[start:]))
        except json.JSONDecodeError:
            continue
    return out


def job_log_lines(settings, job_name: str) -> list[dict]:
    """Every JSON line a job's Python workers logged, from every TaskManager's log."""
    text = "".join(p.read_text(errors="replace") for p in sorted(settings.log_dir.glob("flink-*taskexecutor*.log")))
    return [r for r in json_lines(text) if r.get("job") == job_name]
