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
    REGISTRY_OUTAGE = "registry-outage"  # runs with a model on the Confluent wire (chaos --model sensor:1.0.0)


REGISTRY_FAULTS = (FaultKind.REGISTRY_OUTAGE,)  # need a model on the Confluent wire: the fraud model never asks
FRAUD_MODEL_FAULTS = tuple(kind for kind in FaultKind if kind not in REGISTRY_FAULTS)
FRAUD_MODEL, SENSOR_MODEL = "fraud:1.0.0", "sensor:1.0.0"
DEMO_MODELS = (FRAUD_MODEL, SENSOR_MODEL)  # what a fault run can score: it generates their events


def kinds_for(model: str) -> tuple[str, ...]:
    """The fault kinds a run scoring ``model`` can meet (what its soak draws from): the fraud model's
    jobs never ask the registry; the sensor model's are on the Confluent wire."""
    return FRAUD_MODEL_FAULTS if model == FRAUD_MODEL else tuple(FaultKind)
