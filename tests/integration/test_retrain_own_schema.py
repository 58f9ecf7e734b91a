"""Retraining a model that reads its own event schema, on the real stack: ``sensor-rt`` (a copy of the
sensor model: readings keyed by ``reading_id``, timed by ``ts``, registered from ONNX) gets a retraining
trigger on its control topic; ``streamscore retrain --model-params`` reads the readings topic through the
registry as the model's own schema, joins the labels (written from a file by ``produce --labels-input``) by
reading id, registers ``sensor-rt:1.1.0`` on the same event schema and attaches it in shadow."""

from __future__ import annotations

import json
import shutil
import uuid

import numpy as np
import pytest
from model_copies import register_renamed
from sklearn.metrics import roc_auc_score

from connectors.kafka_reads import read_topic
from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from connectors.schema_registry import SchemaRegistry, topic_writer, writer_of
from models.registry import ModelRegistry
from models.runtime import OnnxScorer
from models.sensor_demo import generate_readings, live_start_ms
from schemas import load_schema
from schemas.confluent import RegistryAvroSerde
from streamscore.cli import main as cli

pytestmark = pytest.mark.integration

NAME, COUNT = "sensor-rt", 5000


@pytest.fixture
def registry(tmp_path):
    yield register_renamed("sensor/1.0.0", NAME, tmp_path)
    shutil.rmtree(tmp_path / "registry", ignore_errors=True)


def _produce(settings, topics, schema, folder) -> tuple[list[dict], list[int]]:
    """The readings on the Confluent wire, and their labels as a user gives them: a JSON-lines file written
    by ``streamscore produce --labels-input``."""
    readings = generate_readings(COUNT, seed=33, prefix=f"own-{uuid.uuid4().hex[:6]}-",
                                 start_ms=live_start_ms(COUNT))
    truth = [r.pop("is_anomaly") for r in readings]
    encode = topic_writer(SchemaRegistry(settings.schema_registry), topics["events"], schema).encode
    produce_transactionally(settings, topics["events"], ((r["reading_id"].encode(), encode(r), r["ts"])
                                                         for r in readings), TransactionPlan(transaction_size=1000))
    labels = folder / "labels.jsonl"
    labels.write_text("".join(json.dumps({"event_id": r["reading_id"], "label": label, "event_time": r["ts"]})
                              + "\n" for r, label in zip(readings, truth)))
    assert cli.main(["produce", "--labels-input", str(labels), "--topic", topics["labels"], "--quiet"]) == 0
    return readings, truth


def _trigger(settings, control: str) -> str:
    message_id = str(uuid.uuid4())
    encode = writer_of(settings.schema_registry, control, "control").encode
    payload = encode({"message_id": message_id, "kind": "RETRAIN_TRIGGER", "model_name": NAME,
                      "model_version": "1.0.0", "tier": "SEVERE", "action": "retrain",
                      "reasons": ["drift in vibration_mm_s"], "window_ids": ["w-7"], "payload_json": None,
                      "emitted_time": 0})
    produce_transactionally(settings, control, [(NAME.encode(), payload, None)])
    return message_id


def test_a_model_on_its_own_schema_is_retrained_and_attached_in_shadow(settings, fresh_topics, registry, capsys,
                                                                         tmp_path):
    names = fresh_topics("events", "labels", "control")
    topics = dict(zip(("events", "labels", "control"), names))
    parent = ModelRegistry(registry).load(NAME, "1.0.0")
    readings, truth = _produce(settings, topics, parent.card.binding.schema, tmp_path)
    answered = _trigger(settings, topics["control"])

    recent = str(COUNT + 1000)  # offsets from the end: each transaction's commit marker takes one too
    code = cli.main(["retrain", "--model", NAME, "--registry-dir", str(registry), "--control-topic", topics["control"],
                     "--events-topic", topics["events"], "--labels-topic", topics["labels"], "--recent", recent,
                     "--min-labelled", "2000", "--model-params", '{"max_iter": 40}', "--activation-delay-ms", "3000"])
    out = capsys.readouterr()
    assert code == 0, out.err
    challenger = ModelRegistry(registry).load(NAME, "1.1.0")
    retraining = challenger.card.training.retraining
    assert retraining["answers"] == [answered] and retraining["window_ids"] == ["w-7"]
    assert retraining["data"]["joined"] == COUNT and retraining["data"]["rows"] == COUNT
    assert challenger.card.event_schema == parent.card.event_schema  # its jobs read the same readings topic
    matrix, _rejects, _valid = challenger.card.contract.to_matrix(readings)
    assert roc_auc_score(truth, OnnxScorer(challenger).predict_batch(matrix)) > 0.9

    control = RegistryAvroSerde(load_schema("control"), None, SchemaRegistry(settings.schema_registry))
    messages = [control.decode(r.value) for r in read_topic(settings, topics["control"], idle_timeout_s=2.0)]
    attached = [m for m in messages if m["kind"] == "SHADOW_ATTACHED"]
    assert [(m["model_name"], m["model_version"]) for m in attached] == [(NAME, "1.1.0")]
    assert np.mean(truth) > 0.01  # the labels held anomalies to learn from
