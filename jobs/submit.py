"""Preflight checks and the three ways to run the scoring job: embedded, session cluster, any cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from connectors.kafka_clients import broker_config_value, existing_topics
from jobs.flink_cluster import JOBS_DIR, FlinkJobError, list_jobs, submit_python_job, wait_running
from jobs.scoring_config import ScoringJobConfig, check_against_broker
from models.contract import check_against_event_schema
from models.registry import load_model
from schemas import load_schema
from streamscore.config import Settings
from streamscore.errors import ConfigError
from streamscore.stack.services import FlinkService

SCORING_SCRIPT = JOBS_DIR / "scoring_job.py"


def scoring_config_from_settings(settings: Settings, **overrides) -> ScoringJobConfig:
    """Topics and addresses from the settings; every knob overridable."""
    base = {
        "bootstrap": settings.jobs_kafka_bootstrap,
        "events_topic": settings.topic("events").name,
        "scored_topic": settings.topic("scored").name,
        "dead_letter_topic": settings.topic("dead_letter").name,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    return ScoringJobConfig(**base).checked()


def preflight(settings: Settings, config: ScoringJobConfig) -> None:
    """Refuse, with one clear message, what would break exactly-once or make the job restart forever."""
    topics = existing_topics(settings)
    for role, topic in (("events", config.events_topic), ("scored", config.scored_topic),
                        ("dead-letter", config.dead_letter_topic)):
        if topic not in topics:
            raise ConfigError(f"{role} topic {topic!r} does not exist at {settings.kafka_bootstrap} "
                              f"(create it: streamscore topics create)")
    raw = broker_config_value(settings, "transaction.max.timeout.ms")
    if raw is not None:
        check_against_broker(config, int(raw))
    model = load_model(config.model, root=config.registry_dir)  # checks sha256 and the ONNX graph
    check_against_event_schema(model.contract, load_schema("event"))


def submit_scoring(settings: Settings, config: ScoringJobConfig, *, savepoint: str | None = None,
                   wait: bool = True) -> str:
    """Submit to the Flink cluster at settings.flink_rest; returns the job id once it runs."""
    preflight(settings, config)
    running = [j for j in list_jobs(settings) if j.name == config.job_name and j.state in ("RUNNING", "CREATED")]
    if running:
        raise FlinkJobError(f"a job named {config.job_name!r} already runs ({running[0].job_id}); "
                            f"cancel it or choose another --job-name")
    job_id = submit_python_job(settings, SCORING_SCRIPT, ["--config", config.to_json()], savepoint=savepoint)
    if wait:
        wait_running(settings, job_id, timeout_s=120)
    return job_id


def run_embedded(settings: Settings, config: ScoringJobConfig) -> int:
    """Run on a local MiniCluster in the foreground (Ctrl-C stops it)."""
    preflight(settings, config)
    jar = FlinkService(settings).connector_jars()[0]
    argv = [settings.python_executable, str(SCORING_SCRIPT), "--config", config.to_json(),
            "--connector-jar", Path(jar).resolve().as_uri(), "--wait"]
    return subprocess.call(argv, stdout=sys.stdout, stderr=sys.stderr)
