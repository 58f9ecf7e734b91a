"""``retrain --follow`` keeps following through a failed round (a broker or registry hiccup, a publish that
took too long), saying so once; answer_once is replaced by a script of outcomes (no broker in unit tests)."""

from __future__ import annotations

import pytest

import streamscore.cli.retrain as retrain_cli
from connectors.kafka_errors import KafkaClientError
from streamscore.cli.main import build_parser
from streamscore.foundation.config import load_settings


class _Stop(Exception):
    pass


def test_a_failed_round_is_said_once_and_the_loop_goes_on(monkeypatch, capsys):
    outcomes = [KafkaClientError("could not read control topic 'control': timed out")] * 2 + [True, _Stop()]
    rounds = []

    def answer_once(options, settings, topics, *, quiet_if_none, said):
        rounds.append(quiet_if_none)
        outcome = outcomes[len(rounds) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(retrain_cli, "answer_once", answer_once)
    monkeypatch.setattr(retrain_cli.time, "sleep", lambda seconds: None)
    args = build_parser().parse_args(["retrain", "--model", "fraud", "--follow", "--poll-s", "3"])
    with pytest.raises(_Stop):
        retrain_cli.run(args, load_settings({}))
    assert len(rounds) == 4  # the loop went on after both failures
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["retrain: could not read control topic 'control': timed out; trying again every 3 s"]


def test_one_retraining_of_a_model_at_a_time(tmp_path):
    # a second holder (another process's open file: flock locks belong to the open file) cannot take it
    import fcntl

    from models.registry import ModelRegistry
    from streamscore.lifecycle.retraining import retrain_lock

    registry = ModelRegistry(tmp_path)
    with retrain_lock(registry, "fraud"), open(tmp_path / "fraud" / ".retrain.lock", "a") as other, \
            pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(tmp_path / "fraud" / ".retrain.lock", "a") as other:  # released after the round
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert registry.list_models() == []  # the lock file is no model


def test_a_models_own_events_are_read_from_the_confluent_wire_or_as_json():
    """What retraining reads of a model of your own: its events as its scoring job takes them, Avro on the
    Confluent wire or JSON objects (``--input-format json``); anything else is a payload error (skipped and
    counted by the tail reader)."""
    import pytest as _pytest

    from models.registry import load_model
    from models.sensor_demo import generate_readings
    from schemas.confluent import RegistryAvroSerde
    from schemas.errors import PayloadError
    from schemas.json_events import JsonEvents
    from streamscore.lifecycle.retraining import _OwnEvents

    schema = load_model("sensor:1.0.0").card.binding.schema

    class Registry:
        def schema(self, schema_id):
            return schema

    reading = {k: v for k, v in generate_readings(1, seed=2)[0].items() if k != "is_anomaly"}
    events = _OwnEvents(schema, Registry())
    assert events.decode(RegistryAvroSerde(schema, 7, Registry()).encode(reading)) == reading
    assert events.decode(JsonEvents(schema).encode(reading)) == reading
    with _pytest.raises(PayloadError):
        events.decode(b"\xc3\x01not an event")
