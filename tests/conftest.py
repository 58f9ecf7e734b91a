"""The suite runs on a local stack of its own, never on the one a user (or ``make demo``) left running.

Before anything is collected, every ``STREAMSCORE_*`` address and the stack home default to a test
stack under ``.streamscore-test/`` on ports of their own (Kafka 29092, Flink 28081, Redis 26379...).
The user's stack, its topics and its jobs are never touched, whatever state they are in, and the
test stack holds all of its Flink slots for the tests. A variable already set in the environment
wins (e.g. ``STREAMSCORE_KAFKA_MODE=external`` with an address, to test against your own cluster).
"""

from __future__ import annotations

import os
from pathlib import Path

TEST_STACK_HOME = Path(__file__).resolve().parents[1] / ".streamscore-test"
TEST_STACK_ENV = {
    "STREAMSCORE_HOME": str(TEST_STACK_HOME),
    "STREAMSCORE_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
    "STREAMSCORE_KAFKA_CONTROLLER_PORT": "29093",
    "STREAMSCORE_FLINK_REST": "127.0.0.1:28081",
    "STREAMSCORE_FLINK_RPC_PORT": "26123",
    "STREAMSCORE_FLINK_METRICS_PORT": "29249",  # and 29250
    "STREAMSCORE_REDIS": "127.0.0.1:26379",
    "STREAMSCORE_PROMETHEUS_ADDRESS": "127.0.0.1:29090",
}


def pytest_configure(config) -> None:
    for name, value in TEST_STACK_ENV.items():
        os.environ.setdefault(name, value)
