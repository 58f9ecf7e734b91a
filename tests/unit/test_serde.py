"""Unit tests of schemas/: the Avro schemas and the single-object serde."""

from __future__ import annotations

import ast
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    SCHEMA_FILES,
    AvroSerde,
    BadMarkerError,
    EmptyPayloadError,
    MalformedBodyError,
    PayloadError,
    RecordEncodeError,
    SingleObjectFraming,
    TrailingBytesError,
    TruncatedPayloadError,
    UnknownFingerprintError,
    UnknownSchemaError,
    decode_any,
    load_schema,
    schema_fingerprint,
    serde_for,
)
from streamscore.foundation.errors import SerdeError

NAMES = sorted(SCHEMA_FILES)
AVRO_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"
FAST = settings(max_examples=120, deadline=None)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


# --- record strategies built generically from the schema -------------------


def strategy_for(avro_type: Any) -> st.SearchStrategy[Any]:
    """Hypothesis strategy producing valid values of a (parsed) Avro type."""
    if isinstance(avro_type, list):
        return st.one_of(*[strategy_for(branch) for branch in avro_type])
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if kind == "enum":
            return st.sampled_from(avro_type["symbols"])
        if kind == "array":
            return st.lists(strategy_for(avro_type["items"]), max_size=5)
        return strategy_for(kind)  # a primitive with a logicalType: values stay raw
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(*INT32),
        "long": st.integers(*INT64),
        "double": st.floats(allow_nan=True, allow_infinity=True),
        "bytes": st.binary(max_size=64),
        "string": st.text(max_size=24),
    }[avro_type]


