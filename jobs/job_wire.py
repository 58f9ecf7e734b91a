"""What a scoring job's topics carry on the wire, and the serdes its Python worker reads and writes them with.

Two wires:

- **Confluent** (``00 | schema id | Avro body``, schemas in a Schema Registry): for a model whose
  card binds an event schema (``models register --schema``). At submit the card's schema is
  registered under ``<events>-value`` (the registry's compatibility rule refuses one that does
  not fit what the topic holds) and the output schemas under their topics' subjects; the ids
  travel in the job's config, so the worker writes without asking the registry and reads the
  card's own id without asking it either. Other ids are looked up once each; while the registry
  does not answer, a batch with an unseen id waits (``wait_ms``, 5 minutes, then the task fails and
  Flink replays it from the last checkpoint): nothing is dead-lettered for a registry outage.
- **single-object** (``C3 01 | fingerprint | body``): the demo fraud model's ``io.streamscore.v1.Event``,
  as before the registry; readable for migration.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, get_args

from streamscore.foundation.errors import ConfigError, RegistryUnavailable
from streamscore.foundation.vocabulary import Framing, InputFormat


@dataclass(frozen=True)
class RegistryWire:
    """The job config's part about the Schema Registry; an empty ``url`` means the single-object wire
    (``framing`` single-object: the demo events as before the registry; a config from the settings names
    the registry and leaves the ids to submit, or to the job's start)."""

    url: str = ""  # the Confluent-compatible API, as the cluster reaches it
    username: str | None = None
    password_file: str | None = None  # read on the TaskManager, never carried in the config
    ca_file: str | None = None
    events_schema_id: int = 0  # the card's event schema under <events>-value
    scored_schema_id: int = 0
    dead_letter_schema_id: int = 0
    shadow_schema_id: int = 0
    control_schema_id: int = 0  # the lifecycle's control topic (read by the scoring job, written by the sidecar)
    alerts_schema_id: int = 0  # the drift sidecar's alerts
    labels_schema_id: int = 0  # the delayed labels the sidecar joins
    wait_ms: int = 300_000  # how long a batch waits for a registry that does not answer (< the transaction timeout)
    events_format: InputFormat = "avro"  # json: one JSON object a message, checked against the card's schema
    framing: Framing = "confluent"

    @property
    def confluent(self) -> bool:
        return bool(self.url)


class Decoder(Protocol):
    def decode(self, payload: bytes) -> dict: ...


class Encoder(Protocol):
    """Writes the job's records (and reads them back: the drift sidecar decodes ``scored`` with it)."""

    def encode_trusted(self, record: Mapping[str, Any]) -> bytes: ...

    def encode_columns_trusted(self, columns: Mapping[str, Any], n: int) -> list[bytes]: ...

    def decode(self, payload: bytes) -> dict: ...


@dataclass(frozen=True)
class JobWire:
    """The worker's serdes and where an event keeps its id and time (the card's binding)."""

    events: Decoder
    scored: Encoder
    dead_letter: Encoder
    shadow: Encoder
    id_field: str = "event_id"
    time_field: str | None = "event_time"
    bound: bool = False  # the card binds its own schema: its id and time fields are named for the scoring path


class PatientLookup:
    """A schema lookup that waits out a registry outage (bounded), instead of failing the batch at once."""

    def __init__(self, lookup, wait_ms: int, sleep: Callable[[float], None] = time.sleep):
        self._lookup = lookup
        self._wait_s = wait_ms / 1000
        self._sleep = sleep

    def schema(self, schema_id: int) -> Any:
        deadline, pause = time.monotonic() + self._wait_s, 0.2
        while True:
            try:
                return self._lookup.schema(schema_id)
            except RegistryUnavailable:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                self._sleep(min(pause, left))
                pause = min(pause * 2, 5.0)


def build_wire(wire: RegistryWire, card) -> JobWire:
    """The serdes for a job scoring with the model of ``card`` on ``wire``."""
    from schemas import serde_for

    if not wire.confluent:
        if card.event_schema is not None:
            raise ConfigError(f"model {card.ref} binds the schema {card.event_schema.name}: its jobs read the "
                              f"Confluent wire, so their config needs the registry (submit fills it in)")
        single = serde_for("scored")
        return JobWire(serde_for("event"), single, serde_for("dead_letter"), single)
    from connectors.schema_registry import SchemaRegistry
    from schemas import load_schema
    from schemas.confluent import RegistryAvroSerde

    registry = SchemaRegistry(registry_settings(wire))
    lookup = PatientLookup(registry, wire.wait_ms)
    binding = card.binding
    schema = binding.schema
    if wire.events_format == "json":
        from schemas.json_events import JsonEvents

        events = JsonEvents(schema)
    else:
        events = RegistryAvroSerde.known(schema, wire.events_schema_id, lookup)  # the card's own schema

    def encoder(name: str, schema_id: int) -> RegistryAvroSerde:
        if schema_id:  # reads its own records without the registry
            return RegistryAvroSerde.known(load_schema(name), schema_id, lookup)
        return RegistryAvroSerde(load_schema(name), None, lookup)  # no id: encoding refuses

    return JobWire(events, encoder("scored", wire.scored_schema_id), encoder("dead_letter", wire.dead_letter_schema_id),
                   encoder("scored", wire.shadow_schema_id or wire.scored_schema_id),
                   id_field=binding.id_field, time_field=binding.time_field, bound=True)


def record_serde(wire: RegistryWire, name: str, schema_id: int):
    """A job's serde of streamscore's ``name`` records (``control``, ``drift_alert``, ``label``) on ``wire``:
    written on the Confluent wire with ``schema_id`` (0: not written by this job), read in either
    framing (a topic may hold records from before its move); single-object where the wire is."""
    from schemas import load_schema, serde_for

    if not wire.confluent:
        return serde_for(name)
    from connectors.schema_registry import SchemaRegistry
    from schemas.confluent import BothFramings, RegistryAvroSerde

    lookup = PatientLookup(SchemaRegistry(registry_settings(wire)), wire.wait_ms)
    schema = load_schema(name)
    serde = RegistryAvroSerde.known(schema, schema_id, lookup) if schema_id else RegistryAvroSerde(schema, None, lookup)
    return BothFramings(serde, serde_for(name))


def registry_settings(wire: RegistryWire):
    """The registry's settings on the TaskManager: the password read from its file there, as the
    settings read it on the client (one error line naming the file when it cannot be)."""
    from streamscore.foundation.registry_settings import RegistrySettings
    from streamscore.foundation.security import read_secret

    password = read_secret({"STREAMSCORE_SCHEMA_REGISTRY_PASSWORD_FILE": wire.password_file},
                           "SCHEMA_REGISTRY_PASSWORD") if wire.password_file else None
    if wire.ca_file and not Path(wire.ca_file).is_file():
        raise ConfigError(f"the registry's CA file {wire.ca_file} is not on this TaskManager")
    return RegistrySettings(url=wire.url, mode="external", username=wire.username, password=password,
                            ca_file=Path(wire.ca_file) if wire.ca_file else None)


def check_wire(wire: RegistryWire, transaction_timeout_ms: int) -> None:
    """A scoring job's Confluent wire needs its output ids, and must give up waiting for the registry well
    before the open Kafka transaction would time out."""
    check_reading_wire(wire, transaction_timeout_ms)
    if not wire.confluent:
        return
    events_id = wire.events_schema_id or wire.events_format == "json"  # JSON input: checked by the card's schema
    ids = (wire.events_schema_id, wire.scored_schema_id, wire.dead_letter_schema_id)
    if any(ids) and not (events_id and wire.scored_schema_id and wire.dead_letter_schema_id):
        raise ConfigError("registry: a Confluent wire needs the events, scored and dead-letter schema ids (or none: "
                          "the job registers them at its start)")


def check_reading_wire(wire: RegistryWire, transaction_timeout_ms: int) -> None:
    """What every job's wire needs (the drift sidecar's too): a known framing and input format, and a
    registry wait well within the open Kafka transaction's timeout."""
    if wire.framing not in get_args(Framing):
        raise ConfigError(f"registry.framing must be one of {', '.join(get_args(Framing))}, got {wire.framing!r}")
    if not wire.confluent:
        return
    if wire.framing != "confluent":
        raise ConfigError("registry: single-object framing takes no registry url")
    if wire.events_format not in get_args(InputFormat):
        raise ConfigError(f"input format must be one of {', '.join(get_args(InputFormat))}, got "
                          f"{wire.events_format!r}")
    if not 0 < wire.wait_ms <= transaction_timeout_ms // 2:
        raise ConfigError(f"registry.wait_ms {wire.wait_ms} must be > 0 and at most half the transaction "
                          f"timeout ({transaction_timeout_ms} ms)")
