"""The faults ``streamscore chaos`` can inject, declared once (no heavy imports: the CLI reads it for --fault)."""

from __future__ import annotations

from enum import StrEnum


class FaultKind(StrEnum):
    KILL_TASKMANAGER = "kill-taskmanager"
    KILL_PYTHON_WORKER = "kill-python-worker"
    RESTART_KAFKA = "restart-kafka"
    SAVEPOINT_RESTART = "savepoint-restart"
    REDIS_OUTAGE = "redis-outage"  # runs with the Redis prediction cache on
    RESCALE = "rescale"  # savepoint at parallelism p, restore at 2p, then back to p
    REGISTRY_OUTAGE = "registry-outage"  # the Schema Registry stopped for 30 s (every model's jobs ask it)


FRAUD_MODEL, SENSOR_MODEL = "fraud:1.0.0", "sensor:1.0.0"
DEMO_MODELS = (FRAUD_MODEL, SENSOR_MODEL)  # what a fault run can score: it generates their events

