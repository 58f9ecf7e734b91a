"""The Confluent wire format: framing errors, schema ids, reading through the registry, schema evolution."""

from __future__ import annotations

import pytest

from schemas import BadMarkerError, EmptyPayloadError, PayloadError, load_schema
from schemas.confluent import (
    CONFLUENT,
    RegisteredReader,
    RegistryAvroSerde,
    schema_id_key,
    schema_id_of,
)
from schemas.errors import (
    BadMagicByteError,
    MalformedBodyError,
    RecordEncodeError,
    TrailingBytesError,
    TruncatedPayloadError,
    UnknownSchemaIdError,
    WrongSchemaError,
)
from streamscore.foundation.errors import RegistryUnavailable, SchemaNotFound
from streamscore.foundation.vocabulary import RejectCode

V1 = {"type": "record", "name": "Reading", "namespace": "io.example",
      "fields": [{"name": "sensor", "type": "string"}, {"name": "temp", "type": "double"}]}
V2 = {**V1, "fields": [*V1["fields"], {"name": "site", "type": ["null", "string"], "default": None}]}
BREAKING = {**V1, "fields": [{"name": "sensor", "type": "string"}, {"name": "temp", "type": "string"}]}
OTHER = {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]}


class Registry:
    """An in-memory lookup (the unit tests' stand-in for connectors.schema_registry.SchemaRegistry)."""

    def __init__(self, schemas: dict[int, dict]):
        self.schemas = schemas
        self.calls = 0
        self.down = False

    def schema(self, schema_id: int):
        self.calls += 1
        if self.down:
            raise RegistryUnavailable("registry down")
        if schema_id not in self.schemas:
            raise SchemaNotFound(f"{schema_id} not found")
        return self.schemas[schema_id]


@pytest.fixture
def registry():
    return Registry({1: V1, 2: V2, 3: BREAKING, 4: OTHER})


def test_a_record_is_framed_with_magic_byte_and_big_endian_id(registry):
    payload = RegistryAvroSerde(V1, 258, registry).encode({"sensor": "a", "temp": 1.5})
    assert payload[:5] == b"\x00\x00\x00\x01\x02" and schema_id_of(payload) == 258
    assert schema_id_key(258) == b"\x00\x00\x01\x02"


@pytest.mark.parametrize("payload, error, code", [
    (b"", EmptyPayloadError, RejectCode.EMPTY),
    (None, EmptyPayloadError, RejectCode.EMPTY),
    (b"\xc3\x01" + bytes(12), BadMagicByteError, RejectCode.BAD_MAGIC),
    (b"\x01\x00\x00\x00\x01abc", BadMagicByteError, RejectCode.BAD_MAGIC),
    (b"\x00\x00\x01", TruncatedPayloadError, RejectCode.TRUNCATED),
])
def test_framing_errors_are_typed_and_carry_their_reject_code(payload, error, code):
    with pytest.raises(error) as err:
        CONFLUENT.unframe(payload)
    assert err.value.reason == code and "\n" not in str(err.value)


def test_round_trip_and_a_backward_compatible_v2_reads_as_v1(registry):
    reader = RegistryAvroSerde(V1, 1, registry)
    assert reader.decode(reader.encode({"sensor": "a", "temp": 1.5})) == {"sensor": "a", "temp": 1.5}
    v2 = RegistryAvroSerde(V2, 2, registry).encode({"sensor": "b", "temp": 2.5, "site": "north"})
    assert reader.decode(v2) == {"sensor": "b", "temp": 2.5}  # the new optional field is not the reader's


def test_writer_schemas_are_cached_so_known_ids_survive_a_registry_outage(registry):
    reader = RegistryAvroSerde(V1, 1, registry)
    payload = RegistryAvroSerde(V2, 2, registry).encode({"sensor": "b", "temp": 2.5, "site": None})
    reader.decode(payload)
    registry.down = True
    assert reader.decode(payload) == {"sensor": "b", "temp": 2.5}
    assert registry.calls == 1
    unseen = b"\x00" + schema_id_key(9) + b"\x02a"
    with pytest.raises(RegistryUnavailable):  # an unseen id needs the registry: not the payload's fault
        reader.decode(unseen)


