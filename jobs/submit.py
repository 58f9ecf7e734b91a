"""Preflight checks and the three ways to run the scoring job: embedded, session cluster, any cluster."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from connectors.kafka_clients import broker_config_value, existing_topics
from jobs.drift_config import DriftJobConfig
from jobs.flink_cluster import (
    ENDED_STATES,
    JOBS_DIR,
    FlinkJobError,
    cancel_job,
    cancel_jobs,
    list_jobs,
    submit_python_job,
    wait_running,
)
from jobs.flink_home import connector_jars
from jobs.job_schemas import cluster_decoder_jar, registry_wire, with_drift_registry_wire, with_registry_wire
from jobs.job_secrets import job_secrets_env, without_secrets
from jobs.job_wire import RegistryWire
from jobs.scoring_config import DEFAULT_BOUND_BATCH, ScoringJobConfig, check_against_broker
from models.contract import check_against_event_schema
from models.registry import load_model
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import ConfigError, StreamscoreError
from streamscore.foundation.security import ClientAuth

SCORING_SCRIPT = JOBS_DIR / "scoring_job.py"
DRIFT_SCRIPT = JOBS_DIR / "drift_job.py"


def scoring_config_from_settings(settings: Settings, **overrides) -> ScoringJobConfig:
    """Topics and addresses from the settings; every knob overridable."""
    base = {
        "bootstrap": settings.jobs_kafka_bootstrap,
        "events_topic": settings.topic("events").name,
        "scored_topic": settings.topic("scored").name,
        "dead_letter_topic": settings.topic("dead_letter").name,
        "model_cache_dir": str(settings.cache_dir / "tensorrt"),
        "redis_url": settings.redis_url,
        # how the job's Python workers log in: user names and file paths (passwords are read from
        # their files on the TaskManager), so no password travels in the job's configuration
        "auth": ClientAuth.from_security(settings.kafka_security, settings.redis_security),
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    base.setdefault("max_batch_size", DEFAULT_BOUND_BATCH)
    base = _with_registry(settings, base)
    jar = cluster_decoder_jar(settings, base.get("registry", RegistryWire()))
    return ScoringJobConfig(**(base | {"decoder_jar": jar} if jar else base)).checked()


def _with_registry(settings: Settings, base: dict) -> dict:
    """The job's registry as the settings name it (its schema ids come at submit, or at the job's start); a
    batch waits for a registry that does not answer at most half the job's transaction timeout."""
    asked = base.get("registry", RegistryWire())
    if asked.framing != "confluent" or asked.url:
        return base
    timeout_ms = base.get("transaction_timeout_ms") or ScoringJobConfig.transaction_timeout_ms
    wait_ms = min(asked.wait_ms, max(1, timeout_ms // 2))
    return base | {"registry": registry_wire(settings, dataclasses.replace(asked, wait_ms=wait_ms))}


def _require_topics(settings: Settings, roles_topics: tuple[tuple[str, str], ...]) -> None:
    topics = existing_topics(settings)
    for role, topic in roles_topics:
        if topic not in topics:
            raise ConfigError(f"{role} topic {topic!r} does not exist at {settings.kafka_bootstrap} "
                              f"(create it: streamscore topics create)")


def preflight(settings: Settings, config: ScoringJobConfig) -> ScoringJobConfig:
    """Refuse, with one clear message, what would break exactly-once or make the job restart forever;
    returns the config with the schema ids of its topics (registered now, where the model binds a schema)."""
    redis = settings.redis_security
    if config.cache_enabled and redis.password and not redis.password_file:
        raise ConfigError("the prediction cache logs in to Redis from the TaskManagers with a password file: set "
                          "STREAMSCORE_REDIS_PASSWORD_FILE (a password in STREAMSCORE_REDIS_PASSWORD reaches no job)")
    _require_topics(settings, (("events", config.events_topic), ("scored", config.scored_topic),
                               ("dead-letter", config.dead_letter_topic),
                               *((("control", config.control_topic), ("scored-shadow", config.shadow_topic))
                                 if config.control_topic else ())))
    raw = broker_config_value(settings, "transaction.max.timeout.ms")
    if raw is not None:
        check_against_broker(config, int(raw))
    model = load_model(config.model, root=config.registry_dir)  # checks sha256 and the ONNX graph
    check_against_event_schema(model.contract, model.card.event_record_schema)
    return with_registry_wire(settings, config, model.card)


def drift_config_from_settings(settings: Settings, **overrides) -> DriftJobConfig:
    base = {
        "bootstrap": settings.jobs_kafka_bootstrap,
        "events_topic": settings.topic("events").name,
        "scored_topic": settings.topic("scored").name,
        "alerts_topic": settings.topic("drift_alerts").name,
        "control_topic": settings.topic("control").name,
        "labels_topic": settings.topic("labels").name,
    }
    base.update({k: v for k, v in overrides.items() if v is not None})
    if base["labels_topic"] == "":
        base["labels_topic"] = None  # labels explicitly off
    return DriftJobConfig(**_with_registry(settings, base)).checked()


def preflight_drift(settings: Settings, config: DriftJobConfig) -> DriftJobConfig:
    """As :func:`preflight`, for the drift sidecar; returns the config with its schema ids (bound models)."""
    _require_topics(settings, (("events", config.events_topic), ("scored", config.scored_topic),
                               ("drift-alerts", config.alerts_topic), ("control", config.control_topic),
                               *((("labels", config.labels_topic),) if config.labels_topic else ())))
    raw = broker_config_value(settings, "transaction.max.timeout.ms")
    if raw is not None and config.transaction_timeout_ms > int(raw):
        raise ConfigError(f"transaction_timeout_ms {config.transaction_timeout_ms} exceeds the broker's "
                          f"transaction.max.timeout.ms {raw}")
    card = load_model(config.model, root=config.registry_dir).card
    if not card.drift_profile:
        raise ConfigError(f"model {card.ref} has no drift reference profile in its card")
    return with_drift_registry_wire(settings, config, card)


def submit_scoring(settings: Settings, config: ScoringJobConfig, *, savepoint: str | None = None,
                   wait: bool = True) -> str:
    """Submit to the Flink cluster at settings.flink_rest; returns the job id once it runs."""
    config = preflight(settings, config)
    return _submit(settings, SCORING_SCRIPT, config, savepoint, wait)


def submit_drift(settings: Settings, config: DriftJobConfig, *, savepoint: str | None = None,
                 wait: bool = True) -> str:
    config = preflight_drift(settings, config)
    return _submit(settings, DRIFT_SCRIPT, config, savepoint, wait)


def submit_together(settings: Settings, configs: Sequence[ScoringJobConfig | DriftJobConfig], *,
                    wait: bool = True) -> list[str]:
    """Submit several jobs side by side (a scoring job and its drift sidecar, say); their ids in order.

    Each submission's client plans the job in a JVM of its own, ~8 s here and mostly one thread, so two
    side by side take ~12 s instead of ~17. If any submission fails (or the caller is interrupted), those
    that went through are cancelled and the failure is raised as it came, with a note naming any job that
    could not be cancelled: no half of a pair is left running unsaid."""
    names = [config.job_name for config in configs]
    if twice := sorted({name for name in names if names.count(name) > 1}):
        raise FlinkJobError(f"jobs submitted together need names of their own: {', '.join(twice)} given twice")
    futures: list[Future[str]] = []
    try:
        with ThreadPoolExecutor(max(1, len(configs))) as pool:
            futures = [pool.submit(_submit_one, settings, config) for config in configs]
        if failures := [exc for exc in (f.exception() for f in futures) if exc is not None]:
            raise failures[0]
        job_ids = [f.result() for f in futures]
        for job_id in job_ids if wait else ():
            wait_running(settings, job_id, timeout_s=120)
        return job_ids
    except BaseException as exc:
        went_through = [f.result() for f in futures if f.done() and not f.cancelled() and f.exception() is None]
        if left := cancel_jobs(settings, went_through, quietly=True):
            exc.add_note(f"not cancelled, cancel by hand: {'; '.join(left)}")
        raise


def _submit_one(settings: Settings, config: ScoringJobConfig | DriftJobConfig) -> str:
    if isinstance(config, DriftJobConfig):
        return submit_drift(settings, config, wait=False)
    return submit_scoring(settings, config, wait=False)


def _submit(settings: Settings, script: Path, config, savepoint: str | None, wait: bool) -> str:
    """Refused while a job of that name lives in any state (a RESTARTING one included: two jobs with one
    consumer group and one transactional-id prefix would score twice and fence each other's transactions).
    A job that does not reach RUNNING is cancelled, not left restarting on the cluster."""
    alive = [j for j in list_jobs(settings) if j.name == config.job_name and j.state not in ENDED_STATES]
    if alive:
        raise FlinkJobError(f"a job named {config.job_name!r} already exists ({alive[0].job_id}, {alive[0].state}); "
                            f"cancel it or choose another --job-name")
    job_id = submit_python_job(settings, script, ["--config", config.to_json()], savepoint=savepoint)
    if wait:
        try:
            wait_running(settings, job_id, timeout_s=120)
        except FlinkJobError as exc:
            raise FlinkJobError(f"{exc}; {_cancel_quietly(settings, job_id)}") from exc
    return job_id


def _cancel_quietly(settings: Settings, job_id: str) -> str:
    """Cancel a submitted job that did not come up; what became of it, for the error."""
    try:
        cancel_job(settings, job_id, timeout_s=60)
    except StreamscoreError as exc:
        return f"cancelling it failed too ({exc}): cancel {job_id} by hand"
    return "it was cancelled"


def run_embedded(settings: Settings, config: ScoringJobConfig | DriftJobConfig) -> int:
    """Run on a local MiniCluster in the foreground (Ctrl-C stops it)."""
    if isinstance(config, DriftJobConfig):
        config = preflight_drift(settings, config)
        script = DRIFT_SCRIPT
    else:
        config = preflight(settings, config)
        script = SCORING_SCRIPT
    jar = connector_jars(settings)[0]
    argv = [settings.python_executable, str(script), "--config", config.to_json(),
            "--connector-jar", Path(jar).resolve().as_uri(), "--wait"]
    with job_secrets_env(settings) as secrets_env:  # a 0600 file while the job runs, never argv
        env = without_secrets(dict(os.environ)) | secrets_env
        return subprocess.call(argv, stdout=sys.stdout, stderr=sys.stderr, env=env)
