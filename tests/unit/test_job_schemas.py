"""A job whose config names the registry but no schema ids (a Kubernetes manifest's) registers them at its start."""

from __future__ import annotations

from typing import ClassVar

import pytest

from jobs.drift_config import DriftJobConfig
from jobs.job_schemas import with_schema_ids_at_start
from jobs.job_wire import RegistryWire
from jobs.scoring_config import ScoringJobConfig
from models.registry import load_model
from streamscore.foundation.errors import ConfigError

URL = "http://registry:8080/apis/ccompat/v7"


class FakeRegistry:
    """Subjects and the ids it gave, as a registry keeps them (the same schema under a subject: the same id)."""

    subjects: ClassVar[dict[str, dict[str, int]]] = {}

    def __init__(self, settings):
        self.url = settings.url

    def versions(self, subject: str) -> list[int]:
        return list(range(1, len(self.subjects.get(subject, {})) + 1))

    def register(self, subject: str, schema) -> int:
        ids = self.subjects.setdefault(subject, {})
        return ids.setdefault(schema["name"].rsplit(".", 1)[-1], 100 + sum(len(v) for v in self.subjects.values()))

    def set_compatibility(self, subject: str, level: str) -> None:
        assert level == "BACKWARD"


@pytest.fixture
def registry(monkeypatch):
    FakeRegistry.subjects = {}
    monkeypatch.setattr("jobs.job_schemas.SchemaRegistry", FakeRegistry)
    return FakeRegistry


def test_a_scoring_job_registers_its_topics_schemas_at_its_start(registry):
    card = load_model("fraud:1.0.0").card
    config = ScoringJobConfig(bootstrap="kafka:9092", events_topic="tx", scored_topic="tx-scored",
                              dead_letter_topic="tx-dead", registry=RegistryWire(url=URL))
    started = with_schema_ids_at_start(config, card)
    wire = started.registry
    assert set(registry.subjects) == {"tx-value", "tx-scored-value", "tx-dead-value"}
    assert wire.events_schema_id == registry.subjects["tx-value"]["Event"]
    assert wire.scored_schema_id == registry.subjects["tx-scored-value"]["ScoredEvent"]
    assert wire.dead_letter_schema_id == registry.subjects["tx-dead-value"]["DeadLetter"]
    assert len({wire.events_schema_id, wire.scored_schema_id, wire.dead_letter_schema_id}) == 3
    assert with_schema_ids_at_start(started, card) is started  # ids given (by submit): nothing asked
    following = ScoringJobConfig(bootstrap="kafka:9092", control_topic="ctl", shadow_topic="tx-shadow",
                                 registry=RegistryWire(url=URL))
    wire = with_schema_ids_at_start(following, card).registry  # the lifecycle's control and shadow topics too
    assert wire.control_schema_id == registry.subjects["ctl-value"]["ControlMessage"]
    assert wire.shadow_schema_id == registry.subjects["tx-shadow-value"]["ScoredEvent"]


def test_a_drift_job_registers_every_topic_it_reads_or_writes_and_a_single_object_one_none(registry):
    card = load_model("sensor:1.0.0").card
    config = DriftJobConfig(bootstrap="kafka:9092", model="sensor:1.0.0", events_topic="readings",
                            scored_topic="readings-scored", alerts_topic="alerts", control_topic="ctl",
                            labels_topic="truth", registry=RegistryWire(url=URL))
    wire = with_schema_ids_at_start(config, card).registry
    assert wire.events_schema_id == registry.subjects["readings-value"]["Reading"]
    assert wire.scored_schema_id == registry.subjects["readings-scored-value"]["ScoredEvent"]
    assert wire.alerts_schema_id == registry.subjects["alerts-value"]["DriftAlert"]
    assert wire.control_schema_id == registry.subjects["ctl-value"]["ControlMessage"]
    assert wire.labels_schema_id == registry.subjects["truth-value"]["GroundTruthLabel"]
    unlabelled = DriftJobConfig(bootstrap="kafka:9092", model="sensor:1.0.0", labels_topic=None,
                                registry=RegistryWire(url=URL))
    assert with_schema_ids_at_start(unlabelled, card).registry.labels_schema_id == 0
    single = ScoringJobConfig(bootstrap="kafka:9092", registry=RegistryWire(framing="single-object"))
    assert with_schema_ids_at_start(single, load_model("fraud:1.0.0").card) is single


def test_a_job_without_a_registry_url_is_refused_and_one_missing_an_id_completed(registry):
    card = load_model("fraud:1.0.0").card
    stale = ScoringJobConfig(bootstrap="kafka:9092")  # a config from before every topic moved: no registry
    with pytest.raises(ConfigError, match=r"registry\.url is missing: a job reads and writes the Confluent wire"):
        with_schema_ids_at_start(stale, card)
    partial = DriftJobConfig(bootstrap="kafka:9092", labels_topic=None,  # events and scored ids only
                             registry=RegistryWire(url=URL, events_schema_id=1, scored_schema_id=2))
    wire = with_schema_ids_at_start(partial, card).registry
    assert wire.alerts_schema_id and wire.control_schema_id  # registered now: the sidecar can write


def test_single_object_framing_follows_no_control_and_joins_no_labels():
    from jobs.job_schemas import with_registry_wire
    from streamscore.foundation.config import load_settings

    card = load_model("fraud:1.0.0").card
    config = ScoringJobConfig(bootstrap="kafka:9092", control_topic="ctl", shadow_topic="sh",
                              registry=RegistryWire(framing="single-object"))
    with pytest.raises(ConfigError, match="single-object framing reads no control or labels topic"):
        with_registry_wire(load_settings({}), config, card)
