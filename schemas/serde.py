"""The one place that encodes and decodes topic payloads.

Wire format: the Avro specification's *single-object encoding* --

    C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of the schema's
          | Parsing Canonical Form | Avro binary body

Times are plain ``int`` epoch milliseconds on both sides: ``encode`` accepts
``int`` millis (a timezone-aware ``datetime`` also works) for
``timestamp-millis`` fields, and ``decode`` always returns ``int`` millis, because
the body is read with a copy of the schema whose logical-type annotations are
removed (the canonical form, hence the fingerprint, is unaffected).

The framing is a separate object (:class:`SingleObjectFraming`); the Confluent
wire format (``00 | 4-byte schema id | body``, ids from a Schema Registry) is
:mod:`schemas.confluent`, next to it, with the same Avro bodies.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterable, Mapping
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

from schemas.errors import (
    BadMarkerError,
    EmptyPayloadError,
    MalformedBodyError,
    PayloadError,
    RecordEncodeError,
    TrailingBytesError,
    TruncatedPayloadError,
    UnknownFingerprintError,
    UnknownSchemaError,
)

SCHEMA_DIR = Path(__file__).resolve().parent / "avro"

#: Schema name -> file under ``schemas/avro``; one schema per topic family.
SCHEMA_FILES: dict[str, str] = {
    "event": "event.avsc",
    "scored": "scored.avsc",
    "dead_letter": "dead_letter.avsc",
    "drift_alert": "drift_alert.avsc",
    "control": "control.avsc",
    "label": "label.avsc",
}

Record = dict[str, Any]


class Framing(Protocol):
    """How a schema key and an Avro body are put on (and taken off) the wire."""

    def frame(self, key: bytes, body: bytes) -> bytes:
        """Return the wire payload for ``body`` written with the schema ``key``."""
        ...

    def unframe(self, payload: bytes | bytearray | memoryview) -> tuple[bytes, memoryview]:
        """Split a wire payload into (schema key, body); raise a PayloadError if malformed."""
        ...


def byte_view(payload: bytes | bytearray | memoryview | None, not_bytes: type[PayloadError]) -> memoryview:
    """A non-empty payload as unsigned bytes; None or empty is EmptyPayloadError, anything else ``not_bytes``."""
    if payload is None:
        raise EmptyPayloadError("payload is None (a tombstone?)")
    try:
        view = memoryview(payload).cast("B")
    except (TypeError, ValueError) as exc:
        raise not_bytes(f"payload must be bytes-like, got {type(payload).__name__}") from exc
    if not len(view):
        raise EmptyPayloadError("payload is empty")
    return view


class SingleObjectFraming:
    """Avro single-object encoding: ``C3 01`` + 8-byte fingerprint + body."""

    MARKER = b"\xc3\x01"
    HEADER_SIZE = 10

    def frame(self, key: bytes, body: bytes) -> bytes:
        return self.MARKER + key + body

    def unframe(self, payload: bytes | bytearray | memoryview) -> tuple[bytes, memoryview]:
        view = byte_view(payload, BadMarkerError)
        size = len(view)
        head = bytes(view[:2])
        if head != self.MARKER[: len(head)]:
            raise BadMarkerError(f"payload starts with {head.hex()}, not the single-object marker c301")
        if size < self.HEADER_SIZE:
            raise TruncatedPayloadError(
                f"payload has {size} bytes, shorter than the {self.HEADER_SIZE}-byte header"
            )
        return bytes(view[2 : self.HEADER_SIZE]), view[self.HEADER_SIZE :]


SINGLE_OBJECT = SingleObjectFraming()


def schema_fingerprint(schema: Mapping[str, Any]) -> bytes:
    """Return the 8-byte CRC-64-AVRO fingerprint of ``schema``'s Parsing Canonical Form.

    The bytes are in the order the single-object encoding puts on the wire
    (little-endian), as fastavro returns them.
    """
    canonical = to_parsing_canonical_form(schema)
    return bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))


def strip_logical_types(node: Any) -> Any:
    """Copy of a schema without ``logicalType`` annotations and fastavro's private keys."""
    if isinstance(node, dict):
        return {
            key: strip_logical_types(value)
            for key, value in node.items()
            if key != "logicalType" and not key.startswith("__")
        }
    if isinstance(node, list):
        return [strip_logical_types(item) for item in node]
    return node