def record_strategy(name: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = load_schema(name)["fields"]
    return st.fixed_dictionaries({f["name"]: strategy_for(f["type"]) for f in fields})


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


named_records = st.sampled_from(NAMES).flatmap(lambda name: st.tuples(st.just(name), record_strategy(name)))


@pytest.fixture(scope="module")
def event_payload() -> bytes:
    return serde_for("event").encode(sample_event())


def sample_event() -> dict[str, Any]:
    record: dict[str, Any] = {}
    for field in load_schema("event")["fields"]:
        kind = field["type"] if isinstance(field["type"], str) else field["type"]["type"]
        record[field["name"]] = {
            "string": "x",
            "int": 3,
            "long": 1_700_000_000_000,
            "double": 1.5,
            "boolean": True,
        }[kind]
    return record


# --- round trips -----------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.data())
def test_round_trip_every_schema(name: str, data: st.DataObject) -> None:
    serde = serde_for(name)
    record = data.draw(record_strategy(name))
    payload = serde.encode(record)
    assert payload[:2] == b"\xc3\x01"
    assert payload[2:10] == serde.fingerprint
    assert same(serde.decode(payload), record)


@FAST
@given(named_records)
def test_decode_any_picks_the_schema_by_fingerprint(named: tuple[str, dict]) -> None:
    name, record = named
    decoded = decode_any(serde_for(name).encode(record))
    assert decoded.schema_name == name
    assert same(decoded.record, record)


def test_timestamps_are_int_millis_both_ways() -> None:
    serde = serde_for("event")
    record = sample_event()
    assert serde.decode(serde.encode(record))["event_time"] == 1_700_000_000_000
    record["event_time"] = dt.datetime.fromtimestamp(1_700_000_000.123, tz=dt.UTC)
    assert serde.decode(serde.encode(record))["event_time"] == 1_700_000_000_123


def test_defaults_fill_omitted_fields() -> None:
    serde = serde_for("control")
    record = {
        "message_id": "m",
        "kind": "RETRAIN_TRIGGER",
        "model_name": "fraud",
        "model_version": "3",
        "emitted_time": 5,
    }
    decoded = serde.decode(serde.encode(record))
    assert decoded["reasons"] == [] and decoded["window_ids"] == []
    assert decoded["tier"] is None and decoded["payload_json"] is None


def test_decode_accepts_bytearray_memoryview_and_many(event_payload: bytes) -> None:
    serde = serde_for("event")
    expected = serde.decode(event_payload)
    assert serde.decode(bytearray(event_payload)) == expected
    assert serde.decode(memoryview(event_payload)) == expected
    assert serde.decode_many([event_payload] * 3) == [expected] * 3


# --- fingerprints and schemas ----------------------------------------------


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (Rabin) exactly as the Avro specification writes it."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def canonical(node: Any, namespace: str) -> str:
    """Parsing Canonical Form for the subset of Avro our schemas use."""
    if isinstance(node, str):
        return json.dumps(node)
    if isinstance(node, list):
        return "[" + ",".join(canonical(n, namespace) for n in node) + "]"
    kind = node["type"]
    if kind in PRIMITIVES:
        return json.dumps(kind)
    if kind == "array":
        return '{"type":"array","items":' + canonical(node["items"], namespace) + "}"
    full = node["name"] if "." in node["name"] else f"{node.get('namespace', namespace)}.{node['name']}"
    if kind == "enum":
        return f'{{"name":"{full}","type":"enum","symbols":{json.dumps(node["symbols"], separators=(",", ":"))}}}'
    ns = full.rsplit(".", 1)[0]
    fields = ",".join(f'{{"name":"{f["name"]}","type":{canonical(f["type"], ns)}}}' for f in node["fields"])
    return f'{{"name":"{full}","type":"record","fields":[{fields}]}}'


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint_matches_independent_crc64_avro(name: str) -> None:
    raw = json.loads((AVRO_DIR / SCHEMA_FILES[name]).read_text())
    form = canonical(raw, "")
    expected = crc64_avro(form.encode()).to_bytes(8, "little")
    assert serde_for(name).fingerprint == expected == schema_fingerprint(load_schema(name))


def test_crc64_avro_of_empty_input_is_the_spec_constant() -> None:
    assert crc64_avro(b"") == 0xC15D213AA4D7A795


def test_fingerprints_are_distinct_and_8_bytes() -> None:
    fps = {serde_for(name).fingerprint for name in NAMES}
    assert len(fps) == len(NAMES) and all(len(fp) == 8 for fp in fps)


@pytest.mark.parametrize("name", NAMES)
def test_load_schema_every_name(name: str) -> None:
    schema = load_schema(name)
    raw = json.loads((AVRO_DIR / SCHEMA_FILES[name]).read_text())
    assert schema is load_schema(name)  # cached
    assert schema["name"] == f"io.streamscore.v1.{raw['name']}"
    assert raw["doc"]


def test_load_schema_unknown_name() -> None:
    with pytest.raises(UnknownSchemaError) as info:
        load_schema("nope")
    assert info.value.reason == "unknown_schema"


# --- decode errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error", "reason"),
    [
        (b"", EmptyPayloadError, "empty"),
        (None, EmptyPayloadError, "empty"),
        (b"\xc3", TruncatedPayloadError, "truncated"),
        (b"\x00", BadMarkerError, "bad_marker"),
        (b"\x00\x00\x00\x00\x07payload", BadMarkerError, "bad_marker"),  # Confluent framing
        ("text", BadMarkerError, "bad_marker"),
    ],
)
def test_decode_malformed_frames(payload: Any, error: type, reason: str) -> None:
    with pytest.raises(error) as info:
        serde_for("event").decode(payload)
    assert info.value.reason == reason


def test_truncated_header(event_payload: bytes) -> None:
    for cut in range(2, 10):
        with pytest.raises(TruncatedPayloadError):
            serde_for("event").decode(event_payload[:cut])


def test_truncated_body_at_every_length(event_payload: bytes) -> None:
    for cut in range(10, len(event_payload)):
        with pytest.raises(TruncatedPayloadError) as info:
            serde_for("event").decode(event_payload[:cut])
        assert info.value.reason == "truncated"


