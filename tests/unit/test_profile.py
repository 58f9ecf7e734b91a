"""Unit tests of models/drift_profile.py: the drift reference profile."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from drift import build_profile, load_profile
from models.demo_data import demo_contract, generate_matrix
from models.drift_profile import OOV_BUCKET, QUANTILE_POINTS, CategoricalProfile, NumericProfile
from streamscore.foundation.errors import ModelError


def _feature(name: str, kind: str = "numeric", categories=None) -> SimpleNamespace:
    return SimpleNamespace(name=name, kind=kind, categories=categories)


MIXED = SimpleNamespace(features=[
    _feature("amount"), _feature("flag"), _feature("hour"), _feature("constant"),
    _feature("colour", "categorical", ("red", "green", "blue")),
])


@pytest.fixture(scope="module")
def mixed_columns() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 10_000
    return {"amount": rng.lognormal(3.0, 1.0, n), "flag": (rng.random(n) < 0.3).astype(float),
            "hour": rng.integers(0, 24, n).astype(float), "constant": np.full(n, 7.0),
            "colour": rng.choice(3, n, p=[0.5, 0.3, 0.2]).astype(float)}


@pytest.fixture(scope="module")
def mixed_profile(mixed_columns) -> dict:
    return build_profile(MIXED, mixed_columns)


def test_continuous_feature_gets_ten_decile_bins(mixed_profile, mixed_columns):
    amount = mixed_profile["features"]["amount"]
    assert len(amount["edges"]) == 9 and len(amount["proportions"]) == 10
    np.testing.assert_allclose(amount["proportions"], 0.1, atol=0.002)
    assert sum(amount["proportions"]) == pytest.approx(1.0)
    quantiles = np.asarray(amount["quantiles"])
    assert quantiles.size == QUANTILE_POINTS and np.all(np.diff(quantiles) >= 0)
    assert quantiles[0] == pytest.approx(mixed_columns["amount"].min())
    assert quantiles[-1] == pytest.approx(mixed_columns["amount"].max())
    assert quantiles[500] == pytest.approx(np.median(mixed_columns["amount"]), rel=1e-6)


def test_few_valued_features_get_deduplicated_non_empty_bins(mixed_profile, mixed_columns):
    flag = mixed_profile["features"]["flag"]
    assert flag["edges"] == [0.0]
    assert flag["proportions"] == pytest.approx([0.7, 0.3], abs=0.02)
    hour = mixed_profile["features"]["hour"]
    assert len(hour["edges"]) == 9 and all(e == int(e) for e in hour["edges"])
    assert min(hour["proportions"]) > 0
    constant = mixed_profile["features"]["constant"]
    assert constant["edges"] == [] and constant["proportions"] == [1.0]
    for name in ("amount", "flag", "hour", "constant"):
        assert sum(mixed_profile["features"][name]["proportions"]) == pytest.approx(1.0)


def test_categorical_feature_has_an_empty_oov_bucket(mixed_profile, mixed_columns):
    colour = mixed_profile["features"]["colour"]
    assert colour["buckets"] == ["red", "green", "blue", OOV_BUCKET]
    assert colour["proportions"][-1] == 0.0
    assert colour["proportions"][:3] == pytest.approx([0.5, 0.3, 0.2], abs=0.02)
    as_strings = np.array(["red", "green", "blue"], dtype=object)[mixed_columns["colour"].astype(int)]
    by_string = build_profile(MIXED, dict(mixed_columns, colour=as_strings))
    assert by_string["features"]["colour"] == colour


def test_profile_is_json_and_loads_back(mixed_profile):
    raw = json.loads(json.dumps(mixed_profile, allow_nan=False))
    profile = load_profile(raw)
    assert profile.rows == 10_000 and set(profile.features) == {f.name for f in MIXED.features}
    amount = profile.features["amount"]
    assert isinstance(amount, NumericProfile) and amount.quantiles.shape == (QUANTILE_POINTS,)
    counts = amount.bin_counts(np.array([-1.0, amount.edges[0], amount.edges[0] + 1e-9, 1e12]))
    assert counts.tolist() == [2, 1] + [0] * 7 + [1]
    colour = profile.features["colour"]
    assert isinstance(colour, CategoricalProfile)
    assert colour.bin_counts(np.array([0, 2, 2, 3, -1, 1.5, np.nan])).tolist() == [1, 0, 2, 4]
    assert colour.bin_counts(np.array(["blue", "purple"], dtype=object)).tolist() == [0, 0, 1, 1]


def test_matrix_and_columns_give_the_same_profile():
    contract = demo_contract()
    matrix, _ = generate_matrix(3_000, seed=1)
    from_matrix = build_profile(contract, matrix)
    from_columns = build_profile(contract, {name: matrix[:, j] for j, name in enumerate(contract.names)})
    assert from_matrix == from_columns
    assert list(from_matrix["features"]) == list(contract.names)
    for name, summary in from_matrix["features"].items():
        assert sum(summary["proportions"]) == pytest.approx(1.0), name


def test_bad_inputs_and_bad_profiles_are_refused(mixed_profile):
    with pytest.raises(ModelError, match="shape"):
        build_profile(demo_contract(), np.zeros((5, 3), np.float32))
    with pytest.raises(ModelError, match="no finite"):
        build_profile(SimpleNamespace(features=[_feature("x")]), {"x": np.array([np.nan, np.inf])})
    with pytest.raises(ModelError, match="format_version"):
        load_profile({"features": {}})
    broken = json.loads(json.dumps(mixed_profile))
    broken["features"]["amount"]["proportions"][0] += 0.5
    with pytest.raises(ModelError, match=r"features\['amount'\]\.proportions"):
        load_profile(broken)
    broken = json.loads(json.dumps(mixed_profile))
    broken["features"]["colour"]["buckets"].pop()
    with pytest.raises(ModelError, match="buckets"):
        load_profile(broken)
