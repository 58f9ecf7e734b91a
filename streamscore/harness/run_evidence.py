"""What a fault run left behind besides the scored records: the drift sidecar's alerts and triggers, and
the scoring job's prediction-cache evidence (its metrics and log events)."""

from __future__ import annotations

import time

from streamscore.foundation.config import Settings
from streamscore.foundation.vocabulary import ControlKind


def drift_outputs(settings: Settings, alerts_topic: str, control_topic: str, settle_s: float = 8.0) -> dict:
    """Alerts and triggers the sidecar committed, and how many of them repeat an id already seen."""
    from connectors.kafka_reads import read_topic
    from connectors.schema_registry import reader_of

    alert, control = reader_of(settings.schema_registry, "drift_alert"), reader_of(settings.schema_registry, "control")
    time.sleep(settle_s)  # the last windows close, and a duplicate would be committed by now
    alerts = [alert.decode(r.value)["alert_id"] for r in read_topic(settings, alerts_topic, idle_timeout_s=3)]
    controls = [control.decode(r.value) for r in read_topic(settings, control_topic, idle_timeout_s=3)]
    triggers = [m["message_id"] for m in controls if m["kind"] == ControlKind.RETRAIN_TRIGGER.value]
    return {"alerts": len(alerts), "triggers": len(triggers),
            "drift_duplicates": len(alerts) - len(set(alerts)) + len(triggers) - len(set(triggers))}


def cache_evidence(settings: Settings, job_name: str, wait_s: float = 15.0) -> dict:
    """The job's cache metrics (once they are reported) and its cache log events, in order."""
    from jobs.flink_metrics import scrape

    deadline, metrics = time.monotonic() + wait_s, {}
    while time.monotonic() < deadline:
        metrics = scrape(settings, job_name)
        if metrics.get("cache_errors", {}).get(""):
            break
        time.sleep(1)
    return {"lookups": int(metrics.get("cache_lookups", {}).get("", 0)),
            "errors": int(metrics.get("cache_errors", {}).get("", 0)),
            "log_events": cache_log_events(settings, job_name)}


def cache_log_events(settings: Settings, job_name: str) -> list[str]:
    """The job's ``prediction_cache_*`` log events (unavailable, recovered...) in the TaskManager log, in order."""
    return [line.split('"event": "', 1)[1].split('"', 1)[0] for line in _taskmanager_log_lines(settings, job_name)
            if '"event": "prediction_cache_' in line]


def _taskmanager_log_lines(settings: Settings, job_name: str) -> list[str]:
    lines = []
    for path in sorted(settings.log_dir.glob("flink-*taskexecutor*.log")):
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines += [line for line in fh if f'"job": "{job_name}"' in line]
    return lines