class AvroSerde:
    """Encode and decode records of one schema, framed as single objects.

    Build it from a schema parsed by :func:`load_schema` (or ``fastavro.parse_schema``).
    Encoding is strict: a missing field without a default, an unknown field or a
    value of the wrong type raises :class:`RecordEncodeError`. Decoding raises only
    :class:`~schemas.errors.PayloadError` subclasses (all ``SerdeError``).
    """

    def __init__(self, schema: Mapping[str, Any], framing: Framing = SINGLE_OBJECT) -> None:
        self._schema = parse_schema(dict(schema))
        self._reader_schema = parse_schema(strip_logical_types(self._schema))
        self._fingerprint = schema_fingerprint(self._schema)
        self._framing = framing
        self.name: str = self._schema["name"]
        fields = self._schema["fields"]
        self._field_names = frozenset(f["name"] for f in fields)
        self._required = tuple(f["name"] for f in fields if "default" not in f)

    @property
    def fingerprint(self) -> bytes:
        """8-byte CRC-64-AVRO fingerprint (little-endian) carried in every payload."""
        return self._fingerprint

    @property
    def schema(self) -> dict[str, Any]:
        """The parsed writer schema (do not mutate)."""
        return self._schema

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Validate ``record`` against the schema and return the framed payload."""
        return self._framing.frame(self._fingerprint, self.body(record))

    def encode_trusted(self, record: Mapping[str, Any]) -> bytes:
        """Encode a record built by streamscore itself, skipping validation (the hot path).

        Only for records whose fields and types the caller guarantees; a bad one raises
        :class:`RecordEncodeError` at best and may encode garbage at worst.
        """
        return self._framing.frame(self._fingerprint, self.body(record, trusted=True))

    def check(self, record: Mapping[str, Any]) -> None:
        """Raise :class:`RecordEncodeError` unless ``record`` has every field of the schema, no other, and
        the schema's types."""
        self._check_fields(record)
        self._check_types(record)

    def encode_columns_trusted(self, columns: Mapping[str, Any], n: int) -> list[bytes]:
        """The framed payloads of ``n`` records given as columns (``schemas.column_encoder``), unvalidated:
        the batch form of :meth:`encode_trusted`, byte for byte."""
        return self.column_encoder.encode(columns, n, prefix=self._framing.frame(self._fingerprint, b""))

    @functools.cached_property
    def column_encoder(self):
        from schemas.column_encoder import ColumnEncoder

        return ColumnEncoder(self._schema)

    def body(self, record: Mapping[str, Any], trusted: bool = False) -> bytes:
        """The unframed Avro body of ``record`` (validated first unless ``trusted``)."""
        if not trusted:
            self._check_fields(record)
            self._check_types(record)
        buffer = io.BytesIO()
        try:
            schemaless_writer(buffer, self._schema, record)
        except Exception as exc:  # validate() should have caught it; never leak raw errors
            raise RecordEncodeError(f"{self.name}: cannot encode record: {exc}") from exc
        return buffer.getvalue()

    def decode(self, payload: bytes | bytearray | memoryview) -> Record:
        """Decode one framed payload written with this schema."""
        key, body = self._framing.unframe(payload)
        if key != self._fingerprint:
            raise UnknownFingerprintError(key, (self._fingerprint,))
        return self.decode_body(body)

    def decode_many(self, payloads: Iterable[bytes | bytearray | memoryview]) -> list[Record]:
        """Decode a batch of payloads; the first bad one raises."""
        decode = self.decode
        return [decode(payload) for payload in payloads]

    def decode_body(self, body: bytes | memoryview) -> Record:
        """Decode an unframed Avro body; it must be consumed exactly."""
        stream = io.BytesIO(body)
        try:
            record = schemaless_reader(stream, self._reader_schema, None)
        except Exception as exc:
            ran_out = isinstance(exc, IndexError) and stream.tell() >= len(body)
            if isinstance(exc, EOFError) or ran_out:  # fastavro: varint cut -> IndexError
                raise TruncatedPayloadError(
                    f"{self.name}: body ends before the record does ({exc or 'end of data'})"
                ) from exc
            raise MalformedBodyError(
                f"{self.name}: body is not valid Avro: {type(exc).__name__}: {exc}"
            ) from exc
        left = len(body) - stream.tell()
        if left:
            raise TrailingBytesError(f"{self.name}: {left} trailing byte(s) after the record")
        return record

    def _check_fields(self, record: Mapping[str, Any]) -> None:
        if not isinstance(record, Mapping):
            raise RecordEncodeError(f"{self.name}: record must be a mapping, got {type(record).__name__}")
        missing = [name for name in self._required if name not in record]
        if missing:
            raise RecordEncodeError(f"{self.name}: missing field(s) {', '.join(missing)}", field=missing[0])
        extra = sorted(str(key) for key in record if key not in self._field_names)
        if extra:
            raise RecordEncodeError(f"{self.name}: unknown field(s) {', '.join(extra)}", field=extra[0])

    def _check_types(self, record: Mapping[str, Any]) -> None:
        try:
            validate(record, self._schema, raise_errors=True)
        except ValidationError as exc:
            data = exc.errors[0] if exc.errors else None
            field = data.field.removeprefix(self.name + ".") if data else None
            expected = _describe_type(data.schema) if data else "?"
            got = repr(data.datum)[:80] if data else "?"
            raise RecordEncodeError(
                f"{self.name}: field {field!r} expects {expected}, "
                f"got {type(data.datum).__name__ if data else '?'} {got}",
                field=field,
            ) from exc
        except (ValueError, TypeError, OverflowError) as exc:  # fastavro's own conversions (a date string: 2024-02-30)
            raise RecordEncodeError(f"{self.name}: {type(exc).__name__}: {exc}"[:300]) from exc


