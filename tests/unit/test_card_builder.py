"""A model card written from an event schema and a training sample (``models register --schema``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.card_builder import CardRequest, build_card, contract_from_schema, onnx_interface
from models.event_binding import EventBinding
from models.register import register_from_schema
from models.registry import load_model
from models.runtime import OnnxScorer
from models.sensor_demo import (
    CATEGORICAL,
    FEATURES,
    READING_SCHEMA,
    feature_matrix,
    generate_readings,
    write_example,
)
from streamscore.foundation.errors import ModelError

SCHEMA = {"type": "record", "name": "Tx", "fields": [
    {"name": "id", "type": "string"}, {"name": "at", "type": "long"},
    {"name": "amount", "type": "double"}, {"name": "items", "type": "int"}, {"name": "card_present", "type": "boolean"},
    {"name": "country", "type": "string"}, {"name": "channel", "type": {"type": "enum", "name": "Channel",
                                                                        "symbols": ["web", "app", "pos"]}},
    {"name": "note", "type": ["null", "string"], "default": None}]}
SAMPLE = [{"id": f"t{i}", "at": i, "amount": 10.0 + i, "items": 1 + i % 4, "card_present": i % 2 == 0,
           "country": ["FR", "DE", "US"][i % 3], "channel": ["web", "app", "pos"][i % 3], "note": None}
          for i in range(200)]


def _request(features, categorical=(), **kw) -> CardRequest:
    return CardRequest(name="tx", version="1.0.0", binding=EventBinding(SCHEMA, id_field="id", time_field="at"),
                       features=tuple(features), categorical=tuple(categorical), **kw)


def test_contract_types_come_from_the_schema_and_ranges_from_the_sample():
    specs = contract_from_schema(SCHEMA, _request(["amount", "items", "card_present", "country", "channel"],
                                                  ["country", "channel"]), SAMPLE)
    by_name = {s.name: s for s in specs}
    assert [s.name for s in specs] == ["amount", "items", "card_present", "country", "channel"]
    assert (by_name["amount"].dtype, by_name["amount"].range) == ("double", (-9.9, 228.9))  # [10, 209] +- 10 %
    assert by_name["items"].range == (0.0, 5.0)  # [1, 4] widened by 0.3 each side, rounded outward: ints
    assert by_name["card_present"].range == (0.0, 1.0)
    assert by_name["country"].categories == ("DE", "FR", "US")  # a string: the sample's values, sorted
    assert by_name["channel"].categories == ("web", "app", "pos")  # an enum: its symbols, in order


@pytest.mark.parametrize("features, categorical, message", [
    (["amount", "missing"], [], "feature 'missing' is not a field of Tx"),
    (["note"], [], "feature 'note' is nullable"),
    (["country"], [], "feature 'country' is string: list it in --categorical"),
    (["amount"], ["amount"], "feature 'amount' is double; --categorical takes string or enum"),
    (["amount"], ["country"], "--categorical country: not among --features"),
])
def test_features_that_cannot_be_a_contract_are_refused_in_one_line(features, categorical, message):
    with pytest.raises(ModelError, match=message) as err:
        contract_from_schema(SCHEMA, _request(features, categorical), SAMPLE)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("slip", ["abc", {"v": 1}, [1, 2], 10**400])  # 10**400: an int beyond any float
def test_a_sample_value_that_is_not_a_number_is_refused_naming_it(slip):
    with pytest.raises(ModelError, match=r"^training sample: feature 'amount' \(double\) has a value that is not a "
                                         r"number a float64 holds: ") as err:
        contract_from_schema(SCHEMA, _request(["amount"]), [*SAMPLE, {**SAMPLE[0], "amount": slip}])
    assert str(err.value).endswith(repr(slip)[:40]) and err.value.__cause__ is not None


def test_a_sample_missing_a_feature_is_refused():
    with pytest.raises(ModelError, match="1 event"):
        contract_from_schema(SCHEMA, _request(["amount"]), [*SAMPLE, {"id": "x"}])


@pytest.mark.parametrize("raw, message", [
    ({"schema": SCHEMA, "id_field": "amount"}, "'amount' is not a string field"),
    ({"schema": SCHEMA, "id_field": "id", "time_field": "items"}, "'items' is not a long"),
    ({"schema": {"type": "enum"}, "id_field": "id"}, "is not an Avro record schema"),
    ({"schema": SCHEMA, "id_field": "id", "time_field": "at", "subject": "tx-value"},
     "subject and its version go together"),
    ({"schema": {**SCHEMA, "fields": [*SCHEMA["fields"], {"name": "us", "type": {
        "type": "long", "logicalType": "timestamp-micros"}}]}, "id_field": "id", "time_field": "us"},
     "'us' is not a long \\(epoch millis\\)"),
])
def test_event_bindings_are_checked(raw, message):
    with pytest.raises(ModelError, match=message):
        EventBinding.from_dict(raw)


@pytest.fixture(scope="module")
def sensor_example(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("sensor"), rows=4000)


def test_a_card_without_a_time_field_key_keeps_the_default_name():
    assert EventBinding.from_dict({"schema": {**SCHEMA, "fields": [*SCHEMA["fields"], {"name": "event_time",
                                                                                        "type": "long"}]},
                                   "id_field": "id"}).time_field == "event_time"


def test_only_binary_scores_are_taken_from_the_graph(tmp_path):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2)).astype(np.float32)
    three_classes = LogisticRegression().fit(x, np.arange(60) % 3)
    onx = to_onnx(three_classes, x[:1], options={"zipmap": False})
    with pytest.raises(ModelError, match="binary classifiers"):
        onnx_interface(onx.SerializeToString(), 2)


def test_the_onnx_interface_is_read_off_the_graph(sensor_example):
    tensor, output, column = onnx_interface(sensor_example["onnx"].read_bytes(), 6)
    assert (tensor.name, tensor.shape, output, column) == ("features", (None, 6), "probabilities", 1)
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        onnx_interface(b"not onnx", 6)


def test_register_from_schema_writes_a_card_that_scores_like_the_model(sensor_example, tmp_path):
    request = CardRequest(name="sensor", version="1.0.0", features=FEATURES, categorical=CATEGORICAL,
                          binding=EventBinding(READING_SCHEMA, id_field="reading_id", time_field="ts"),
                          label_field="is_anomaly")
    model = register_from_schema(sensor_example["onnx"], request, sensor_example["sample"], tmp_path)
    card = load_model("sensor:1.0.0", root=tmp_path).card
    assert card.event_schema.name == "io.example.sensors.Reading" and card.event_schema.id_field == "reading_id"
    assert card.contract.names == FEATURES and card.onnx_input.shape == (None, 6)
    assert sorted(card.drift_profile["features"]) == sorted(FEATURES) and "score" in card.drift_profile
    assert 0.8 < card.training.test_auc <= 1.0 and 0.0 < card.training.positive_rate < 0.1
    rows = len(sensor_example["sample"].read_text().splitlines())
    assert (card.training.rows_test, card.training.rows_train) == (rows, 0)  # the labelled sample is the test set
    fresh = generate_readings(500, seed=5)
    matrix, rejects, _ = card.contract.to_matrix(fresh)
    assert not rejects
    # the card's contract encodes events exactly as the model was trained (enum index, column order)
    np.testing.assert_array_equal(matrix, feature_matrix(fresh))
    scores = OnnxScorer(model).predict_batch(matrix)
    assert scores.shape == (500,) and np.all((scores >= 0) & (scores <= 1))
    with pytest.raises(ModelError, match="already registered"):
        register_from_schema(sensor_example["onnx"], request, sensor_example["sample"], tmp_path)


def test_a_card_round_trips_its_event_binding(sensor_example):
    request = CardRequest(name="sensor", version="2.0.0", features=FEATURES, categorical=CATEGORICAL,
                          binding=EventBinding(READING_SCHEMA, id_field="reading_id", time_field=None,
                                               subject="readings-value", version=3))
    sample = [json.loads(line) for line in sensor_example["sample"].read_text().splitlines()]
    card = build_card(request, sensor_example["onnx"].read_bytes(), sample)
    again = type(card).from_dict(json.loads(card.to_json()))
    assert again.event_schema == card.event_schema and again.event_schema.time_field is None
    assert again.event_record_schema["name"] == "Reading"
