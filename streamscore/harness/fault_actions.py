"""What each fault does to the local stack, and the context it acts on.

Each action is one production failure, done for real: a process killed with SIGKILL (and its
children, as with a lost host), a broker or Redis stopped and started on the same data, a job
stopped with a savepoint and started again from it.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from jobs.flink_cluster import FlinkJobError, cancel_job, wait_running
from jobs.submit import submit_scoring
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import RegistryUnavailable, StreamscoreError
from streamscore.harness.fault_kinds import FaultKind
from streamscore.stack import Stack
from streamscore.stack.process import descendants, read_pid_file, running_pid, stop_process


@dataclass
class FaultContext:
    """What a fault may act on: the stack, and the job (which a savepoint restart replaces)."""

    stack: Stack
    settings: Settings
    config: object
    job_id: str
    restarted_with: str = ""


def _taskmanager_spec(stack: Stack):
    flink = stack.service("flink")
    return flink.process_spec("taskmanager")


def kill_taskmanager(ctx: FaultContext) -> None:
    """kill -9 the TaskManager, then start a new one (the job recovers from its last checkpoint)."""
    stack = ctx.stack
    spec = _taskmanager_spec(stack)
    pid = running_pid(spec)
    if pid is None:
        raise StreamscoreError("chaos: no TaskManager of this stack is running")
    tree = descendants(pid)
    os.kill(pid, signal.SIGKILL)
    for child, _ in tree:  # the whole process tree dies, as with a lost host or container;
        try:  # PyFlink's Python workers would otherwise linger as orphans
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(2)
    stack.up(only=["flink"])


def kill_python_worker(ctx: FaultContext, wait_s: float = 60.0) -> None:
    """kill -9 one Python worker process of the TaskManager (the task fails and restarts); a job still
    restarting after an earlier fault has none yet, so wait up to ``wait_s`` for one to appear."""
    deadline = time.monotonic() + wait_s
    while True:
        recorded = read_pid_file(_taskmanager_spec(ctx.stack).pid_file)
        workers = [pid for pid, _ in descendants(recorded[0])] if recorded else []
        python = [pid for pid in workers if b"pyflink.fn_execution" in _cmdline(pid)]  # the worker, not its launcher
        if python:
            os.kill(python[0], signal.SIGKILL)
            return
        if time.monotonic() > deadline:
            raise StreamscoreError("chaos: no Python worker process found under the TaskManager")
        time.sleep(2)


def _outage(ctx: FaultContext, service: str, down_s: float) -> None:
    """Stop ``service`` (SIGTERM), keep it down ``down_s`` seconds, start it again on the same data."""
    for spec in ctx.stack.service(service).prepare():
        stop_process(spec)
    time.sleep(down_s)
    ctx.stack.up(only=[service])


def restart_kafka(ctx: FaultContext, down_s: float = 5.0) -> None:
    """Stop the broker for ``down_s`` seconds, then start it again on the same data."""
    _outage(ctx, "kafka", down_s)


def redis_outage(ctx: FaultContext, down_s: float = 30.0) -> None:
    """Stop Redis (the job's prediction cache) for ``down_s`` seconds, then start it again: the
    cache bypasses itself with a metric and a log line, and scoring goes on without it."""
    _outage(ctx, "redis", down_s)


def registry_outage(ctx: FaultContext, down_s: float = 30.0) -> None:
    """Stop the Schema Registry for ``down_s`` seconds, then start it again on the same storage: the job
    decodes and writes with the schema ids it knows, so records of those ids keep flowing; a record with
    an id it has not seen waits for the registry (never a dead letter for an outage)."""
    if ctx.settings.registry_mode != "local":
        raise StreamscoreError("chaos: registry-outage stops the stack's own registry; this one is external")
    _outage(ctx, "registry", down_s)


def stop_with_savepoint(ctx: FaultContext, attempts: int = 3) -> str:
    """Stop the job with a savepoint once all its tasks run (a job still recovering from an earlier
    fault cannot take one); a savepoint that fails is tried again, 5 s later."""
    savepoints = str(ctx.stack.service("flink").home.savepoint_dir)
    for attempt in range(1, attempts + 1):
        try:
            wait_running(ctx.settings, ctx.job_id, timeout_s=120)
            return cancel_job(ctx.settings, ctx.job_id, savepoint_dir=savepoints)
        except FlinkJobError:
            if attempt == attempts:
                raise
            time.sleep(5)
    raise AssertionError("unreachable")


def resubmit(ctx: FaultContext, config, savepoint: str, wait_s: float = 180.0) -> str:
    """Start the job again from ``savepoint``. Submitting a job on the Confluent wire registers its
    schemas, so a registry outage overlapping this fault holds the restart back: the submission is
    tried again every 5 s for ``wait_s``, as a deployment's operator retries (the job is down meanwhile,
    and its records wait in Kafka)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return submit_scoring(ctx.settings, config, savepoint=savepoint)
        except RegistryUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(5)


def savepoint_restart(ctx: FaultContext) -> None:
    """Stop the job with a savepoint, start it again from it with a quarter of the max batch size."""
    location = stop_with_savepoint(ctx)
    config = ctx.config.with_changes(max_batch_size=max(1, ctx.config.max_batch_size // 4))
    ctx.job_id = resubmit(ctx, config, location)
    ctx.restarted_with = f"max batch size {ctx.config.max_batch_size} -> {config.max_batch_size} from {location}"


def rescale(ctx: FaultContext, hold_s: float = 10.0) -> None:
    """Stop with a savepoint at the job's parallelism, restore it at twice that, and ``hold_s`` seconds
    later stop and restore it at the first parallelism again (the sources' splits and the sinks'
    transactions are redistributed both ways)."""
    base = ctx.config.parallelism
    for parallelism in (base * 2, base):
        location = stop_with_savepoint(ctx)
        ctx.job_id = resubmit(ctx, ctx.config.with_changes(parallelism=parallelism), location)
        ctx.restarted_with = f"parallelism {base} -> {parallelism} from {location}"
        if parallelism != base:
            wait_running(ctx.settings, ctx.job_id, timeout_s=120)
            time.sleep(hold_s)


FAULTS = {FaultKind.KILL_TASKMANAGER: kill_taskmanager, FaultKind.KILL_PYTHON_WORKER: kill_python_worker,
          FaultKind.RESTART_KAFKA: restart_kafka, FaultKind.SAVEPOINT_RESTART: savepoint_restart,
          FaultKind.REDIS_OUTAGE: redis_outage, FaultKind.RESCALE: rescale,
          FaultKind.REGISTRY_OUTAGE: registry_outage}
CACHE_FAULTS = (FaultKind.REDIS_OUTAGE,)  # run with the Redis prediction cache on
# last a while without touching the job: other faults may overlap
OUTAGE_FAULTS = (FaultKind.REDIS_OUTAGE, FaultKind.REGISTRY_OUTAGE)


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""
