"""The Confluent wire format: ``00 | 4-byte big-endian schema id | Avro binary body``.

What Kafka Connect, kcat, ksqlDB, Flink SQL's ``avro-confluent`` and confluent-kafka's
``AvroDeserializer`` read and write; the schema id is a Schema Registry's global id. A
:class:`RegistryAvroSerde` writes records of one schema with its registered id, and reads a
payload written with *any* registered schema that resolves to its own (Avro schema resolution:
a producer's backward-compatible v2, with a new optional field, reads as v1).

Pure: the registry is a :class:`SchemaLookup` (``connectors.schema_registry.SchemaRegistry`` is
one), whose ``SchemaNotFound`` becomes :class:`~schemas.errors.UnknownSchemaIdError` here; a
registry that does not answer (``RegistryUnavailable``) is not a fault of the payload and
propagates as it is.

>>> framing = ConfluentFraming()
>>> framing.frame(schema_id_key(7), b"body").hex()
'0000000007626f6479'
>>> key, body = framing.unframe(bytes.fromhex("0000000007626f6479"))
>>> int.from_bytes(key, "big"), bytes(body)
(7, b'body')
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from fastavro import parse_schema, schemaless_reader

from schemas.errors import (
    BadMagicByteError,
    MalformedBodyError,
    RecordEncodeError,
    TrailingBytesError,
    TruncatedPayloadError,
    UnknownSchemaIdError,
    WrongSchemaError,
)
from schemas.serde import AvroSerde, Record, byte_view, strip_logical_types
from streamscore.foundation.errors import SchemaNotFound

MAGIC = b"\x00"
HEADER_SIZE = 5


def schema_id_key(schema_id: int) -> bytes:
    """The 4 bytes of a schema id on the wire (big-endian, unsigned)."""
    return int(schema_id).to_bytes(4, "big")


class ConfluentFraming:
    """``00`` + 4-byte schema id + body (a :class:`~schemas.serde.Framing`)."""

    def frame(self, key: bytes, body: bytes) -> bytes:
        return MAGIC + key + body

    def unframe(self, payload: bytes | bytearray | memoryview) -> tuple[bytes, memoryview]:
        view = byte_view(payload, BadMagicByteError)
        if view[0] != 0:
            raise BadMagicByteError(f"payload starts with {bytes(view[:1]).hex()}, not the Confluent magic byte 00")
        if len(view) < HEADER_SIZE:
            raise TruncatedPayloadError(f"payload has {len(view)} bytes, shorter than the {HEADER_SIZE}-byte header")
        return bytes(view[1:HEADER_SIZE]), view[HEADER_SIZE:]


CONFLUENT = ConfluentFraming()


def schema_id_of(payload: bytes | bytearray | memoryview) -> int:
    """The schema id a Confluent-framed payload names (its framing checked)."""
    key, _ = CONFLUENT.unframe(payload)
    return int.from_bytes(key, "big")


class SchemaLookup(Protocol):
    """Schemas by registry id: the parsed JSON, or ``SchemaNotFound`` / ``RegistryUnavailable``."""

    def schema(self, schema_id: int) -> Any: ...


class RegistryAvroSerde:
    """Records of one (reader) schema on the Confluent wire.

    ``schema_id`` is the id the reader schema is registered under (what :meth:`encode` writes);
    :meth:`decode` takes any id whose writer schema resolves to the reader schema, and caches
    each writer schema it has read, so ids seen once keep decoding while the registry is down.
    """

    def __init__(self, schema: Mapping[str, Any], schema_id: int | None, lookup: SchemaLookup) -> None:
        self._writer = AvroSerde(schema)  # validation and the Avro body
        self._reader = parse_schema(strip_logical_types(self._writer.schema))
        self._key = schema_id_key(schema_id) if schema_id is not None else None
        self._lookup = lookup
        self._writers: dict[bytes, Any] = {}
        self._lock = threading.Lock()
        self.name: str = self._writer.name
        self.schema_id = schema_id
        self._writer_names = {self.name, *_aliases(schema, self.name)}

    @property
    def schema(self) -> dict[str, Any]:
        return self._writer.schema

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Validate ``record`` and frame it with the registered id."""
        return self._frame(self._writer.body(record))

    def encode_trusted(self, record: Mapping[str, Any]) -> bytes:
        """Frame a record streamscore built itself, without validation (the hot path)."""
        return self._frame(self._writer.body(record, trusted=True))

    def encode_columns_trusted(self, columns: Mapping[str, Any], n: int) -> list[bytes]:
        """The framed payloads of ``n`` records given as columns, unvalidated (the batch form of
        :meth:`encode_trusted`)."""
        return self._writer.column_encoder.encode(columns, n, prefix=self._frame(b""))

    def _frame(self, body: bytes) -> bytes:
        if self._key is None:
            raise RecordEncodeError(f"{self.name}: no registered schema id to write with")
        return MAGIC + self._key + body

    def decode(self, payload: bytes | bytearray | memoryview) -> Record:
        key, body = CONFLUENT.unframe(payload)
        writer = self._writers.get(key) or self._writer_schema(key)
        return _read(body, writer, self._reader, self.name)

    @classmethod
    def known(cls, schema: Mapping[str, Any], schema_id: int, lookup: SchemaLookup) -> RegistryAvroSerde:
        """A serde of ``schema`` registered as ``schema_id``, which reads its own records without asking
        the registry (through an outage too)."""
        serde = cls(schema, schema_id, lookup)
        serde.remember(schema_id, schema)
        return serde

    def remember(self, schema_id: int, schema: Mapping[str, Any]) -> None:
        """Take ``schema`` as the writer schema of ``schema_id`` without asking the registry."""
        self._check_and_cache(schema_id_key(schema_id), schema_id, schema)

    def _writer_schema(self, key: bytes) -> Any:
        schema_id = int.from_bytes(key, "big")
        return self._check_and_cache(key, schema_id, _fetch(self._lookup, schema_id))

    def _check_and_cache(self, key: bytes, schema_id: int, found: Any) -> Any:
        full = _record_name(found)
        if full is None:
            raise WrongSchemaError(f"schema id {schema_id} is not an Avro record schema, so not a {self.name}")
        if full not in self._writer_names:
            raise WrongSchemaError(f"schema id {schema_id} is {full}, not {self.name} (another subject's)")
        writer = _parse(found, schema_id)
        with self._lock:
            self._writers[key] = writer
        return writer


