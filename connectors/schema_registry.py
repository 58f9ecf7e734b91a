"""A client of the Confluent Schema Registry REST API (Apicurio's ``/apis/ccompat/v7``, Confluent, Karapace,
Redpanda): register a subject's schema, look a schema up by id, check and set compatibility.

Plain ``urllib`` with HTTP basic auth and an optional CA bundle from the settings. Schemas by id are
cached for the life of the client: an id never changes its schema, so a registry outage only
affects ids this process has not seen yet. Each failure is one typed error with one line:

- :class:`RegistryUnavailable`: no answer (refused, timed out, 5xx); ``retriable``
- :class:`SchemaNotFound`: an unknown id, subject or version (404)
- :class:`IncompatibleSchema`: the subject's compatibility rule refused a new version (409)
- :class:`RegistryRefused`: any other refusal (bad schema 422, auth 401/403)
"""

from __future__ import annotations

import base64
import functools
import json
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from connectors.registry_http import RegistryHttp
from connectors.schema_memory import SchemaMemory
from streamscore.foundation.errors import (
    IncompatibleSchema,
    RegistryRefused,
    RegistryUnavailable,
    SchemaNotFound,
)
from streamscore.foundation.logs import get_logger
from streamscore.foundation.registry_settings import RegistrySettings

