"""Avro schemas of every streamscore topic and the one serde that (de)serializes them.

Payloads use Avro single-object encoding; times are ``int`` epoch milliseconds.
Never imports pyflink or confluent_kafka.
"""

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
from schemas.serde import (
    SCHEMA_FILES,
    AvroSerde,
    Decoded,
    Framing,
    SingleObjectFraming,
    decode_any,
    load_schema,
    schema_fingerprint,
    serde_for,
)
from streamscore.foundation.errors import SerdeError

__all__ = [
    "SCHEMA_FILES",
    "AvroSerde",
    "BadMarkerError",
    "Decoded",
    "EmptyPayloadError",
    "Framing",
    "MalformedBodyError",
    "PayloadError",
    "RecordEncodeError",
    "SerdeError",
    "SingleObjectFraming",
    "TrailingBytesError",
    "TruncatedPayloadError",
    "UnknownFingerprintError",
    "UnknownSchemaError",
    "decode_any",
    "load_schema",
    "schema_fingerprint",
    "serde_for",
]