def _record_name(schema: Any) -> str | None:
    """The full name of a record schema, or of the record in a ``["null", record]`` union (what Flink's
    ``avro-confluent`` format registers for a nullable row); None for anything else."""
    if isinstance(schema, list):
        records = [branch for branch in schema if branch != "null"]
        return _record_name(records[0]) if len(records) == 1 and len(schema) == 2 else None
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        return None
    name = str(schema.get("name", ""))
    return name if "." in name or not schema.get("namespace") else f"{schema['namespace']}.{name}"


def _aliases(schema: Mapping[str, Any], full_name: str) -> list[str]:
    """The record's aliases as full names (an alias without a dot is in the record's namespace): a
    writer of such a name resolves to the record, as Avro's specification and the JVM decoder have it."""
    namespace = full_name.rpartition(".")[0]
    return [str(alias) if "." in str(alias) or not namespace else f"{namespace}.{alias}"
            for alias in schema.get("aliases") or ()]


MAX_SCHEMA_ID = 2**31 - 1  # ids are Java ints in every registry's API: a larger one was never given out


def _fetch(lookup: SchemaLookup, schema_id: int) -> Any:
    if schema_id > MAX_SCHEMA_ID:  # not asked: a registry would answer with an error of its own, not "unknown id"
        raise UnknownSchemaIdError(schema_id, f"schema id {schema_id} is beyond any registry's ids")
    try:
        return lookup.schema(schema_id)
    except SchemaNotFound as exc:
        raise UnknownSchemaIdError(schema_id, f"schema id {schema_id} is not in the registry") from exc