def _describe_type(schema: Any) -> str:
    """Short human-readable name of an Avro type for error messages."""
    if isinstance(schema, dict):
        name = schema.get("name", schema.get("type"))
        if schema.get("type") == "enum":
            return f"enum {name} {list(schema['symbols'])}"
        return str(schema.get("logicalType", name))
    if isinstance(schema, list):
        return " | ".join(_describe_type(branch) for branch in schema)
    return str(schema)


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed schema ``name`` (one of :data:`SCHEMA_FILES`); read once."""
    try:
        filename = SCHEMA_FILES[name]
    except KeyError as exc:
        known = ", ".join(SCHEMA_FILES)
        raise UnknownSchemaError(f"unknown schema {name!r}; known: {known}") from exc
    with open(SCHEMA_DIR / filename, encoding="utf-8") as handle:
        return parse_schema(json.load(handle))


def schema_document(name: str) -> dict[str, Any]:
    """The schema ``name`` as its .avsc file writes it (what a Schema Registry is given: registering the
    same document twice under a subject is one version, where a parsed form would be another)."""
    if name not in SCHEMA_FILES:
        raise UnknownSchemaError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_FILES)}")
    return json.loads((SCHEMA_DIR / SCHEMA_FILES[name]).read_text(encoding="utf-8"))


@cache
def serde_for(name: str) -> AvroSerde:
    """Return the shared :class:`AvroSerde` of schema ``name``."""
    return AvroSerde(load_schema(name))


class Decoded(NamedTuple):
    """Result of :func:`decode_any`: which schema matched, and the record."""

    schema_name: str
    record: Record


@lru_cache(maxsize=1)
def _serdes_by_fingerprint() -> dict[bytes, tuple[str, AvroSerde]]:
    return {serde_for(name).fingerprint: (name, serde_for(name)) for name in SCHEMA_FILES}


def decode_any(payload: bytes | bytearray | memoryview) -> Decoded:
    """Decode a payload of any known schema, picked by its fingerprint."""
    key, body = SINGLE_OBJECT.unframe(payload)
    known = _serdes_by_fingerprint()
    try:
        name, serde = known[key]
    except KeyError as exc:
        raise UnknownFingerprintError(key, tuple(known)) from exc
    return Decoded(name, serde.decode_body(body))
