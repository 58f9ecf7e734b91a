"""What harness traffic is made of and how it goes on the wire: events, their encoding, the malformed
payloads mixed in, and the decoders of the scored and dead-letter records that come back.

On the Confluent wire, as the scoring jobs read and write it (``jobs.job_wire``), for the demo
fraud model (the default) and the sensor model alike (:func:`confluent_traffic`): events encoded
with the id the registry gave their schema under ``<events>-value``; the scored and dead-letter
records decoded with their schemas' ids learnt before traffic starts, so the harness reads on
through a registry outage, as the job does.

The harness generates events for the demo models only: the fraud model's transactions
(``models.demo_data``) and the sensor model's readings (``models.sensor_demo``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from models.demo_data import generate_columns, iter_events
from schemas.malformed import CONFLUENT_MALFORMED_KINDS, MalformedPayload, confluent_malformed_variant
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import ConfigError
from streamscore.foundation.vocabulary import DeadLetterStage, RejectCode


class Decoder(Protocol):
    def decode(self, payload: bytes) -> dict: ...


@dataclass(frozen=True)
class EventSource:
    """What the events are: ``count`` of them from ``seed`` with ids ``id_prefix`` + n, ``drift`` injected
    where the generator supports it (the fraud events)."""

    count: int
    seed: int
    id_prefix: str
    drift: tuple = ()
    first: int = 0  # the first event's number (a stream drawn a chunk at a time)


@dataclass(frozen=True)
class TrafficWire:
    """How traffic's events are built and written, and its outputs read back."""

    events: Callable[[EventSource], Iterator[dict]]
    encode: Callable[[dict], bytes]
    malformed: Callable[[int, dict], MalformedPayload]  # the n-th malformed payload, made from a valid event
    scored: Decoder
    dead_letter: Decoder
    id_field: str = "event_id"
    time_field: str = "event_time"


def _fraud_events(source: EventSource) -> Iterator[dict]:
    columns = generate_columns(source.count, source.seed, source.drift)
    return iter_events(columns, source.seed, id_prefix=source.id_prefix)


def _sensor_readings(source: EventSource) -> Iterator[dict]:
    from models.sensor_demo import generate_readings

    if source.drift:
        raise ConfigError("drift injection is for the fraud events; the sensor readings take none")
    for reading in generate_readings(source.count, seed=source.seed, prefix=source.id_prefix, first=source.first):
        reading.pop("is_anomaly")
        yield reading


def _sensor_source(contract) -> Callable[[EventSource], Iterator[dict]]:
    return _within_contract(_sensor_readings, contract)


def _fraud_source(contract) -> Callable[[EventSource], Iterator[dict]]:
    return _fraud_events  # drawn within the training ranges (drift aside), a chunk at a time, ids numbered through


#: event schema -> the generator of its events, given the model's contract
GENERATORS: dict[str, Callable[..., Callable[[EventSource], Iterator[dict]]]] = {
    "io.streamscore.v1.Event": _fraud_source, "io.example.sensors.Reading": _sensor_source}


@dataclass(frozen=True)
class OutputTopics:
    """The topics a bound model's traffic goes to and comes back from."""

    events: str
    scored: str
    dead_letter: str


def confluent_traffic(settings: Settings, ref: str, topics: OutputTopics) -> TrafficWire:
    """The Confluent wire of the event schema ``ref``'s card binds (registered now under ``<events>-value``),
    with the output schemas registered (as the job registers them at submit) and remembered by id."""
    from connectors.schema_registry import SchemaRegistry, register_topic_schemas, subject_for, topic_writer
    from jobs.job_wire import PatientLookup
    from models.registry import load_model
    from schemas import load_schema
    from schemas.confluent import RegistryAvroSerde

    card = load_model(ref).card
    binding = card.binding
    if binding.name not in GENERATORS or binding.time_field is None:
        raise ConfigError(f"--model {ref}: the harness generates events for the demo models only (schemas "
                          f"{', '.join(GENERATORS)}); {ref} reads {binding.name}")
    registry = SchemaRegistry(settings.schema_registry)
    encode = topic_writer(registry, topics.events, dict(binding.schema)).encode
    ids = register_topic_schemas(registry, {"scored": topics.scored, "dead_letter": topics.dead_letter})
    lookup = PatientLookup(registry, wait_ms=300_000)  # a record written with an id not yet seen waits it out

    def decoder(name: str, topic: str) -> RegistryAvroSerde:
        return RegistryAvroSerde.known(load_schema(name), ids[subject_for(topic)], lookup)

    breaks = _contract_breaks(card.contract)

    def malformed(n: int, event: dict) -> MalformedPayload:
        kinds = (*CONFLUENT_MALFORMED_KINDS, *breaks)
        kind = kinds[n % len(kinds)]
        if kind in breaks:
            field, value, code = breaks[kind]
            return MalformedPayload(kind, encode({**event, field: value}), event[binding.id_field],
                                    DeadLetterStage.CONTRACT, f"contract: {field}", code)
        return confluent_malformed_variant(kind, encode(event))

    return TrafficWire(GENERATORS[binding.name](card.contract), encode, malformed,
                       decoder("scored", topics.scored), decoder("dead_letter", topics.dead_letter),
                       binding.id_field, binding.time_field)


CHUNK = 50_000  # events drawn at a time: a soak's millions are never held at once


def _within_contract(generate: Callable[[EventSource], Iterator[dict]], contract):
    """``generate`` drawn a chunk at a time (each chunk its own seed and its own range of ids), the
    events the contract refuses left out (a reading beyond the training sample's ranges, about one in
    100,000), so that every event the harness calls valid is scored."""

    def events(source: EventSource) -> Iterator[dict]:
        made = 0
        for chunk in itertools.count():
            drawn = list(generate(EventSource(CHUNK, source.seed * 7919 + chunk, source.id_prefix,
                                              first=chunk * CHUNK)))
            for row in contract.to_matrix(drawn).valid_rows[: source.count - made]:
                yield drawn[row]
                made += 1
            if made >= source.count:
                return

    return events


def _contract_breaks(contract) -> dict[str, tuple[str, Any, RejectCode]]:
    """Values the schema carries and the contract refuses: NaN in its first floating-point feature,
    the largest int in its first integer one (beyond any training range)."""
    breaks = {}
    for feature in contract.features:
        if feature.categories is None and feature.dtype == "double" and "nan" not in breaks:
            breaks["nan"] = (feature.field, math.nan, RejectCode.NOT_FINITE)
        if feature.categories is None and feature.dtype == "int" and "out_of_range" not in breaks:
            breaks["out_of_range"] = (feature.field, 2**31 - 1, RejectCode.OUT_OF_RANGE)
    return breaks
