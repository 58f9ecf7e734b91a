"""models.retrain: a challenger trained on recent labelled events, judged against its parent."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models import demo_data
from models.card import ModelCard
from models.register import register_card, register_model
from models.registry import load_model
from models.retrain import RetrainRequest, TooFewLabelsError, next_version, parent_params, retrain
from streamscore.foundation.errors import ModelError

TRAVEL = demo_data.MERCHANTS.index("travel")
TINY = {"max_iter": 20}


def travel_ring(n: int, seed: int, *, mix: float = 0.3, uplift: float = 2.5) -> tuple[list[dict], np.ndarray]:
    """A drifted world: 30 % more travel purchases (feature drift) and travel now risky (concept drift):
    the known mechanism's log-odds + ``uplift`` for travel; the parent never saw that relation."""
    drift = [demo_data.DriftSpec("merchant_category", "category_mix", mix, category="travel")]
    columns = demo_data.generate_columns(n, seed, drift)
    logit = demo_data.fraud_logit(columns) + uplift * (columns["merchant_category"] == TRAVEL)
    draws = np.random.default_rng(seed + 1).random(n)
    labels = (draws < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return demo_data.columns_to_events(columns, seed, id_prefix=f"rt{seed}-"), labels


@pytest.fixture(scope="module")
def parent():
    return load_model("fraud:1.0.0")


@pytest.fixture(scope="module")
def drifted_result(parent):
    events, labels = travel_ring(8000, seed=41)
    request = RetrainRequest(answers=("trigger-1",), window_ids=("w:0", "w:1"), source={"events_topic": "events"},
                             taken_versions=("1.0.0", "1.0.0+int8"))
    return retrain(parent, events, labels, request)


def test_challenger_beats_parent_on_drifted_held_out_events(drifted_result):
    parent, challenger = drifted_result.parent, drifted_result.challenger
    assert parent.rows == challenger.rows == 2400 and parent.positives == challenger.positives > 50
    assert challenger.auc > parent.auc + 0.02, (parent, challenger)
    # accuracy is each model at its own F1-best threshold: reported, not a ranking (fraud is rare)
    assert 0.8 < challenger.accuracy < 1 and 0.8 < parent.accuracy < 1


def test_without_drift_the_recent_data_does_not_make_a_better_model(parent):
    # the parent learnt the same world from 84k rows: 5k recent rows cannot beat it by much
    events, labels = demo_data.generate_labelled(8000, seed=43)
    result = retrain(parent, events, labels, RetrainRequest())
    assert result.challenger.auc < result.parent.auc + 0.01, (result.parent, result.challenger)


def test_card_answers_the_trigger_and_describes_its_data(drifted_result, parent):
    card = drifted_result.card
    assert card.ref == "fraud:1.1.0" and card.features == parent.card.features
    assert card.onnx_input == parent.card.onnx_input and card.training.algorithm == parent.card.training.algorithm
    retraining = card.training.retraining
    assert retraining["parent"] == "fraud:1.0.0" and retraining["answers"] == ["trigger-1"]
    assert retraining["window_ids"] == ["w:0", "w:1"]
    data = retraining["data"]
    assert data["events_topic"] == "events" and data["rows"] == 8000 and data["rows_holdout"] == 2400
    assert data["rows_train"] == 5600 == card.training.rows_train
    assert data["event_time_from"] < data["event_time_to"]
    assert retraining["holdout_challenger"]["auc"] == card.training.test_auc
    assert card.training.test_accuracy == drifted_result.challenger.accuracy
    # the new reference is the recent data: travel's share moved from ~5 % to ~33 %
    travel_share = card.drift_profile["features"]["merchant_category"]
    assert json.dumps(travel_share) != json.dumps(parent.card.drift_profile["features"]["merchant_category"])
    assert ModelCard.from_dict(json.loads(card.to_json())) == card  # the retraining block survives the file


def test_challenger_registers_through_the_usual_checks(drifted_result, tmp_path):
    (tmp_path / "model.onnx").write_bytes(drifted_result.onnx_bytes)
    (tmp_path / "model.json").write_text(drifted_result.card.to_json())
    model = register_model(tmp_path / "model.onnx", tmp_path / "model.json", tmp_path / "registry")
    assert str(model.ref) == "fraud:1.1.0" and model.card.training.retraining["answers"] == ["trigger-1"]
    again = register_card(drifted_result.card, drifted_result.onnx_bytes, tmp_path / "in-memory")
    assert again.card == model.card and again.onnx_bytes == model.onnx_bytes
    with pytest.raises(ModelError, match="already registered"):
        register_card(drifted_result.card, drifted_result.onnx_bytes, tmp_path / "in-memory")


def test_next_version_skips_taken_releases():
    assert next_version("1.0.0") == "1.1.0"
    assert next_version("1.0.0", ["1.1.0", "1.2.0", "1.3.0+int8"]) == "1.3.0"
    assert next_version("2.4.1", ["2.5.0-rc.1"]) == "2.5.0"
    with pytest.raises(ModelError):
        next_version("latest")


def test_too_few_labelled_events_is_refused(parent):
    events, labels = travel_ring(2000, seed=44)
    with pytest.raises(TooFewLabelsError, match=r"2000 labelled recent events .* needs >= 3000"):
        retrain(parent, events, labels, RetrainRequest())
    with pytest.raises(TooFewLabelsError, match="0 positive"):
        retrain(parent, events, np.zeros(2000, dtype=np.int8), RetrainRequest(min_labelled=1000))


def test_events_the_contract_rejects_do_not_count(parent):
    events, labels = travel_ring(3100, seed=45)
    for event in events[:200]:
        event["merchant_category"] = "casino"  # not in the contract's vocabulary
    with pytest.raises(TooFewLabelsError, match="2900 labelled"):
        retrain(parent, events, labels, RetrainRequest(model_params=TINY))


def test_only_the_parents_algorithm_family_is_retrained(parent):
    assert parent_params(parent.card)["max_iter"] == 150
    import dataclasses

    other = dataclasses.replace(parent.card, training=dataclasses.replace(parent.card.training,
                                                                          algorithm="torch.MLP[]"))
    with pytest.raises(ModelError, match=r"supports sklearn.HistGradientBoostingClassifier only"):
        parent_params(other)


def test_pending_triggers_are_those_no_registered_card_answers(drifted_result, tmp_path):
    from models.registry import ModelRegistry
    from streamscore.lifecycle.retraining import answered_by, pending_triggers, shadow_attached

    (tmp_path / "model.onnx").write_bytes(drifted_result.onnx_bytes)
    (tmp_path / "model.json").write_text(drifted_result.card.to_json())
    register_model(tmp_path / "model.onnx", tmp_path / "model.json", tmp_path / "registry")
    answered = answered_by(ModelRegistry(tmp_path / "registry"), "fraud")
    assert answered == {"trigger-1": "1.1.0"}

    def message(message_id, kind="RETRAIN_TRIGGER", name="fraud", version="1.0.0"):
        return {"message_id": message_id, "kind": kind, "model_name": name, "model_version": version}

    log = [message("trigger-1"), message("trigger-2"), message("other", name="fraud-mlp"),
           message("x", kind="SHADOW_ATTACHED", version="1.1.0"), message("trigger-3")]
    assert [m["message_id"] for m in pending_triggers(log, "fraud", answered)] == ["trigger-2", "trigger-3"]
    assert shadow_attached(log, "fraud", "1.1.0") and not shadow_attached(log, "fraud", "1.2.0")


def test_a_model_registered_from_onnx_is_retrained_with_the_hyper_parameters_given(tmp_path):
    from models.retrain import challenger_params
    from models.sensor_demo import generate_readings
    from streamscore.harness.versions import register_distinct_versions, version_scores

    sensor = load_model("sensor:1.0.0").card  # registered the user's way: no hyper-parameters recorded
    with pytest.raises(ModelError, match="registered from ONNX: with its hyper-parameters given"):
        challenger_params(sensor, RetrainRequest())
    assert challenger_params(sensor, RetrainRequest(model_params=TINY)) == TINY
    versions = register_distinct_versions(tmp_path, "sensor-versions", base="sensor")
    readings = generate_readings(500, seed=5, prefix="q")
    scores = [np.array(version_scores(tmp_path, "sensor-versions", v, readings)) for v in versions]
    assert versions == ["1.0.0", "1.1.0", "1.2.0"]
    for i, j in ((0, 1), (0, 2), (1, 2)):  # each version scores differently: a record tells which scored it
        assert np.mean(np.abs(scores[i] - scores[j]) > 1e-4) > 0.8


def test_a_parent_it_cannot_retrain_is_refused_before_any_data_is_read():
    from models.retrain import check_retrainable

    check_retrainable(load_model("fraud:1.0.0").card)  # the demo model: retrainable
    sensor = load_model("sensor:1.0.0").card  # registered from ONNX: no hyper-parameters on its card
    with pytest.raises(ModelError, match=r"with its hyper-parameters given, retrain --model-params JSON\)$"):
        check_retrainable(sensor)
    check_retrainable(sensor, RetrainRequest(model_params={"max_iter": 30}))
    check_retrainable(sensor, RetrainRequest(model_params={}))  # given, empty: the algorithm's defaults
    with pytest.raises(ModelError, match=r"has no hyper-parameter max_depht, n_estimators$"):
        check_retrainable(sensor, RetrainRequest(model_params={"max_depht": 3, "n_estimators": 10}))
    with pytest.raises(ModelError, match=r"random_state comes from the retraining seed"):
        check_retrainable(sensor, RetrainRequest(model_params={"random_state": 1}))


def _renamed_sensor(folder) -> str:
    """The sensor model as a user might have exported it: input ``X``, score output ``probs`` (skl2onnx's
    defaults differ by call), registered from ONNX in ``folder``; its ref."""
    import onnx

    from models.registry import DEFAULT_ROOT

    source = DEFAULT_ROOT / "sensor" / "1.0.0"
    graph = onnx.load(str(source / "model.onnx"))
    for old, new in (("features", "X"), ("probabilities", "probs")):
        for node in graph.graph.node:
            node.input[:] = [new if name == old else name for name in node.input]
            node.output[:] = [new if name == old else name for name in node.output]
        for value in (*graph.graph.input, *graph.graph.output):
            value.name = new if value.name == old else value.name
    onnx.save(graph, str(folder / "model.onnx"))
    card = json.loads((source / "model.json").read_text())
    card["onnx_input"]["name"], card["outputs"]["score_output"] = "X", "probs"
    (folder / "card.json").write_text(json.dumps({**card, "name": "own-sensor"}))
    register_model(folder / "model.onnx", folder / "card.json", folder / "registry")
    return "own-sensor:1.0.0"


def test_a_model_on_its_own_event_schema_is_retrained_on_its_own_records(tmp_path):
    """The sensor model reads readings (id ``reading_id``, time ``ts``): its challenger is trained on them in
    the order of their own time field, keeps the card's event schema (its jobs read the same topic) and has
    the retrainer's ONNX interface, whatever the parent's names, so it registers."""
    from models.sensor_demo import generate_readings

    parent = load_model(_renamed_sensor(tmp_path), root=tmp_path / "registry")
    readings = generate_readings(6000, seed=21, prefix="rt")
    readings.reverse()  # arriving out of order: the held-out part is still the latest by ``ts``
    labels = [r.pop("is_anomaly") for r in readings]
    result = retrain(parent, readings, labels, RetrainRequest(model_params={"max_iter": 40}, min_labelled=1000))
    card = result.card
    assert card.version == "1.1.0" and card.event_schema == parent.card.event_schema
    assert (card.onnx_input.name, card.outputs.score_output, card.outputs.score_column) == \
        ("features", "probabilities", 1)
    data = card.training.retraining["data"]
    assert data["rows"] == 6000 and data["event_time_to"] == max(r["ts"] for r in readings)
    assert data["event_time_from"] == min(r["ts"] for r in readings)
    assert result.challenger.auc > 0.9 and result.challenger.rows == 1800
    assert register_card(card, result.onnx_bytes, tmp_path / "registry").card.ref == "own-sensor:1.1.0"


@pytest.mark.parametrize("params, message", [
    ({"max_iter": -1}, "max_iter"), ({"learning_rate": "fast"}, "learning_rate"), ({"max_iter": 1.5}, "max_iter")])
def test_hyper_parameter_values_sklearn_refuses_are_refused_before_training(params, message):
    from models.retrain import check_retrainable

    with pytest.raises(ModelError, match=rf"^sklearn\.HistGradientBoostingClassifier: .*{message}"):
        check_retrainable(load_model("sensor:1.0.0").card, RetrainRequest(model_params=params))


def test_too_few_labels_says_what_was_read_and_what_did_not_decode(parent):
    events, labels = travel_ring(200, seed=3)
    source = {"events_topic": "readings", "events_read": 200, "labels_read": 150, "joined": 150,
              "events_undecodable": {"BadMagicByteError": 4000}}
    with pytest.raises(TooFewLabelsError, match=r"\(200 events read from readings, 4000 undecodable "
                                                r"\(BadMagicByteError: another topic or schema\?\), 150 labels"):
        retrain(parent, events, labels, RetrainRequest(source=source))
