"""``decode_confluent``, the project's Java function (``jobs/udf``) that decodes the Confluent wire in the
JVM: built by the project's Maven step, run in an embedded PyFlink job against the stack's registry.
Every good record decodes to its values (a v2 writer read as v1), every bad one is tagged with the
same reject code the Python decoder gives it, and never fails the job."""

from __future__ import annotations

import json
import math
import uuid

import pytest

from connectors.schema_registry import SchemaRegistry
from jobs.jars import udf_jar
from schemas.confluent import RegistryAvroSerde, schema_id_key
from schemas.errors import PayloadError

pytestmark = pytest.mark.integration

NS = "io.streamscore.test"
V1 = {"type": "record", "name": "Txn", "namespace": NS, "fields": [
    {"name": "txn_id", "type": "string"},
    {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "amount", "type": "double"}, {"name": "ratio", "type": "float"}, {"name": "count_1h", "type": "int"},
    {"name": "total", "type": "long"}, {"name": "card_present", "type": "boolean"},
    {"name": "channel", "type": {"type": "enum", "name": "Channel", "symbols": ["POS", "WEB", "ATM"]}},
    {"name": "risk", "type": ["null", "double"], "default": None},
    {"name": "note", "type": ["null", "string"], "default": None}]}
V2 = {**V1, "fields": [*V1["fields"], {"name": "promo_code", "type": ["null", "string"], "default": None}]}
# a BACKWARD-compatible v3 whose amount may be null and whose channel has a new symbol: V1 reads each record
# that carries neither (the Avro specification resolves per record), and refuses the ones that do
V3 = {**V2, "fields": [
    dict(f, type=["null", "double"]) if f["name"] == "amount" else
    dict(f, type={"type": "enum", "name": "Channel", "symbols": ["POS", "WEB", "ATM", "APP"]})
    if f["name"] == "channel" else f for f in V2["fields"]]}
OTHER = {"type": "record", "name": "Label", "namespace": NS,
         "fields": [{"name": "txn_id", "type": "string"}, {"name": "label", "type": "int"}]}
BROKEN = {**V1, "fields": [dict(f, type="string") if f["name"] == "amount" else f for f in V1["fields"]]}
GOOD_A = {"txn_id": "t-1", "event_time": 1733300000123, "amount": 12.5, "ratio": 0.25, "count_1h": 3,
          "total": 9_000_000_000, "card_present": True, "channel": "WEB", "risk": 0.75, "note": "héllo ✓"}
GOOD_B = {"txn_id": "t-2", "event_time": 0, "amount": -1e300, "ratio": -3.5, "count_1h": -2147483648, "total": -1,
          "card_present": False, "channel": "ATM", "risk": None, "note": None}
FIELDS = [f["name"] for f in V1["fields"]]


def _body_with_channel_index(index: int) -> bytes:
    """GOOD_A's body, but with a channel enum index the schema does not have."""
    import io

    from fastavro import parse_schema, schemaless_writer

    wide = {**V1, "fields": [dict(f, type={"type": "enum", "name": "Channel", "symbols": [f"S{i}" for i in
                                                                                        range(index + 1)]})
                             if f["name"] == "channel" else f for f in V1["fields"]]}
    out = io.BytesIO()
    schemaless_writer(out, parse_schema(wide), {**GOOD_A, "channel": f"S{index}"})
    return out.getvalue()


