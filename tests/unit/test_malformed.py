"""Unit tests of schemas/malformed.py: each malformed kind breaks exactly where it claims to."""

from __future__ import annotations

import math

import pytest

from models.demo_data import generate_events
from models.registry import load_model
from schemas import PayloadError, serde_for
from schemas.malformed import MALFORMED_KINDS, MalformedPayload, malformed_variant

EVENTS = serde_for("event")
DECODE_REASONS = {  # kind -> the serde's machine-friendly reason code
    "truncated": "truncated",
    "empty_body": "truncated",
    "garbage": "bad_marker",
    "foreign_fingerprint": "unknown_fingerprint",
    "trailing_bytes": "trailing_bytes",
}
CONTRACT_REASONS = {  # kind -> the contract's reject reason for that one row
    "nan": "amount: NaN",
    "infinite": "distance_from_home_km: inf",
    "out_of_range": "hour_of_day: value 42 out of range [0, 23]",
    "unknown_category": "country: unknown category 'ZZ'",
}


@pytest.fixture(scope="module")
def event() -> dict:
    return generate_events(1, seed=3, id_prefix="mf-")[0]


@pytest.fixture(scope="module")
def contract():
    return load_model("fraud:1.0.0").contract


def test_the_kinds_are_exactly_the_decode_and_contract_ones():
    assert set(MALFORMED_KINDS) == set(DECODE_REASONS) | set(CONTRACT_REASONS)
    assert len(MALFORMED_KINDS) == len(set(MALFORMED_KINDS)) == 9


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_variant_metadata(event, kind):
    bad = malformed_variant(kind, event)
    assert isinstance(bad, MalformedPayload)
    assert bad.kind == kind
    assert isinstance(bad.payload, bytes) and bad.payload
    assert bad.payload != EVENTS.encode(event)
    if kind in DECODE_REASONS:
        assert (bad.stage, bad.event_id) == ("DECODE", None)
        assert bad.reason_prefix == DECODE_REASONS[kind]
    else:
        assert (bad.stage, bad.event_id) == ("CONTRACT", event["event_id"])
        assert bad.reason_prefix.startswith("contract: ")


@pytest.mark.parametrize("kind", sorted(DECODE_REASONS))
def test_decode_kinds_are_rejected_by_the_event_serde(event, kind):
    bad = malformed_variant(kind, event)
    with pytest.raises(PayloadError) as info:
        EVENTS.decode(bad.payload)
    assert info.value.reason == DECODE_REASONS[kind]
    # The batch scorer writes "<reason>: <message>"; the declared prefix must match that.
    assert f"{info.value.reason}: {info.value}".startswith(bad.reason_prefix)


@pytest.mark.parametrize("kind", sorted(CONTRACT_REASONS))
def test_contract_kinds_decode_but_break_the_contract(event, contract, kind):
    bad = malformed_variant(kind, event)
    decoded = EVENTS.decode(bad.payload)
    assert decoded["event_id"] == event["event_id"]
    changed = {k for k in event if not _same(decoded[k], event[k])}
    assert len(changed) == 1  # exactly one field was broken
    matrix, rejects, valid = contract.to_matrix([decoded])
    assert rejects == [(0, CONTRACT_REASONS[kind])]
    assert len(valid) == 0 and matrix.shape == (0, contract.width)
    assert f"contract: {rejects[0][1]}".startswith(bad.reason_prefix)


def test_the_unbroken_event_passes_both_checks(event, contract):
    decoded = EVENTS.decode(EVENTS.encode(event))
    assert decoded == event
    assert contract.to_matrix([decoded]).rejects == []


def test_variants_keep_the_event_id_where_it_is_visible(event):
    garbage = malformed_variant("garbage", event)
    assert garbage.payload == b"not avro at all: " + event["event_id"].encode()
    truncated = malformed_variant("truncated", event)
    good = EVENTS.encode(event)
    assert truncated.payload == good[: len(good) // 2]
    assert malformed_variant("empty_body", event).payload == good[:10]
    assert malformed_variant("trailing_bytes", event).payload == good + b"\x00\x01"


@pytest.mark.parametrize("kind", ["", "Truncated", "nope", "nan "])
def test_unknown_kind_raises_value_error(event, kind):
    with pytest.raises(ValueError, match=r"unknown malformed kind") as info:
        malformed_variant(kind, event)
    assert repr(kind) in str(info.value)
    assert "truncated" in str(info.value)  # lists the known kinds


def _same(a, b) -> bool:
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return a == b or both_nan
