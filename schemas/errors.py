"""Typed errors of the Avro serde.

Every error derives from :class:`streamscore.foundation.errors.SerdeError` (through
:class:`PayloadError`) and carries a short machine-friendly ``reason`` code that
a dead-letter record can store next to its human-readable message.
"""

from __future__ import annotations

from streamscore.foundation.errors import SerdeError


class PayloadError(SerdeError):
    """Base of every serde error; ``reason`` is a stable, machine-friendly code."""

    reason: str = "serde_error"


class EmptyPayloadError(PayloadError):
    """The payload is empty (or ``None``, e.g. a Kafka tombstone)."""

    reason = "empty"


class BadMarkerError(PayloadError):
    """The payload does not start with the single-object marker ``C3 01``."""

    reason = "bad_marker"


class TruncatedPayloadError(PayloadError):
    """The header is shorter than 10 bytes, or the body ends before the record does."""

    reason = "truncated"


class TrailingBytesError(TruncatedPayloadError):
    """Bytes are left over after the record's body: the length does not add up."""

    reason = "trailing_bytes"


class MalformedBodyError(PayloadError):
    """The body is not a valid Avro encoding of the schema (bad UTF-8, enum index...)."""

    reason = "bad_body"


class UnknownFingerprintError(PayloadError):
    """The payload's schema fingerprint is not the expected one (or none we know)."""

    reason = "unknown_fingerprint"

    def __init__(self, fingerprint: bytes, expected: tuple[bytes, ...]) -> None:
        self.fingerprint = fingerprint
        self.expected = expected
        wanted = ", ".join(fp.hex() for fp in expected) or "none"
        super().__init__(f"payload has schema fingerprint {fingerprint.hex()}, expected {wanted}")


class RecordEncodeError(PayloadError):
    """A record does not fit the schema: missing/extra field or a wrong type."""

    reason = "encode_failed"

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class UnknownSchemaError(PayloadError):
    """``load_schema``/``serde_for`` was asked for a schema name that does not exist."""

    reason = "unknown_schema"