@pytest.mark.parametrize("schema_id, error, code", [
    (99, UnknownSchemaIdError, RejectCode.UNKNOWN_SCHEMA_ID),  # no such id
    (4, WrongSchemaError, RejectCode.WRONG_SCHEMA),  # a valid id of another subject's record
    (3, WrongSchemaError, RejectCode.WRONG_SCHEMA),  # the same record, changed incompatibly
])
def test_ids_that_are_not_the_readers_schema_are_refused(registry, schema_id, error, code):
    body = b"\x02a" + b"\x00" * 8  # "a" and 8 bytes: a double (or, under BREAKING, a string length...)
    with pytest.raises(error) as err:
        RegistryAvroSerde(V1, 1, registry).decode(b"\x00" + schema_id_key(schema_id) + body)
    assert err.value.reason == code


def test_body_errors(registry):
    serde = RegistryAvroSerde(V1, 1, registry)
    good = serde.encode({"sensor": "a", "temp": 1.5})
    with pytest.raises(TruncatedPayloadError):
        serde.decode(good[:-3])
    with pytest.raises(TrailingBytesError):
        serde.decode(good + b"\x00")
    with pytest.raises(MalformedBodyError):
        serde.decode(b"\x00" + schema_id_key(1) + b"\x02\xff" + b"\x00" * 8)  # a string that is not UTF-8


def test_encoding_is_validated_and_needs_a_registered_id(registry):
    with pytest.raises(RecordEncodeError, match="missing field"):
        RegistryAvroSerde(V1, 1, registry).encode({"sensor": "a"})
    with pytest.raises(RecordEncodeError, match="no registered schema id"):
        RegistryAvroSerde(V1, None, registry).encode({"sensor": "a", "temp": 1.0})


def test_the_registered_reader_decodes_any_schema_with_its_writer_schema(registry):
    v2 = RegistryAvroSerde(V2, 2, registry).encode({"sensor": "b", "temp": 2.5, "site": "north"})
    assert RegisteredReader(registry).decode(v2) == ("io.example.Reading", {"sensor": "b", "temp": 2.5,
                                                                            "site": "north"})
    with pytest.raises(UnknownSchemaIdError):
        RegisteredReader(registry).decode(b"\x00" + schema_id_key(77) + b"\x00")


def test_streamscore_schemas_read_the_same_on_both_wires():
    """A streamscore record framed either way holds the same Avro body; only the header differs."""
    from schemas import serde_for

    schema = load_schema("label")
    plain = {k: v for k, v in schema.items() if not k.startswith("__")}
    confluent = RegistryAvroSerde(schema, 5, Registry({5: plain}))
    single = serde_for("label")
    record = single.decode(single.encode({"event_id": "e1", "correlation_id": None, "label": 1,
                                          "event_time": 1700000000000, "label_time": 1700000000123}))
    payload = confluent.encode(record)
    assert payload[5:] == single.encode(record)[10:]
    assert confluent.decode(payload) == record  # epoch millis stay ints
    with pytest.raises(BadMarkerError):  # and neither serde reads the other's framing
        single.decode(payload)


def test_a_nullable_union_writer_reads_and_unusable_schemas_are_wrong_schemas():
    """Flink SQL's avro-confluent registers ["null", record]; a Protobuf or unparsable id is no Avro record."""
    registry = Registry({1: V1, 6: ["null", V1], 7: {"schemaType": "PROTOBUF"},
                         8: {"type": "record", "name": "Reading", "namespace": "io.example",
                             "fields": [{"name": "x", "type": "io.example.Missing"}]}})
    import io

    from fastavro import parse_schema, schemaless_writer

    out = io.BytesIO()
    schemaless_writer(out, parse_schema(["null", V1]), {"sensor": "u", "temp": 3.5})
    reader = RegistryAvroSerde(V1, 1, registry)
    assert reader.decode(b"\x00" + schema_id_key(6) + out.getvalue()) == {"sensor": "u", "temp": 3.5}
    for schema_id in (7, 8):
        with pytest.raises(WrongSchemaError):
            reader.decode(b"\x00" + schema_id_key(schema_id) + b"\x02a")
        with pytest.raises(WrongSchemaError):
            RegisteredReader(registry).decode(b"\x00" + schema_id_key(schema_id) + b"\x02a")