def _parse(schema: Any, schema_id: int) -> Any:
    """A registered schema parsed as a writer schema; one fastavro cannot use (references to other
    schemas, another schema language) is the payload's problem, not the job's."""
    try:
        return parse_schema(strip_logical_types(schema))
    except Exception as exc:  # fastavro's SchemaParseException, UnknownType, ...: all one answer here
        raise WrongSchemaError(f"schema id {schema_id} is not an Avro schema streamscore can read: "
                               f"{type(exc).__name__}: {exc}") from exc


def _read(body: memoryview, writer: Any, reader: Any, name: str) -> Record:
    """One record from an unframed body; every failure one typed payload error, the body read exactly."""
    stream = io.BytesIO(body)
    try:
        record = schemaless_reader(stream, writer, reader)
    except Exception as exc:  # every body error becomes one typed payload error
        raise _body_error(exc, name, stream.tell() >= len(body)) from exc
    left = len(body) - stream.tell()
    if left:
        raise TrailingBytesError(f"{name}: {left} trailing byte(s) after the record")
    return record


def _body_error(exc: Exception, name: str, ran_out: bool) -> Exception:
    if type(exc).__name__ == "SchemaResolutionError":
        return WrongSchemaError(f"{name}: the writer's schema does not resolve to the reader's: {exc}")
    if isinstance(exc, EOFError) or (isinstance(exc, IndexError) and ran_out):
        return TruncatedPayloadError(f"{name}: body ends before the record does ({str(exc) or 'end of data'})")
    return MalformedBodyError(f"{name}: body is not valid Avro: {type(exc).__name__}: {exc}")


class RegisteredReader:
    """Reads a Confluent-framed payload of any registered record schema with its writer's schema
    (what ``streamscore consume`` shows of any topic); writer schemas cached by id."""

    def __init__(self, lookup: SchemaLookup) -> None:
        self._lookup = lookup
        self._parsed: dict[int, tuple[str, Any]] = {}

    def decode(self, payload: bytes | bytearray | memoryview) -> tuple[str, Record]:
        """(the writer schema's full name, the record)."""
        key, body = CONFLUENT.unframe(payload)
        schema_id = int.from_bytes(key, "big")
        if schema_id not in self._parsed:
            found = _fetch(self._lookup, schema_id)
            self._parsed[schema_id] = (_record_name(found) or "?", _parse(found, schema_id))
        name, writer = self._parsed[schema_id]
        return name, _read(body, writer, None, name)


class BothFramings:
    """Records of one schema on a topic that moved from single-object to the Confluent wire: written on
    the Confluent wire, read in either framing (the first byte tells which: ``00``, or single-object's
    ``C3``), so records written before the move stay readable."""

    def __init__(self, confluent: RegistryAvroSerde, single_object: AvroSerde) -> None:
        self._confluent, self._single = confluent, single_object
        self.name = confluent.name

    def encode(self, record: Mapping[str, Any]) -> bytes:
        return self._confluent.encode(record)

    def encode_trusted(self, record: Mapping[str, Any]) -> bytes:
        return self._confluent.encode_trusted(record)

    def decode(self, payload: bytes | bytearray | memoryview) -> Record:
        if bytes(byte_view(payload, BadMagicByteError)[:1]) == MAGIC:  # None (a tombstone), empty: a SerdeError
            return self._confluent.decode(payload)
        return self._single.decode(payload)

    def remember(self, schema_id: int, schema: Mapping[str, Any]) -> None:
        """Read ``schema_id`` as ``schema`` without asking the registry (see :meth:`RegistryAvroSerde.remember`)."""
        self._confluent.remember(schema_id, schema)


__all__ = ["CONFLUENT", "BothFramings", "ConfluentFraming", "RegisteredReader", "RegistryAvroSerde", "SchemaLookup",
           "schema_id_key", "schema_id_of"]
