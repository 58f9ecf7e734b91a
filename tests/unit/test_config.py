from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import ConfigError


def test_defaults_bind_everything_to_loopback():
    s = load_settings({})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.flink_rest_url == "http://127.0.0.1:8081"
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.kafka_mode, s.flink_mode, s.redis_mode) == ("local", "local", "local")
    assert [t.name for t in s.topics] == ["events", "scored", "dead-letter", "drift-alerts", "control", "labels",
                                          "scored-shadow"]
    assert s.topic("events").partitions == 2
    assert s.transaction_max_timeout_ms == 900_000


def test_settings_are_frozen():
    s = load_settings({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.kafka_version = "3.0.0"  # type: ignore[misc]


def test_env_overrides_ports_topics_and_modes():
    s = load_settings({
        "STREAMSCORE_KAFKA_BOOTSTRAP": "localhost:19092",
        "STREAMSCORE_FLINK_REST": "http://127.0.0.1:18081",
        "STREAMSCORE_REDIS": "redis://127.0.0.1:16379/0",
        "STREAMSCORE_TOPIC_SCORED": "scored-v2",
        "STREAMSCORE_PARTITIONS_EVENTS": "8",
        "STREAMSCORE_KAFKA_MODE": "external",
        "STREAMSCORE_HOME": "/tmp/ss-home",
    })
    assert s.kafka.port == 19092 and s.flink_rest.port == 18081 and s.redis.port == 16379
    assert s.topic("scored").name == "scored-v2"
    assert s.topic("events").partitions == 8
    assert s.kafka_mode == "external"
    assert str(s.home) == "/tmp/ss-home"


def test_external_services_may_live_elsewhere_but_local_ones_may_not():
    s = load_settings({"STREAMSCORE_KAFKA_MODE": "external", "STREAMSCORE_KAFKA_BOOTSTRAP": "kafka.prod:9092"})
    assert s.kafka_bootstrap == "kafka.prod:9092"
    with pytest.raises(ConfigError, match="not on this machine"):
        load_settings({"STREAMSCORE_KAFKA_BOOTSTRAP": "kafka.prod:9092"})


@pytest.mark.parametrize("env, message", [
    ({"STREAMSCORE_KAFKA_BOOTSTRAP": "127.0.0.1"}, "HOST:PORT"),
    ({"STREAMSCORE_REDIS": "127.0.0.1:notaport"}, "port must be an integer"),
    ({"STREAMSCORE_FLINK_REST": "127.0.0.1:70000"}, "out of range"),
    ({"STREAMSCORE_PARTITIONS_EVENTS": "0"}, "must be > 0"),
    ({"STREAMSCORE_FLINK_MODE": "remote"}, "'local' or 'external'"),
    ({"STREAMSCORE_TOPIC_SCORED": "events"}, "distinct"),
    ({"STREAMSCORE_TOPIC_CONTROL": "bad name"}, "without spaces"),
])
def test_bad_settings_give_one_clear_error(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_unknown_topic_role_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown topic role"):
        load_settings({}).topic("features")


def test_a_checkout_keeps_its_stack_in_its_own_folder():
    repo = Path(__file__).resolve().parents[2]
    assert load_settings({}).home == repo / ".streamscore"


def test_several_taskmanagers_each_get_a_process_a_log_and_a_metrics_port(tmp_path):
    from jobs.flink_home import FlinkHome
    from streamscore.stack.services import FlinkService

    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path), "STREAMSCORE_FLINK_TASKMANAGERS": "3"})
    assert settings.flink_taskmanagers == 3 and load_settings({}).flink_taskmanagers == 1
    flink = FlinkService(settings)
    specs = [flink.process_spec("taskmanager", n) for n in (1, 2, 3)]
    assert [s.name for s in specs] == ["flink-taskmanager", "flink-taskmanager-2", "flink-taskmanager-3"]
    assert len({s.pid_file for s in specs}) == len({s.log_file for s in specs}) == 3
    config = FlinkHome(settings).config()
    assert config["metrics.reporter.prom.port"] == "9249-9252"  # the JobManager and three TaskManagers
    assert config["taskmanager.load-balance.mode"] == "SLOTS"
    with pytest.raises(ConfigError, match="FLINK_TASKMANAGERS"):
        load_settings({"STREAMSCORE_FLINK_TASKMANAGERS": "0"})