def test_a_writer_named_by_one_of_the_readers_aliases_resolves_as_avro_has_it():
    """A record renamed (io.example.Reading, once io.legacy.Sensor) still reads its old records when it
    names the old name as an alias, full or within its namespace; a name it does not alias is refused."""
    import io

    from fastavro import parse_schema, schemaless_writer

    legacy = {**V1, "name": "Sensor", "namespace": "io.legacy"}
    local = {**V1, "name": "OldReading"}
    registry = Registry({1: legacy, 2: local})
    bodies = {}
    for schema_id, schema in ((1, legacy), (2, local)):
        out = io.BytesIO()
        schemaless_writer(out, parse_schema(schema), {"sensor": "s-1", "temp": 2.5})
        bodies[schema_id] = b"\x00" + schema_id_key(schema_id) + out.getvalue()
    renamed = RegistryAvroSerde({**V1, "aliases": ["io.legacy.Sensor", "OldReading"]}, None, registry)
    assert renamed.decode(bodies[1]) == renamed.decode(bodies[2]) == {"sensor": "s-1", "temp": 2.5}
    with pytest.raises(WrongSchemaError, match=r"io\.legacy\.Sensor, not io\.example\.Reading"):
        RegistryAvroSerde(V1, None, registry).decode(bodies[1])


@pytest.mark.parametrize("kind", ["truncated", "bad_magic", "unknown_schema_id"])
def test_each_confluent_malformed_kind_fails_to_decode_with_its_own_code(registry, kind):
    from schemas.malformed import CONFLUENT_MALFORMED_KINDS, confluent_malformed_variant

    serde = RegistryAvroSerde(V1, 1, registry)
    good = serde.encode({"sensor": "a-sensor-with-a-long-name", "temp": 21.5})
    bad = confluent_malformed_variant(kind, good)
    assert kind in CONFLUENT_MALFORMED_KINDS and bad.payload != good and bad.event_id is None
    with pytest.raises(PayloadError) as caught:
        serde.decode(bad.payload)
    assert caught.value.reason == bad.reason_code and bad.stage == "DECODE"


def test_a_moved_topic_is_written_on_the_confluent_wire_and_read_in_either_framing():
    """The sidecar's topics (control, alerts, labels) moved from single-object: records from before the
    move still read; what is written now is Confluent-framed; garbage is still refused."""
    from schemas import serde_for
    from schemas.confluent import BothFramings
    from schemas.serde import schema_document

    single = serde_for("label")
    both = BothFramings(RegistryAvroSerde.known(schema_document("label"), 9, Registry({})), single)
    record = {"event_id": "e1", "correlation_id": "c1", "label": 0, "event_time": 1700000000000,
              "label_time": 1700000000500}
    written = both.encode(record)
    assert schema_id_of(written) == 9 and both.decode(written) == record
    assert both.decode(single.encode(record)) == record  # a record from before the move
    with pytest.raises(PayloadError):
        both.decode(b"\x07garbage")
    for tombstone in (None, b""):  # a null-value message on control or labels: a payload error the readers skip
        with pytest.raises(PayloadError):
            both.decode(tombstone)


@pytest.mark.parametrize("read", [lambda registry, payload: RegistryAvroSerde(V1, 1, registry).decode(payload),
                                  lambda registry, payload: RegisteredReader(registry).decode(payload)],
                         ids=["serde", "any-schema reader"])
def test_an_id_beyond_any_registry_is_unknown_without_asking(registry, read):
    """Ids are Java ints in every registry's API: 00 FF FF FF FF ... is garbage, not a question for the registry
    (whose answer to /schemas/ids/4294967295 would be a refusal of its own, failing the job)."""
    with pytest.raises(UnknownSchemaIdError) as err:
        read(registry, b"\x00\xff\xff\xff\xff\x02a" + b"\x00" * 8)
    assert err.value.reason == RejectCode.UNKNOWN_SCHEMA_ID and registry.calls == 0