def test_trailing_garbage(event_payload: bytes) -> None:
    with pytest.raises(TrailingBytesError) as info:
        serde_for("event").decode(event_payload + b"\x00")
    assert isinstance(info.value, TruncatedPayloadError)
    assert info.value.reason == "trailing_bytes"


def test_bad_body_reports_bad_body() -> None:
    serde = serde_for("scored")
    header = SingleObjectFraming.MARKER + serde.fingerprint
    with pytest.raises(MalformedBodyError) as info:
        serde.decode(header + b"\x04\xff\xfe" + b"\x00" * 40)  # invalid UTF-8 event_id
    assert info.value.reason == "bad_body"


def test_foreign_fingerprint(event_payload: bytes) -> None:
    scored = serde_for("scored")
    with pytest.raises(UnknownFingerprintError) as info:
        scored.decode(event_payload)
    message = str(info.value)
    assert serde_for("event").fingerprint.hex() in message
    assert scored.fingerprint.hex() in message
    assert info.value.reason == "unknown_fingerprint"


def test_decode_any_unknown_fingerprint(event_payload: bytes) -> None:
    payload = event_payload[:2] + b"\x01" * 8 + event_payload[10:]
    with pytest.raises(UnknownFingerprintError, match="0101010101010101"):
        decode_any(payload)


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_serde_errors(payload: bytes) -> None:
    for decode in (serde_for("event").decode, decode_any):
        try:
            decode(payload)
        except SerdeError as exc:
            assert isinstance(exc, PayloadError) and exc.reason


@FAST
@given(st.sampled_from(NAMES), st.binary(max_size=200))
def test_random_bodies_raise_only_serde_errors(name: str, body: bytes) -> None:
    serde = serde_for(name)
    payload = SingleObjectFraming.MARKER + serde.fingerprint + body
    for decode in (serde.decode, decode_any):
        try:
            decode(payload)
        except SerdeError as exc:
            assert isinstance(exc, PayloadError) and exc.reason


# --- encode errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"customer_age": "forty"}, "customer_age"),
        ({"customer_age": 2**31}, "customer_age"),
        ({"customer_age": True}, "customer_age"),
        ({"event_id": None}, "event_id"),
        ({"amount": "1.0"}, "amount"),
        ({"card_present": 1}, "card_present"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_encode_rejects_bad_values(change: dict, field: str) -> None:
    record = {**sample_event(), **change}
    with pytest.raises(RecordEncodeError) as info:
        serde_for("event").encode(record)
    assert info.value.field == field and field in str(info.value)
    assert info.value.reason == "encode_failed"


def test_encode_rejects_missing_field_and_bad_enum() -> None:
    record = sample_event()
    del record["amount"]
    with pytest.raises(RecordEncodeError, match="amount"):
        serde_for("event").encode(record)
    dead = {
        "original_bytes": b"x",
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 1,
        "stage": "NOPE",
        "reason": "r",
        "job": "j",
        "failed_time": 0,
    }
    with pytest.raises(RecordEncodeError, match="stage"):
        serde_for("dead_letter").encode(dead)
    with pytest.raises(RecordEncodeError):
        serde_for("event").encode(["not", "a", "dict"])  # type: ignore[arg-type]


def test_encode_allows_nan_and_infinity() -> None:
    record = {**sample_event(), "amount": math.nan, "utilization": -math.inf}
    decoded = serde_for("event").decode(serde_for("event").encode(record))
    assert math.isnan(decoded["amount"]) and decoded["utilization"] == -math.inf


def test_serde_from_a_plain_schema_dict() -> None:
    serde = AvroSerde({"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]})
    assert serde.decode(serde.encode({"a": 7})) == {"a": 7}


def test_schemas_package_never_imports_flink_or_kafka() -> None:
    for path in AVRO_DIR.parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not any(m.split(".")[0] in {"pyflink", "confluent_kafka"} for m in modules)
