"""Unit tests of models/: demo data, feature contract, model card, registry, ONNX scorer."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models import demo_data
from models.card import ModelCard, load_card
from models.contract import FeatureContract, FeatureSpec, check_against_event_schema
from models.demo_data import DriftSpec, demo_contract, generate_events, generate_labelled, generate_matrix
from models.registry import DEFAULT_ROOT, ModelRef, ModelRegistry, load_model, parse_ref, sha256_hex
from models.runtime import OnnxScorer, choose_providers, labels_from_scores
from streamscore.foundation.errors import ContractError, ModelError

REPO = Path(__file__).resolve().parents[2]
EVENT_SCHEMA = json.loads((REPO / "schemas" / "avro" / "event.avsc").read_text())
FRAUD_DIR = DEFAULT_ROOT / "fraud" / "1.0.0"
SENSOR_DIR = DEFAULT_ROOT / "sensor" / "1.0.0"


@pytest.fixture(scope="module")
def contract() -> FeatureContract:
    return demo_contract()


@pytest.fixture(scope="module")
def events() -> list[dict]:
    return generate_events(600, seed=11)


@pytest.fixture(scope="module")
def fraud_model():
    return ModelRegistry().load("fraud", "1.0.0")


@pytest.fixture(scope="module")
def scorer(fraud_model) -> OnnxScorer:
    return OnnxScorer(fraud_model)


@pytest.fixture()
def registry_copy(tmp_path: Path) -> Path:
    shutil.copytree(FRAUD_DIR, tmp_path / "fraud" / "1.0.0")
    return tmp_path


# --- demo data -------------------------------------------------------------------------------

def test_generator_is_deterministic_and_seed_dependent():
    assert generate_events(50, seed=3) == generate_events(50, seed=3)
    assert generate_events(50, seed=3) != generate_events(50, seed=4)


def test_events_match_the_avro_schema_and_are_well_formed(events):
    schema_fields = [field["name"] for field in EVENT_SCHEMA["fields"]]
    assert all(list(event) == schema_fields for event in events)
    assert len({event["event_id"] for event in events}) == len(events)
    times = [event["event_time"] for event in events]
    assert all(isinstance(t, int) for t in times) and all(b > a for a, b in itertools.pairwise(times))
    first = events[0]
    assert first["event_id"] == "evt-000000000" and type(first["card_present"]) is bool
    assert type(first["hour_of_day"]) is int and type(first["amount"]) is float
    custom = generate_events(2, seed=1, start_time_ms=5_000, id_prefix="x-")
    assert custom[0]["event_id"] == "x-000000000" and custom[0]["event_time"] == 5_000


def test_undrifted_events_satisfy_the_contract_and_match_the_fast_path(contract):
    for seed in (1, 2):
        matrix, rejects, valid_rows = contract.to_matrix(generate_events(3_000, seed))
        assert rejects == [] and len(valid_rows) == 3_000
        assert np.array_equal(matrix, generate_matrix(3_000, seed)[0])


def test_labels_follow_the_known_mechanism_at_a_few_percent():
    events, labels = generate_labelled(40_000, seed=5)
    assert labels.dtype == np.int8 and len(labels) == len(events)
    assert 0.02 <= labels.mean() <= 0.04
    assert np.array_equal(labels, generate_matrix(40_000, seed=5)[1])


def test_drift_leaves_earlier_rows_alone_and_shifts_later_ones():
    clean = demo_data.generate_columns(20_000, seed=9)
    spec = DriftSpec("device_trust_score", "shift", -1.0, start_after=10_000)
    drifted = demo_data.generate_columns(20_000, seed=9, drift=[spec])
    _, std = demo_data.reference_moments()["device_trust_score"]
    assert np.array_equal(drifted["amount"], clean["amount"])
    assert np.array_equal(drifted["device_trust_score"][:10_000], clean["device_trust_score"][:10_000])
    moved = drifted["device_trust_score"][10_000:].mean() - clean["device_trust_score"][10_000:].mean()
    assert moved == pytest.approx(-std, rel=0.15)  # clipping at 0 trims a little


def test_scale_boolean_and_category_mix_drift():
    columns = demo_data.generate_columns(20_000, seed=2, drift=[
        DriftSpec("amount_avg_30d", "scale", 2.0),
        DriftSpec("is_international", "shift", 1.0),
        DriftSpec("merchant_category", "category_mix", 0.5, category="jewelry")])
    clean = demo_data.generate_columns(20_000, seed=2)
    assert columns["amount_avg_30d"].std() == pytest.approx(2 * clean["amount_avg_30d"].std(), rel=0.1)
    _, bool_std = demo_data.reference_moments()["is_international"]
    assert columns["is_international"].mean() - clean["is_international"].mean() == pytest.approx(bool_std, rel=0.1)
    jewelry = demo_data.MERCHANTS.index("jewelry")
    assert (columns["merchant_category"] == jewelry).mean() == pytest.approx(0.5 + 0.5 * 0.015, abs=0.02)


def test_drift_spec_validation():
    with pytest.raises(ValueError, match="feature"):
        DriftSpec("nope", "shift", 1.0)
    with pytest.raises(ValueError, match="kind"):
        DriftSpec("amount", "category_mix", 0.5, category="x")
    with pytest.raises(ValueError, match="category"):
        DriftSpec("channel", "category_mix", 0.5, category="carrier_pigeon")


# --- feature contract ------------------------------------------------------------------------

def _reasons(contract, broken: list[dict]) -> dict[int, str]:
    return dict(contract.to_matrix(broken).rejects)


def test_each_reject_reason_is_named(contract, events):
    broken = [dict(event) for event in events[:10]]
    del broken[1]["amount"]
    broken[2]["hour_of_day"] = "7"
    broken[3]["utilization"] = math.nan
    broken[4]["credit_limit"] = math.inf
    broken[5]["customer_age"] = 7
    broken[6]["channel"] = "carrier_pigeon"
    broken[7]["card_present"] = 1
    broken[8]["merchant_category"] = None
    reasons = _reasons(contract, broken)
    assert reasons == {
        1: "amount: missing field 'amount'",
        2: "hour_of_day: wrong type str (expected int)",
        3: "utilization: NaN",
        4: "credit_limit: inf",
        5: "customer_age: value 7 out of range [18, 120]",
        6: "channel: unknown category 'carrier_pigeon'",
        7: "card_present: wrong type int (expected boolean)",
        8: "merchant_category: wrong type NoneType (expected string)",
    }


def test_valid_rows_keep_their_order(contract, events):
    broken = [dict(event) for event in events[:6]]
    broken[0]["amount"] = -1.0
    broken[3]["amount"] = -math.inf
    result = contract.to_matrix(broken)
    assert result.valid_rows.tolist() == [1, 2, 4, 5]
    assert result.rejects == [(0, "amount: value -1.0 out of range [0.0, 1000000.0]"), (3, "amount: -inf")]
    clean, _, _ = contract.to_matrix([events[i] for i in (1, 2, 4, 5)])
    assert result.matrix.dtype == np.float32 and np.array_equal(result.matrix, clean)


def test_odd_inputs(contract, events):
    several = dict(events[0], amount="12", country=["US"])
    huge = dict(events[1], txn_count_1h=10**400)
    numpy_typed = dict(events[2], amount=np.float64(3.5), hour_of_day=np.int64(4), card_present=np.bool_(True))
    result = contract.to_matrix([several, huge, numpy_typed, "not an event", events[3]])
    assert dict(result.rejects) == {
        0: "amount: wrong type str (expected double); country: wrong type list (expected string)",
        1: f"txn_count_1h: value {10**400!r} out of range [0, 1000]",
        3: "event is not a mapping (got str)"}
    assert result.valid_rows.tolist() == [2, 4] and result.matrix[0, 0] == np.float32(3.5)
    empty = contract.to_matrix([])
    assert empty.matrix.shape == (0, 25) and empty.rejects == [] and empty.valid_rows.size == 0


def test_contract_matches_the_event_schema(contract):
    check_against_event_schema(contract, EVENT_SCHEMA)
    fields = [dict(f) for f in EVENT_SCHEMA["fields"] if f["name"] != "amount"]
    for field in fields:
        if field["name"] == "hour_of_day":
            field["type"] = "string"
        if field["name"] == "utilization":
            field["type"] = ["null", "double"]
    with pytest.raises(ContractError) as caught:
        check_against_event_schema(contract, dict(EVENT_SCHEMA, fields=fields))
    message = str(caught.value)
    assert "amount" in message and "hour_of_day" in message and "utilization" in message


def test_feature_spec_validation_names_the_field():
    with pytest.raises(ModelError, match=r"features\['x'\]\.range"):
        FeatureSpec("x", "x", "numeric", "double", range=(2.0, 1.0))
    with pytest.raises(ModelError, match=r"features\['c'\]\.unknown_category"):
        FeatureSpec("c", "c", "categorical", "string", categories=("a",), encoding="ordinal")
    with pytest.raises(ModelError, match="duplicate"):
        FeatureContract([FeatureSpec("x", "x", "numeric", "int", range=(0, 1))] * 2)


# --- model card ------------------------------------------------------------------------------

def test_committed_card_round_trips():
    card = load_card(FRAUD_DIR / "model.json")
    assert card.ref == "fraud:1.0.0" and card.onnx_input.shape == (None, 25)
    assert card.contract.names == demo_data.FEATURE_NAMES
    assert card.training.test_auc > 0.8 and 0.02 < card.training.positive_rate < 0.04
    assert card.to_json() == (FRAUD_DIR / "model.json").read_text()
    assert (FRAUD_DIR / "model.onnx").stat().st_size < 2_000_000


@pytest.mark.parametrize("edit, field", [
    (lambda raw: raw.pop("onnx_sha256"), "onnx_sha256"),
    (lambda raw: raw.update(version="one"), "version"),
    (lambda raw: raw["onnx_input"].update(shape=[None, 24]), "onnx_input.shape"),
    (lambda raw: raw["features"][3].update(kind="ordinal"), "features['merchant_risk_score'].kind"),
    (lambda raw: raw["outputs"].update(threshold=2), "outputs.threshold"),
    (lambda raw: raw["training"].pop("test_auc"), "training.test_auc"),
    (lambda raw: raw["outputs"].update(threshold=True), "outputs.threshold"),  # JSON true is no number
    (lambda raw: raw.update(drift_profile=[1]), "drift_profile"),
    (lambda raw: raw["features"][20].update(categories=[["a"]]), "features['merchant_category'].categories"),
    (lambda raw: raw["event_schema"].update(time_field=["x"]), "event_schema.time_field"),
    (lambda raw: raw["event_schema"].update(id_field=7), "event_schema.id_field"),
])
def test_card_errors_name_the_field(tmp_path, edit, field):
    card = SENSOR_DIR if "event_schema" in field else FRAUD_DIR
    raw = json.loads((card / "model.json").read_text())
    edit(raw)
    (tmp_path / "model.json").write_text(json.dumps(raw))
    with pytest.raises(ModelError, match=re.escape(f"'{field}'")):
        load_card(tmp_path / "model.json")


def test_malformed_card_json(tmp_path):
    (tmp_path / "model.json").write_text('{"name": "fraud",')
    with pytest.raises(ModelError, match="malformed JSON"):
        load_card(tmp_path / "model.json")


# --- registry --------------------------------------------------------------------------------

def test_registry_lists_and_parses_refs(registry_copy):
    assert ModelRef("fraud", "1.0.0") in ModelRegistry().list_models()
    shutil.copytree(registry_copy / "fraud" / "1.0.0", registry_copy / "fraud" / "1.10.0")
    (registry_copy / "fraud" / "1.2.0").mkdir()  # no files: not a model
    registry = ModelRegistry(registry_copy)
    assert [str(ref) for ref in registry.list_models()] == ["fraud:1.0.0", "fraud:1.10.0"]
    assert registry.latest("fraud") == ModelRef("fraud", "1.10.0")
    assert parse_ref("fraud:1.0.0") == ModelRef("fraud", "1.0.0")
    for bad in ("fraud", "fraud:", ":1.0.0", "fraud:v1", "a/b:1.0.0"):
        with pytest.raises(ModelError):
            parse_ref(bad)


def test_load_checks_and_returns_the_model(registry_copy):
    loaded = load_model("fraud:1.0.0", registry_copy)
    assert loaded.ref == ModelRef("fraud", "1.0.0") and loaded.contract.width == 25
    assert sha256_hex(loaded.onnx_bytes) == loaded.card.onnx_sha256
    with pytest.raises(ModelError, match="not found"):
        ModelRegistry(registry_copy).load("fraud", "9.9.9")


def _rewrite(directory: Path, card_edit=None, graph_edit=None) -> None:
    model = onnx.load_model(str(directory / "model.onnx"))
    if graph_edit:
        graph_edit(model.graph)
    data = model.SerializeToString()
    (directory / "model.onnx").write_bytes(data)
    raw = json.loads((directory / "model.json").read_text())
    raw["onnx_sha256"] = sha256_hex(data)
    if card_edit:
        card_edit(raw)
    (directory / "model.json").write_text(json.dumps(raw))


def test_bad_checksum_is_refused(registry_copy):
    onnx_path = registry_copy / "fraud" / "1.0.0" / "model.onnx"
    onnx_path.write_bytes(onnx_path.read_bytes() + b"\0")
    with pytest.raises(ModelError, match="sha256"):
        ModelRegistry(registry_copy).load("fraud", "1.0.0")


def _input_dim(graph):
    return graph.input[0].type.tensor_type.shape.dim[1]


@pytest.mark.parametrize("card_edit, graph_edit, message", [
    (None, lambda g: setattr(_input_dim(g), "dim_value", 24), r"shape \[None, 24\]"),
    (None, lambda g: setattr(g.input[0].type.tensor_type, "elem_type", onnx.TensorProto.DOUBLE), "dtype float64"),
    (lambda raw: raw["onnx_input"].update(name="x"), None, r"ONNX inputs \['features'\] != card input \['x'\]"),
    (lambda raw: raw["outputs"].update(score_output="score"), None, "score output 'score'"),
    (lambda raw: raw["outputs"].update(score_column=None), None, "rank 2"),
])
def test_contract_mismatch_with_the_onnx_graph(registry_copy, card_edit, graph_edit, message):
    _rewrite(registry_copy / "fraud" / "1.0.0", card_edit, graph_edit)
    with pytest.raises(ModelError, match=message):
        ModelRegistry(registry_copy).load("fraud:1.0.0")


def test_card_naming_another_model_is_refused(registry_copy):
    shutil.copytree(registry_copy / "fraud" / "1.0.0", registry_copy / "fraud" / "2.0.0")
    with pytest.raises(ModelError, match=r"card says fraud:1.0.0"):
        ModelRegistry(registry_copy).load("fraud:2.0.0")


# --- runtime ---------------------------------------------------------------------------------

def test_provider_choice():
    everything = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert choose_providers(None, everything) == list(reversed(everything))
    assert choose_providers(None, ["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(ModelError, match="CUDAExecutionProvider"):
        choose_providers(["CUDAExecutionProvider"], ["CPUExecutionProvider"])


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="machine has CUDA")
def test_cpu_only_machine_refuses_cuda_and_defaults_to_cpu(fraud_model, scorer):
    with pytest.raises(ModelError, match="not available"):
        OnnxScorer(fraud_model, providers=["CUDAExecutionProvider"])
    assert scorer.providers == ["CPUExecutionProvider"]


def test_predict_batch_equals_a_direct_session_run(fraud_model, scorer, contract, events):
    matrix = contract.to_matrix(events).matrix
    scores = scorer.predict_batch(matrix)
    assert scores.dtype == np.float64 and scores.shape == (len(events),)
    same_session = scorer.session.run(["probabilities"], {"features": matrix})[0][:, 1]
    assert np.array_equal(scores, same_session.astype(np.float64))
    fresh = ort.InferenceSession(fraud_model.onnx_bytes, providers=["CPUExecutionProvider"])
    default_threads = fresh.run(["probabilities"], {"features": matrix})[0][:, 1]
    np.testing.assert_allclose(scores, default_threads, rtol=0, atol=1e-6)  # float32 sums, other order
    assert np.array_equal(scorer.labels(scores), scores >= fraud_model.card.outputs.threshold)
    assert labels_from_scores(np.array([0.1, 0.9]), 0.5).tolist() == [False, True]


def test_scores_do_not_depend_on_batch_size(scorer, contract, events):
    matrix = contract.to_matrix(events[:512]).matrix
    whole = scorer.predict_batch(matrix)
    one_by_one = np.concatenate([scorer.predict_batch(matrix[i:i + 1]) for i in range(len(matrix))])
    np.testing.assert_allclose(one_by_one, whole, rtol=0, atol=1e-6)
    assert scorer.predict_batch(np.empty((0, 25), np.float32)).shape == (0,)


def test_predict_batch_refuses_bad_input_and_settings(fraud_model, scorer):
    with pytest.raises(ModelError, match="float32"):
        scorer.predict_batch(np.zeros((2, 25), np.float64))
    with pytest.raises(ModelError, match=r"\(n, 25\)"):
        scorer.predict_batch(np.zeros((2, 24), np.float32))
    with pytest.raises(ModelError, match="graph_optimization"):
        OnnxScorer(fraud_model, graph_optimization="max")
    tuned = OnnxScorer(fraud_model, intra_op_threads=2, graph_optimization="basic", warmup_batch_sizes=(3,))
    zeros = np.zeros((4, 25), np.float32)
    np.testing.assert_allclose(tuned.predict_batch(zeros), scorer.predict_batch(zeros), atol=1e-7)


# --- build ------------------------------------------------------------------------------------

def test_tiny_build_is_reproducible_and_loadable(tmp_path):
    pytest.importorskip("sklearn")
    pytest.importorskip("skl2onnx")
    from models.build_demo import build_demo

    started = time.perf_counter()
    summary = build_demo(tmp_path / "a", seed=3, rows=4_000, model_params={"max_iter": 10})
    if time.perf_counter() - started > 10:
        pytest.skip("tiny build too slow on this machine to repeat")
    build_demo(tmp_path / "b", seed=3, rows=4_000, model_params={"max_iter": 10})
    for name in ("model.onnx", "model.json"):
        assert (tmp_path / "a/fraud/1.0.0" / name).read_bytes() == (tmp_path / "b/fraud/1.0.0" / name).read_bytes()
    assert summary["max_score_diff"] < 1e-5
    card = ModelRegistry(tmp_path / "a").load("fraud:1.0.0").card
    assert isinstance(card, ModelCard) and card.training.rows_train + card.training.rows_test < 4_000
    assert dataclasses.asdict(card.outputs)["score_column"] == 1
