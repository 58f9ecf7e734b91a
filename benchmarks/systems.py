"""The systems under test and how each is started and stopped on the local stack.

Every system reads one input topic (2 partitions; the capacity rows 4) from its beginning,
read_committed, and writes an output topic (and a dead-letter topic) with Kafka transactions
committed every ``commit_interval_ms`` (Flink: checkpoints at that interval). Each runs with one
worker, Flink parallelism 1 or one process, except the capacity rows (parallelism 1, 2 and 4).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.system_specs import SystemSpec, Topics
from jobs.flink_cluster import JOBS_DIR, cancel_job, rest, submit_python_job, wait_running
from jobs.job_wire import RegistryWire
from jobs.submit import scoring_config_from_settings, submit_scoring
from streamscore.foundation.config import Settings

REPO = Path(__file__).resolve().parent.parent


@dataclass
class RunningSystem:
    spec: SystemSpec
    flink_job: str | None = None
    process: subprocess.Popen | None = None
    keyed_topics: set[str] = field(default_factory=set)
    launched_at: float = field(default_factory=time.time)

    @property
    def loop_pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def on_flink(self) -> bool:
        return self.flink_job is not None

    def started_at(self, settings: Settings) -> float:
        """When it could start reading: all Flink tasks running, or the worker process launched."""
        if self.flink_job is None:
            return self.launched_at
        vertices = rest(settings, f"/jobs/{self.flink_job}").get("vertices", [])
        starts = [v.get("start-time", -1) for v in vertices]
        return max(starts) / 1000.0 if starts and min(starts) > 0 else self.launched_at

    def alive(self) -> bool:
        return self.process is None or self.process.poll() is None


def start(settings: Settings, spec: SystemSpec, topics: Topics, commit_interval_ms: int) -> RunningSystem:
    tag = uuid.uuid4().hex[:8]
    if spec.kind == "flink-scoring":
        if spec.decoder:
            settings = dataclasses.replace(settings, schema_registry=dataclasses.replace(
                settings.schema_registry, decoder=spec.decoder))
        config = scoring_config_from_settings(
            settings, events_topic=topics.source, scored_topic=topics.scored, dead_letter_topic=topics.dead,
            job_name=f"bench-{spec.key}-{tag}", max_batch_size=spec.max_batch, max_delay_ms=spec.max_delay_ms,
            checkpoint_interval_ms=commit_interval_ms, exactly_once=spec.exactly_once,
            startup_mode="earliest-offset", model=spec.model, cache_enabled=spec.cache or None,
            parallelism=spec.parallelism, registry=_framing(spec), batches_per_bundle=spec.batches_per_bundle,
            object_reuse=spec.object_reuse, transaction_naming=spec.transaction_naming)
        return RunningSystem(spec, flink_job=submit_scoring(settings, config), keyed_topics={topics.scored})
    if spec.kind == "flink-passthrough":
        args = ["--bootstrap", settings.jobs_kafka_bootstrap, "--source-topic", topics.source,
                "--sink-topic", topics.scored, "--group-id", f"bench-pt-{tag}",
                "--transactional-id-prefix", f"bench-pt-{tag}", "--checkpoint-interval-ms",
                str(commit_interval_ms), "--job-name", f"bench-passthrough-{tag}", *_confluent_args(settings, spec),
                *([] if spec.exactly_once else ["--at-least-once"])]
        job_id = submit_python_job(settings, JOBS_DIR / "passthrough.py", args)
        wait_running(settings, job_id, timeout_s=120)
        return RunningSystem(spec, flink_job=job_id, keyed_topics={topics.scored} if spec.model else set())
    kind = {"loop-score": "score", "loop-passthrough": "passthrough", "quix": "quix"}[spec.kind]
    argv = [sys.executable, "-m", "benchmarks.worker", kind, "--source", topics.source, "--scored", topics.scored,
            "--dead", topics.dead, "--max-batch", str(spec.max_batch or 1),
            "--commit-interval-ms", str(commit_interval_ms), *(["--model", spec.model] if spec.model else [])]
    log = open(settings.log_dir / f"bench-{spec.key}.log", "ab")  # noqa: SIM115 - owned by the process
    process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               env=os.environ | {"PYTHONPATH": str(REPO)})
    log.close()
    return RunningSystem(spec, process=process, keyed_topics={topics.scored})


def _framing(spec: SystemSpec) -> RegistryWire | None:
    """The fraud models' rows read the pool's demo events as they were before the registry (single-object:
    the reference rows), unless the row asks for the Confluent wire; a model that binds its own schema is
    fed on the Confluent wire."""
    return None if spec.confluent else RegistryWire(framing="single-object")


def _confluent_args(settings: Settings, spec: SystemSpec) -> list[str]:
    """A pass-through of a bound model's events (``spec.model``): read and written in Flink's ``avro-confluent``
    format, with the model's event schema; none: raw bytes."""
    if not spec.model:
        return []
    import json

    from jobs.flink_home import avro_confluent_format_jar
    from models.registry import load_model

    binding = load_model(spec.model).card.event_schema
    return ["--avro-schema", json.dumps(binding.schema), "--registry-url", settings.schema_registry.url_for_jobs,
            "--key-field", binding.id_field, "--jars", avro_confluent_format_jar(settings).resolve().as_uri()]


def stop(settings: Settings, running: RunningSystem) -> None:
    """Cancel the Flink job, or SIGTERM the worker (SIGKILL after 30 s)."""
    if running.flink_job:
        cancel_job(settings, running.flink_job)
    if running.process and running.process.poll() is None:
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(30)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait(10)
