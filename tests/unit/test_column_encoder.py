"""The column encoder writes the same bytes as fastavro, for every record shape streamscore writes."""

from __future__ import annotations

import io
import random

import pytest
from fastavro import parse_schema, schemaless_writer

from schemas import load_schema
from schemas.column_encoder import ColumnEncoder, Same, zigzag_varint
from schemas.errors import RecordEncodeError
from schemas.serde import strip_logical_types


def _fastavro(schema, record) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(strip_logical_types(schema)), record)
    return out.getvalue()


def _plain(schema):
    return {k: v for k, v in schema.items() if not k.startswith("__")}


def _random_scored(rng: random.Random) -> dict:
    score = rng.choice([0.0, 1.0, -0.0, rng.random(), 1e-300, float("inf")])
    return {"event_id": rng.choice(["", "e-1", "ü✓" * rng.randint(1, 80)]), "correlation_id": f"c-{rng.random()}",
            "model_name": "fraud", "model_version": rng.choice(["1.0.0", "1.1.0"]), "score": score,
            "label": rng.choice([0, 1]), "threshold": 0.2014, "batch_id": "job:0:12:512",
            "event_time": rng.choice([0, 1, -1, 63, 64, -65, 2**31, 1_800_000_000_123, 2**63 - 1, -(2**63)]),
            "scored_time": 1_800_000_000_999}


def test_scored_records_encode_byte_for_byte_as_fastavro():
    schema = _plain(load_schema("scored"))
    rng = random.Random(7)
    records = [_random_scored(rng) for _ in range(500)]
    columns = {name: [r[name] for r in records] for name in records[0]}
    columns["batch_id"] = Same("job:0:12:512")
    got = ColumnEncoder(schema).encode(columns, len(records), prefix=b"\x00\x00\x00\x00\x07")
    assert got == [b"\x00\x00\x00\x00\x07" + _fastavro(schema, r) for r in records]


def test_one_column_given_for_two_fields_is_encoded_once_with_the_same_bytes():
    schema = _plain(load_schema("scored"))
    rng = random.Random(11)
    records = [_random_scored(rng) for _ in range(300)]
    for record in records:
        record["correlation_id"] = record["event_id"]  # a schema with no correlation id: the event id stands in
    columns = {name: [r[name] for r in records] for name in records[0]}
    columns["correlation_id"] = columns["event_id"]  # the very same list
    assert ColumnEncoder(schema).encode(columns, len(records)) == [_fastavro(schema, r) for r in records]


def test_a_shared_column_of_nullable_fields_is_encoded_per_field():  # its fragments are an iterator: not shared
    schema = _plain(load_schema("dead_letter"))
    ids = [None, "e-1", "e-22", None]
    records = [{"original_bytes": b"x", "source_topic": "t", "source_partition": 0, "source_offset": k,
                "stage": "DECODE", "reason": "r", "event_id": i, "correlation_id": i, "job": "j",
                "failed_time": 5} for k, i in enumerate(ids)]
    columns = {name: [r[name] for r in records] for name in records[0]}
    columns["correlation_id"] = columns["event_id"]
    assert ColumnEncoder(schema).encode(columns, len(ids)) == [_fastavro(schema, r) for r in records]


def test_dead_letters_with_enums_nulls_and_bytes_encode_as_fastavro():
    schema = _plain(load_schema("dead_letter"))
    rng = random.Random(3)
    records = [{"original_bytes": bytes(rng.randrange(256) for _ in range(rng.randint(0, 300))),
                "source_topic": "events", "source_partition": rng.randint(0, 5), "source_offset": rng.randint(0, 2**40),
                "stage": rng.choice(["DECODE", "CONTRACT", "INFERENCE", "ENCODE"]), "reason": "bad_magic: x",
                "event_id": rng.choice([None, "e-9"]), "correlation_id": rng.choice([None, "c"]), "job": "j",
                "failed_time": 1_800_000_000_000} for _ in range(200)]
    columns = {name: [r[name] for r in records] for name in records[0]}
    assert ColumnEncoder(schema).encode(columns, 200) == [_fastavro(schema, r) for r in records]


def test_varints_match_the_avro_spec_examples():
    assert [zigzag_varint(v) for v in (0, -1, 1, -2, 2, -64, 64)] == \
        [b"\x00", b"\x01", b"\x02", b"\x03", b"\x04", b"\x7f", b"\x80\x01"]


def test_missing_or_short_columns_and_bad_values_are_one_line_errors():
    schema = _plain(load_schema("scored"))
    encoder = ColumnEncoder(schema)
    record = _random_scored(random.Random(1))
    columns = {name: [record[name]] for name in record}
    with pytest.raises(RecordEncodeError, match=r"no column for field.*score"):
        encoder.encode({k: v for k, v in columns.items() if k != "score"}, 1)
    with pytest.raises(RecordEncodeError, match="do not hold 2 rows"):
        encoder.encode(columns, 2)
    with pytest.raises(RecordEncodeError, match="cannot encode"):
        encoder.encode({**columns, "label": ["one"]}, 1)
    with pytest.raises(RecordEncodeError, match=r"only \['null', T\] unions"):
        ColumnEncoder({"type": "record", "name": "R", "fields": [{"name": "x", "type": ["int", "string"]}]})


def test_integer_arrays_take_the_numpy_varints_with_the_same_bytes():
    import numpy as np

    from schemas.column_encoder import varints

    values = [0, 1, -1, 63, -64, 64, -65, 2**31, 1_800_000_000_123, 2**63 - 1, -(2**63)]
    assert varints(np.array(values, dtype=np.int64)) == [zigzag_varint(v) for v in values]
    schema = _plain(load_schema("scored"))
    record = _random_scored(random.Random(5))
    columns = {name: [record[name]] * len(values) for name in record}
    columns["event_time"] = np.array(values, dtype=np.int64)
    got = ColumnEncoder(schema).encode(columns, len(values))
    assert got == [_fastavro(schema, {**record, "event_time": v}) for v in values]
