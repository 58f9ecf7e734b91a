"""JSON input: one JSON object per Kafka message, checked against the model's Avro event schema.

The second input format of a bound model (``submit scoring --input-format json``): producers that
cannot write Avro send ``{"reading_id": "r-1", "ts": 1733300000000, ...}``. Each message must be
a JSON object whose fields have the schema's types (an enum as one of its symbols, a
timestamp-millis as epoch millis); a field the schema gives a default may be left out; fields the
schema does not name are ignored, as an Avro reader skips a writer's extra fields. Anything else
is a ``bad_json`` DECODE dead letter that keeps the message's bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from schemas.errors import BadJsonError, PayloadError
from schemas.serde import AvroSerde, byte_view


class JsonEvents:
    """Events of one Avro record schema, as JSON objects."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._checker = AvroSerde(schema)  # field and type checks
        fields = self._checker.schema["fields"]
        self._names = frozenset(f["name"] for f in fields)
        self._defaults = {f["name"]: f["default"] for f in fields if "default" in f}
        self.name = self._checker.name

    def decode(self, payload: bytes | bytearray | memoryview) -> dict[str, Any]:
        view = byte_view(payload, BadJsonError)
        try:
            value = json.loads(bytes(view))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadJsonError(f"{self.name}: not JSON: {exc}"[:300]) from exc
        except RecursionError as exc:  # e.g. thousands of nested arrays: deeper than any event
            raise BadJsonError(f"{self.name}: JSON nested too deeply to read") from exc
        if not isinstance(value, dict):
            raise BadJsonError(f"{self.name}: a JSON {type(value).__name__}, not an object")
        record = {**self._defaults, **{k: v for k, v in value.items() if k in self._names}}
        try:
            self._checker.check(record)
        except PayloadError as exc:
            raise BadJsonError(str(exc)) from exc
        return record

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """A record as the JSON message a producer sends (checked against the schema first)."""
        try:
            self._checker.check(record)
        except PayloadError as exc:
            raise BadJsonError(str(exc)) from exc
        try:
            return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:  # a lone surrogate (JSON's "\\ud800") is no UTF-8
            raise BadJsonError(f"{self.name}: a string is not valid Unicode text ({exc.reason})") from exc
