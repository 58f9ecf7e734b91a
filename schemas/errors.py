"""Typed errors of the Avro serde.

Every error derives from :class:`streamscore.foundation.errors.SerdeError` (through
:class:`PayloadError`) and carries a short machine-friendly ``reason`` code that
a dead-letter record can store next to its human-readable message.
"""

from __future__ import annotations

from streamscore.foundation.errors import SerdeError
from streamscore.foundation.vocabulary import RejectCode


class PayloadError(SerdeError):
    """Base of every serde error; ``reason`` is a stable, machine-friendly code."""

    reason: str = RejectCode.UNDECODABLE


class EmptyPayloadError(PayloadError):
    """The payload is empty (or ``None``, e.g. a Kafka tombstone)."""

    reason = RejectCode.EMPTY


class BadMarkerError(PayloadError):
    """The payload does not start with the single-object marker ``C3 01``."""

    reason = RejectCode.BAD_MARKER


class TruncatedPayloadError(PayloadError):
    """The header is shorter than 10 bytes, or the body ends before the record does."""

    reason = RejectCode.TRUNCATED


class TrailingBytesError(TruncatedPayloadError):
    """Bytes are left over after the record's body: the length does not add up."""

    reason = RejectCode.TRAILING_BYTES


class MalformedBodyError(PayloadError):
    """The body is not a valid Avro encoding of the schema (bad UTF-8, enum index...)."""

    reason = RejectCode.BAD_BODY


class UnknownFingerprintError(PayloadError):
    """The payload's schema fingerprint is not the expected one (or none we know)."""

    reason = RejectCode.UNKNOWN_FINGERPRINT

    def __init__(self, fingerprint: bytes, expected: tuple[bytes, ...]) -> None:
        self.fingerprint = fingerprint
        self.expected = expected
        wanted = ", ".join(fp.hex() for fp in expected) or "none"
        super().__init__(f"payload has schema fingerprint {fingerprint.hex()}, expected {wanted}")


class RecordEncodeError(PayloadError):
    """A record does not fit the schema: missing/extra field or a wrong type."""

    reason = RejectCode.ENCODE_FAILED

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class UnknownSchemaError(PayloadError):
    """``load_schema``/``serde_for`` was asked for a schema name that does not exist."""

    reason = "unknown_schema"


class BadMagicByteError(PayloadError):
    """A Confluent-framed payload does not start with the magic byte ``00``."""

    reason = RejectCode.BAD_MAGIC


class UnknownSchemaIdError(PayloadError):
    """The payload names a schema id that the registry does not know."""

    reason = RejectCode.UNKNOWN_SCHEMA_ID

    def __init__(self, schema_id: int, message: str) -> None:
        self.schema_id = schema_id
        super().__init__(message)


class WrongSchemaError(PayloadError):
    """The payload's schema is registered, but it is not one the reader's schema can read
    (another record type: a record of another subject; or an incompatible change)."""

    reason = RejectCode.WRONG_SCHEMA


class BadJsonError(PayloadError):
    """A JSON-input message that is not JSON, not an object, or not a record of the event schema."""

    reason = RejectCode.BAD_JSON
