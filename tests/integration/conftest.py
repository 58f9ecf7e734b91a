"""The real local stack for integration tests: brought up once per run, taken down if the run started it."""

from __future__ import annotations

import uuid

import pytest

from connectors.kafka_clients import create_topics, delete_topics
from streamscore.foundation.config import TopicSpec, load_settings
from streamscore.stack import Stack


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture(scope="session")
def stack(settings):
    stack = Stack(settings)
    reports = stack.up()
    create_topics(settings)
    yield stack
    if any(r.started for r in reports):
        stack.down()


@pytest.fixture
def fresh_topics(settings, stack):
    """Make uniquely named topics for one test; deleted afterwards."""
    made: list[str] = []

    def make(*roles: str, partitions: int = 1) -> list[str]:
        names = [f"it-{role}-{uuid.uuid4().hex[:8]}" for role in roles]
        create_topics(settings, [TopicSpec(role, name, partitions) for role, name in zip(roles, names)])
        made.extend(names)
        return names

    yield make
    if made:
        delete_topics(settings, made)