MISSING_ID_RETRY_S = 30.0  # an id the registry did not know is asked again after this (the JVM decoder's too)
_MISSING_KEPT = 10_000  # at most this many such ids remembered
SchemaType = Literal["AVRO", "JSON"]
Compatibility = Literal["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                        "FULL_TRANSITIVE", "NONE"]
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


__all__ = ["IncompatibleSchema", "RegisteredSchema", "RegistryRefused", "RegistryUnavailable", "SchemaNotFound",
           "SchemaRegistry", "schema_text", "subject_for"]


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a subject: its global id and the schema (parsed JSON)."""

    subject: str
    version: int
    id: int
    schema: Any
    schema_type: SchemaType = "AVRO"


def subject_for(topic: str) -> str:
    """The value subject of ``topic`` under the TopicNameStrategy (what every Kafka tool assumes)."""
    return f"{topic}-value"


def schema_text(schema: Any) -> str:
    """The schema as the registry stores it: compact JSON (a string passes through)."""
    return schema if isinstance(schema, str) else json.dumps(schema, separators=(",", ":"), sort_keys=False)


class SchemaRegistry:
    """One registry, as the settings name it."""

    def __init__(self, settings: RegistrySettings, timeout_s: float = 5.0):
        self.settings = settings
        self.url = settings.url.rstrip("/")
        self.timeout_s = timeout_s
        self._by_id: dict[int, Any] = {}
        self._missing: dict[int, tuple[float, str]] = {}  # id -> (ask again after, the registry's answer)
        self._lock = threading.Lock()
        headers = {"Accept": _CONTENT_TYPE, "Content-Type": _CONTENT_TYPE}
        if settings.username and settings.password:
            token = base64.b64encode(f"{settings.username}:{settings.password.reveal()}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        tls = ssl.create_default_context(cafile=str(settings.ca_file)) if settings.ca_file else None
        self.memory = SchemaMemory(settings.ids_file, self.url) if settings.ids_file else None
        self._http = RegistryHttp(self.url, headers, tls, timeout_s)

    def subjects(self) -> list[str]:
        return list(self._call("GET", "/subjects"))

    def register(self, subject: str, schema: Any, schema_type: SchemaType = "AVRO") -> int:
        """The id of ``schema`` under ``subject``, registering it as a new version if it is not one yet."""
        body = {"schema": schema_text(schema)}
        if schema_type != "AVRO":
            body["schemaType"] = schema_type
        schema_id = _field(self._call("POST", f"/subjects/{quote(subject, safe='')}/versions", body), "id", int)
        with self._lock:
            self._by_id.setdefault(schema_id, json.loads(body["schema"]))
        if self.memory and schema_type == "AVRO":
            self.memory.keep_id(subject, body["schema"], schema_id)
        return schema_id

    def schema(self, schema_id: int) -> Any:
        """The schema (parsed JSON) of a global id; cached for good once seen. A schema that is not Avro
        (Protobuf, JSON Schema) or not JSON comes back as ``{"schemaType": ...}``, which no Avro reader takes."""
        with self._lock:
            if schema_id in self._by_id:
                return self._by_id[schema_id]
            missing = self._missing.get(schema_id)
            if missing is not None and time.monotonic() < missing[0]:
                raise SchemaNotFound(missing[1])  # asked a moment ago: garbage ids cost no request a record
        try:
            found = _parsed(self._call("GET", f"/schemas/ids/{int(schema_id)}"), f"schema id {schema_id}")
        except SchemaNotFound as exc:
            with self._lock:
                if len(self._missing) >= _MISSING_KEPT:
                    self._missing.clear()
                self._missing[schema_id] = (time.monotonic() + MISSING_ID_RETRY_S, str(exc))
            raise
        except RegistryUnavailable:
            found = self.memory.schema_of(schema_id) if self.memory else None
            if found is None:
                raise
            get_logger(__name__).warning("schema_id_from_memory", registry=self.url, schema_id=schema_id,
                                         memory=str(self.memory.path))
        else:
            if self.memory and "schemaType" not in found:
                self.memory.keep_schema(schema_id, schema_text(found))
        with self._lock:
            self._by_id[schema_id] = found
        return found

    def version(self, subject: str, version: int | Literal["latest"] = "latest") -> RegisteredSchema:
        return self._registered(self._call("GET", f"/subjects/{quote(subject, safe='')}/versions/{version}"))

    def lookup(self, subject: str, schema: Any) -> RegisteredSchema:
        """The version of ``subject`` that ``schema`` is (SchemaNotFound: it is none of them)."""
        return self._registered(self._call("POST", f"/subjects/{quote(subject, safe='')}",
                                           {"schema": schema_text(schema)}))

    def versions(self, subject: str) -> list[int]:
        """The subject's versions; [] when the subject does not exist."""
        try:
            return [int(v) for v in self._call("GET", f"/subjects/{quote(subject, safe='')}/versions")]
        except SchemaNotFound:
            return []

    def is_compatible(self, subject: str, schema: Any) -> bool:
        got = self._call("POST", f"/compatibility/subjects/{quote(subject, safe='')}/versions/latest",
                         {"schema": schema_text(schema)})
        return bool(got.get("is_compatible"))

    def set_compatibility(self, subject: str, level: Compatibility) -> None:
        """Set the subject's own rule. Two clients creating it at once (a scoring job and its sidecar submitted
        together register the same scored subject): Apicurio answers the second 409, "a rule named
        COMPATIBILITY already exists". The rule exists then: done if it says ``level``, else the PUT is made
        once more, as an update."""
        path, body = f"/config/{quote(subject, safe='')}", {"compatibility": level}
        try:
            self._call("PUT", path, body)
        except IncompatibleSchema:
            if self.compatibility(subject) != level:
                self._call("PUT", path, body)

    def compatibility(self, subject: str) -> str | None:
        """The subject's own compatibility rule, or None when it has none (the registry's default applies)."""
        try:
            got = self._call("GET", f"/config/{quote(subject, safe='')}")
        except SchemaNotFound:
            return None
        return got.get("compatibilityLevel") or got.get("compatibility")

    def _registered(self, got: Any) -> RegisteredSchema:
        registered = RegisteredSchema(_field(got, "subject", str), _field(got, "version", int), _field(got, "id", int),
                                      _parsed(got, "the answer"), got.get("schemaType", "AVRO"))
        with self._lock:
            self._by_id.setdefault(registered.id, registered.schema)
        return registered

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        return self._http.call(method, path, body)


def _field(got: Any, key: str, kind: type) -> Any:
    try:
        return kind(got[key])
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryRefused(f"schema registry answered without a usable {key!r}: {str(got)[:200]}") from exc


def _parsed(got: Any, what: str) -> Any:
    """The ``schema`` of an answer as parsed JSON; a non-Avro or unparsable one as ``{"schemaType": ...}``."""
    kind = got.get("schemaType", "AVRO") if isinstance(got, dict) else "?"
    text = _field(got, "schema", str)
    if kind != "AVRO":
        return {"schemaType": kind}
    try:
        return json.loads(text)
    except ValueError:
        return {"schemaType": f"unparsable ({what})"}


#: topic role -> the streamscore schema its records carry (schemas/avro/)
ROLE_SCHEMAS = {"events": "event", "scored": "scored", "scored_shadow": "scored", "dead_letter": "dead_letter",
                "drift_alerts": "drift_alert", "control": "control", "labels": "label"}


def register_subject(registry: SchemaRegistry, subject: str, schema: Any) -> int:
    """The id of ``schema`` under ``subject``, registered if new; a subject this call creates gets the
    BACKWARD rule (a new version must read what was written before it), one that exists keeps its own."""
    existed = bool(registry.versions(subject))
    schema_id = registry.register(subject, schema)
    if not existed:
        registry.set_compatibility(subject, "BACKWARD")
    return schema_id


def register_topic_schemas(registry: SchemaRegistry, topics: dict[str, str]) -> dict[str, int]:
    """Register each topic's schema under its TopicNameStrategy subject (:func:`register_subject`);
    ``topics``: role -> topic name.
    Returns subject -> schema id. Registering the same schema again is a no-op."""
    from schemas.serde import schema_document

    ids = {}
    for role, topic in topics.items():
        subject = subject_for(topic)
        ids[subject] = register_subject(registry, subject, schema_document(ROLE_SCHEMAS[role]))
    return ids



def topic_writer(registry: SchemaRegistry, topic: str, schema: Any):
    """A serde writing ``schema``'s records to ``topic`` on the Confluent wire: the schema registered
    under ``<topic>-value`` (:func:`register_subject`), its records framed with that id."""
    from schemas.confluent import RegistryAvroSerde

    return RegistryAvroSerde.known(schema, register_subject(registry, subject_for(topic), schema), registry)


def topic_reader(registry: SchemaRegistry, name: str):
    """A decoder of streamscore's ``name`` records (``scored``, ``dead_letter``, ``control``, ...) on the
    Confluent wire, whatever registered id they were written with (each looked up once), and of those a
    topic still holds from before its move, single-object."""
    from schemas import load_schema, serde_for
    from schemas.confluent import BothFramings, RegistryAvroSerde

    return BothFramings(RegistryAvroSerde(load_schema(name), None, registry), serde_for(name))


@functools.lru_cache(maxsize=64)
def writer_of(settings: RegistrySettings, topic: str, name: str):
    """:func:`topic_writer` of streamscore's schema ``name`` on ``topic``, once per registry and topic: the
    schema is registered at the first write, and later writes need no registry (through an outage too).
    A registry that does not answer at the first write: the id this machine remembers (connectors.schema_memory)."""
    from schemas.serde import schema_document

    registry, document = SchemaRegistry(settings), schema_document(name)
    try:
        writer = topic_writer(registry, topic, document)
    except RegistryUnavailable as exc:
        writer = _remembered_writer(registry, subject_for(topic), document, exc)
    reader_of(settings, name).remember(writer.schema_id, document)  # reads what it wrote, offline too
    return writer


def _remembered_writer(registry: SchemaRegistry, subject: str, document: dict, exc: RegistryUnavailable):
    """A writer with the id this machine remembers for ``document`` under ``subject`` (the registry being
    away); none remembered: the registry's error, saying so."""
    from schemas.confluent import RegistryAvroSerde

    schema_id = registry.memory.id_of(subject, schema_text(document)) if registry.memory else None
    if schema_id is None:
        raise RegistryUnavailable(f"{exc}; and no id of {subject} is remembered here "
                                  f"({registry.settings.ids_file or 'no memory file'})") from exc
    get_logger(__name__).warning("schema_id_from_memory", registry=registry.url, subject=subject, schema_id=schema_id)
    return RegistryAvroSerde.known(document, schema_id, registry)


@functools.lru_cache(maxsize=64)
def reader_of(settings: RegistrySettings, name: str):
    """:func:`topic_reader` of ``name`` once per registry: each id is asked once, then read from memory."""
    return topic_reader(SchemaRegistry(settings), name)