def _with_string_bytes(framed: bytes, text: str, raw: bytes) -> bytes:
    """``framed`` with the Avro string ``text`` replaced by ``raw`` bytes of the same length."""
    assert len(raw) == len(text.encode()) and framed.count(text.encode()) == 1
    return framed.replace(text.encode(), raw)


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def cases(settings, stack):
    """label -> (payload, expected reject code or None, expected values)."""
    registry = SchemaRegistry(settings.schema_registry)
    run = uuid.uuid4().hex[:8]
    ids = {name: registry.register(f"jvm-{name}-{run}-value", schema)
           for name, schema in (("v1", V1), ("other", OTHER), ("broken", BROKEN))}
    ids["v2"] = registry.register(f"jvm-v1-{run}-value", V2)
    ids["v3"] = registry.register(f"jvm-v1-{run}-value", V3)

    def framed(name, schema, record):
        return RegistryAvroSerde(schema, ids[name], registry).encode(record)

    good_a = framed("v1", V1, GOOD_A)
    return {
        "good_a": (good_a, None, GOOD_A),
        "good_b": (framed("v1", V1, GOOD_B), None, GOOD_B),
        "v2_read_as_v1": (framed("v2", V2, {**GOOD_A, "promo_code": "SPRING"}), None, GOOD_A),
        "empty": (b"", "empty", None),
        "bad_magic": (b"\x01" + good_a[1:], "bad_magic", None),
        "truncated_header": (b"\x00\x00\x01", "truncated", None),
        "truncated_body": (good_a[:-3], "truncated", None),
        "unknown_schema_id": (b"\x00" + schema_id_key(2_000_000_000) + good_a[5:], "unknown_schema_id", None),
        "another_subject": (framed("other", OTHER, {"txn_id": "t-9", "label": 1}), "wrong_schema", None),
        "incompatible": (framed("broken", BROKEN, {**GOOD_A, "amount": "12.5"}), "wrong_schema", None),
        "enum_index_out_of_range": (good_a[:5] + _body_with_channel_index(7), "bad_body", None),
        "trailing_bytes": (good_a + b"\x00\x01", "trailing_bytes", None),
        "v3_read_as_v1": (framed("v3", V3, {**GOOD_A, "promo_code": None}), None, GOOD_A),
        "v3_null_amount": (framed("v3", V3, {**GOOD_A, "amount": None, "promo_code": None}), "wrong_schema", None),
        "v3_new_symbol": (framed("v3", V3, {**GOOD_A, "channel": "APP", "promo_code": None}), "wrong_schema", None),
        # string bytes Avro does not check: not UTF-8, and a lone surrogate (what Python refuses too)
        "invalid_utf8": (_with_string_bytes(good_a, "t-1", b"\xff\xfe\xfd"), "bad_body", None),
        "surrogate_utf8": (_with_string_bytes(good_a, "\u2713", b"\xed\xa0\x80"), "bad_body", None),
    }


def test_the_jvm_decoder_tags_every_record_as_the_python_decoder_does(settings, cases):
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment

    jar = udf_jar(settings.cache_dir)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("pipeline.jars", jar.as_uri())
    t_env.get_config().set("parallelism.default", "1")
    rows = [(label, bytearray(payload)) for label, (payload, _, _) in cases.items()]
    t_env.create_temporary_view("src", t_env.from_elements(rows, DataTypes.ROW([
        DataTypes.FIELD("label", DataTypes.STRING()), DataTypes.FIELD("payload", DataTypes.BYTES())])))
    t_env.execute_sql("CREATE TEMPORARY FUNCTION decode_confluent AS 'io.streamscore.udf.ConfluentAvroDecode' "
                      "LANGUAGE JAVA")
    query = (f"SELECT label, d.* FROM (SELECT label, decode_confluent(payload, {_sql(json.dumps(V1))}, "
             f"{_sql(settings.schema_registry.url)}) AS d FROM src)")
    with t_env.sql_query(query).execute().collect() as results:
        decoded = {row[0]: row for row in results}

    python = RegistryAvroSerde(V1, None, SchemaRegistry(settings.schema_registry))
    for label, (payload, code, values) in cases.items():
        row = decoded[label]
        ok, reason_code, reason, got = row[1], row[2], row[3], dict(zip(FIELDS, row[4:]))
        if code is None:
            assert ok and reason_code is None, (label, reason)
            for name in FIELDS:
                want = values[name]
                assert math.isclose(got[name], want, rel_tol=1e-6) if isinstance(want, float) \
                    else got[name] == want, (label, name, got[name], want)
            assert python.decode(payload) == values
        else:
            assert (ok, reason_code) == (False, code), (label, reason)
            assert reason and all(v is None for v in got.values()), label
            with pytest.raises(PayloadError) as err:
                python.decode(payload)
            assert err.value.reason == code, (label, str(err.value))


def test_known_writer_schemas_decode_without_the_registry(settings, cases):
    """A task restarted during a registry outage: the ids the job was given with their schemas still
    decode (the URL here answers nothing, and a wait of 0 ms would fail the task on any lookup)."""
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment

    good_a, good_b = cases["good_a"][0], cases["good_b"][0]
    v1_id = int.from_bytes(good_a[1:5], "big")
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("pipeline.jars", udf_jar(settings.cache_dir).as_uri())
    t_env.get_config().set("parallelism.default", "1")
    t_env.create_temporary_view("src", t_env.from_elements(
        [(bytearray(good_a),), (bytearray(good_b),)], DataTypes.ROW([DataTypes.FIELD("payload", DataTypes.BYTES())])))
    t_env.execute_sql("CREATE TEMPORARY FUNCTION decode_confluent AS 'io.streamscore.udf.ConfluentAvroDecode' "
                      "LANGUAGE JAVA")
    known = json.dumps({str(v1_id): V1})
    query = (f"SELECT d.ok, d.txn_id FROM (SELECT decode_confluent(payload, {_sql(json.dumps(V1))}, "
             f"'http://127.0.0.1:9/apis/ccompat/v7', 0, {_sql(known)}) AS d FROM src)")
    with t_env.sql_query(query).execute().collect() as results:
        assert sorted((row[0], row[1]) for row in results) == [(True, "t-1"), (True, "t-2")]
