"""What a model card says about the events it scores: their Avro schema and which fields are the id and time.

A card without one scores the demo's ``io.streamscore.v1.Event`` (``schemas/avro/event.avsc``,
fields ``event_id`` and ``event_time``), as every card did before schemas came from a registry.
A card with one carries the event schema itself (so a job needs no registry to load its model)
and, when it was registered there, the Schema Registry subject and version it came from::

    "event_schema": {"subject": "readings-value", "version": 1, "id_field": "reading_id",
                     "time_field": "ts", "schema": {...the .avsc...}}

``time_field`` may be null: the Kafka record's timestamp is then the event time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamscore.foundation.errors import ModelError

_ID_TYPES = ("string",)
_TIME_TYPES = ("long",)


def _fail(where: str, problem: str) -> ModelError:
    return ModelError(f"model card field 'event_schema.{where}': {problem}")


def record_fields(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Field name -> Avro type of a record schema."""
    return {f["name"]: f["type"] for f in schema.get("fields", ()) if isinstance(f, Mapping) and "name" in f}


def full_name(schema: Mapping[str, Any]) -> str:
    """A record schema's full name (``namespace.name``)."""
    name = str(schema.get("name", ""))
    return name if "." in name or not schema.get("namespace") else f"{schema['namespace']}.{name}"


def _base_type(avro_type: Any) -> Any:
    return avro_type.get("type") if isinstance(avro_type, Mapping) else avro_type


def _is_epoch_millis(avro_type: Any) -> bool:
    """A long, plain or ``timestamp-millis`` (not micros, not a local timestamp)."""
    logical = avro_type.get("logicalType") if isinstance(avro_type, Mapping) else None
    return _base_type(avro_type) in _TIME_TYPES and logical in (None, "timestamp-millis")


@dataclass(frozen=True)
class EventBinding:
    """The event schema a card's contract reads, and its id and event-time fields."""

    schema: Mapping[str, Any] = field(repr=False)
    id_field: str = "event_id"
    time_field: str | None = "event_time"
    subject: str | None = None
    version: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.schema, Mapping) or self.schema.get("type") != "record" or not self.schema.get("name"):
            raise _fail("schema", "is not an Avro record schema")
        fields = record_fields(self.schema)
        for role, name in (("id_field", self.id_field), ("time_field", self.time_field)):
            if not isinstance(name, str) and not (role == "time_field" and name is None):
                raise _fail(role, f"{name!r} is not a field name")
        if _base_type(fields.get(self.id_field)) not in _ID_TYPES:
            raise _fail("id_field", f"{self.id_field!r} is not a string field of {full_name(self.schema)}")
        if self.time_field is not None and not _is_epoch_millis(fields.get(self.time_field)):
            raise _fail("time_field", f"{self.time_field!r} is not a long (epoch millis) field of "
                                      f"{full_name(self.schema)}")
        if (self.subject is None) != (self.version is None):
            raise _fail("subject", "a registry subject and its version go together")

    @property
    def name(self) -> str:
        return full_name(self.schema)

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "version": self.version, "id_field": self.id_field,
                "time_field": self.time_field, "schema": dict(self.schema)}

    @classmethod
    def from_dict(cls, raw: Any) -> EventBinding:
        if not isinstance(raw, Mapping):
            raise _fail("<root>", "is not an object")
        version = raw.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise _fail("version", f"{version!r} is not an integer")
        return cls(schema=raw.get("schema"), id_field=raw.get("id_field", "event_id"),
                   time_field=raw.get("time_field", "event_time"), subject=raw.get("subject"), version=version)
