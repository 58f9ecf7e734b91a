"""The suite runs on a local stack of its own, never on the one a user (or ``make demo``) left running.

Before anything is collected, every ``STREAMSCORE_*`` address and the stack home default to a test
stack under ``.streamscore-test/`` on ports of their own (Kafka 29092, Flink 28081, Redis 26379...).
The user's stack, its topics and its jobs are never touched, whatever state they are in, and the
test stack holds all of its Flink slots for the tests.

Where the environment already says where a stack is (any of these variables, or a ``*_MODE``, or
the jobs' or the cluster's own addresses, as docker-compose.yml tells its users to export), none of
them is changed: the suite runs on that stack as configured, and says so in one line. Mixing the
user's modes with the test stack's ports would point the tests at a stack nobody starts.
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
    "STREAMSCORE_SCHEMA_REGISTRY_URL": "http://127.0.0.1:28085/apis/ccompat/v7",
}


USER_STACK_HINTS = ("STREAMSCORE_KAFKA_MODE", "STREAMSCORE_FLINK_MODE", "STREAMSCORE_REDIS_MODE",
                    "STREAMSCORE_SCHEMA_REGISTRY_MODE",
                    "STREAMSCORE_JOBS_KAFKA_BOOTSTRAP", "STREAMSCORE_FLINK_PYTHON")


def pytest_configure(config) -> None:
    chosen = sorted(name for name in (*TEST_STACK_ENV, *USER_STACK_HINTS) if os.environ.get(name))
    if chosen:
        print(f"streamscore tests: running on the stack your environment names ({', '.join(chosen)}), "
              f"not on a test stack of their own")
        return
    os.environ.update(TEST_STACK_ENV)
    # one warm client JVM plans the test stack's ~50 submissions (~2 s each against 8-14 s by `flink run`);
    # test_stack.py submits by `flink run` too, and `make demo` submits only that way
    os.environ.setdefault("STREAMSCORE_FLINK_SUBMITTER", "daemon")
