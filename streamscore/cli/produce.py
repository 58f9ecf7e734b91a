"""``streamscore produce``: write demo or JSON-lines events (and demo labels) transactionally."""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import get_args

from schemas.json_lines import read_json_lines
from streamscore.cli.arg_types import finite_float
from streamscore.cli.cli_metrics import DeliveryCounter, metrics_port, serve_metrics
from streamscore.cli.produce_labels import DemoLabels, demo_label_plan, produce_label_file
from streamscore.cli.topics import resolve_topic
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import InputError, StreamscoreError
from streamscore.foundation.vocabulary import InputFormat


def register(sub) -> None:
    produce = sub.add_parser("produce", help="write events transactionally (demo generator or JSON lines)")
    produce.add_argument("--count", type=int, default=10_000, help="events to generate (default 10000)")
    produce.add_argument("--rate", type=finite_float, default=0.0, help="events/s; 0 = as fast as possible")
    produce.add_argument("--max-rate", type=finite_float, default=None, metavar="EVENTS_PER_S",
                         help="a ceiling on events/s (token bucket, bursts of at most 0.1 s of events) that holds "
                              "even while --rate catches up after a stall; --rate may not exceed it")
    produce.add_argument("--max-message-bytes", type=int, default=None, metavar="BYTES",
                         help="refuse (count, do not send) events whose encoded key + value exceed BYTES; "
                              "also caps the producer's message.max.bytes")
    produce.add_argument("--seed", type=int, default=7)
    produce.add_argument("--id-prefix", default=None, help="event id prefix (default: a fresh run id)")
    produce.add_argument("--input", type=Path, default=None, help="a JSON-lines file of events instead")
    produce.add_argument("--transaction-size", type=int, default=1000, help="events per transaction")
    produce.add_argument("--topic", default=None, help="default: the events topic")
    produce.add_argument("--model", default=None, metavar="NAME:VERSION",
                         help="events for this model: validated against the schema its card binds and written "
                              "in the Confluent wire format (id registered under TOPIC-value); without --input, "
                              "the sensor model's generated readings")
    produce.add_argument("--format", default="avro", choices=get_args(InputFormat), dest="wire_format",
                         help="with --model: avro (Confluent wire, the default) or json (one JSON object a message, "
                              "for a job submitted with --input-format json)")
    produce.add_argument("--drift", action="append", default=[], metavar="FEATURE:KIND=AMOUNT",
                         help="inject drift in demo events, e.g. device_trust_score:shift=0.5 (reference std devs), "
                              "amount:scale=2, country:category_mix=0.3@NG; repeatable")
    produce.add_argument("--drift-after", type=int, default=0, help="events before the drift starts")
    produce.add_argument("--labels", action="store_true",
                         help="demo events: also write their ground truth to the labels topic, each label once its "
                              "label time (event time + --label-delay-ms) has come, while the events are sent")
    produce.add_argument("--labels-topic", default=None, help="with --labels: where they go (default: the labels "
                                                              "topic)")
    produce.add_argument("--labels-input", type=Path, default=None, metavar="FILE",
                         help="write ground truth from a JSON-lines file to the labels topic (your own model's: "
                              'one {"event_id", "label": 0|1, "event_time"} object a line), no events')
    produce.add_argument("--label-delay-ms", type=int, default=5000, help="label time = event time + this")
    produce.add_argument("--label-flip", type=finite_float, default=0.0, metavar="RATE",
                         help="concept drift: flip this fraction of labels from --drift-after on")
    produce.add_argument("--quiet", action="store_true")
    produce.add_argument("--metrics-port", type=metrics_port, default=None, metavar="PORT",
                         help="serve Prometheus metrics on 127.0.0.1:PORT while producing")
    produce.set_defaults(handler=lambda args, settings: produce_from(settings, args))


def produce_from(settings: Settings, args: argparse.Namespace) -> int:
    if args.count <= 0 or args.transaction_size <= 0 or args.rate < 0:
        raise InputError("--count and --transaction-size must be > 0 and --rate >= 0")
    _check_bounds(args)
    if args.labels_topic is not None and not args.labels:
        raise InputError("--labels-topic goes with --labels (with --labels-input, name the topic with --topic)")
    if args.drift and args.input is not None:
        raise InputError("--drift changes the generated demo events, not events of --input")
    if args.labels_input is not None:
        return produce_label_file(settings, args, _require_topic)
    topic = resolve_topic(settings, args.topic or "events")
    if args.labels and args.input is not None:
        raise InputError("--labels needs demo events (the generator knows their true class), not --input")
    if args.wire_format != "avro" and not args.model:
        raise InputError(f"--format {args.wire_format} is for a model's own events: give --model NAME:VERSION")
    if args.model and (args.labels or args.drift):
        raise InputError("--labels and --drift are for the demo fraud events; with --model, give your own events "
                         "with --input FILE")
    drift = [parse_drift(spec, args.drift_after) for spec in args.drift]
    if args.input is not None:
        events: Iterable[dict] = read_json_lines(args.input)  # bad files fail before Kafka is contacted
    elif args.model:
        events = _generated_for(args.model, args.count, args.seed, args.id_prefix)
    else:
        prefix = args.id_prefix or f"ev-{int(time.time())}-"
        events = live_demo_events(args.count, args.seed, prefix, drift)
    labels = _demo_labels(settings, args, drift) if args.labels else None  # bad label flags fail before any event
    _require_topic(settings, topic)  # after reading the input: a bad file is reported without Kafka
    with serve_metrics(getattr(args, "metrics_port", None)) as metrics, labels or contextlib.nullcontext():
        limits = ProduceLimits(args.rate, args.transaction_size, args.max_rate, args.max_message_bytes,
                               check_all_first=args.input is not None)
        stats = produce_events(settings, topic, labels.follow(events) if labels else events, limits,
                               progress=not args.quiet, metrics=metrics, on_commit=labels.committed if labels else None,
                               wire=model_wire(settings, args.model, topic, args.wire_format) if args.model else None)
        print(f"produced {stats['produced']} events to {topic} in {stats['seconds']:.1f}s "
              f"({stats['rate']:.0f} events/s, {stats['transactions']} transactions){_refused_note(args, stats)}")
    return 0


def _demo_labels(settings: Settings, args: argparse.Namespace, drift) -> DemoLabels:
    """The demo labels' writer, its flags and topic checked before any event is sent."""
    plan = demo_label_plan(args)
    topic = resolve_topic(settings, args.labels_topic or "labels")
    _require_topic(settings, topic)
    return DemoLabels(settings, plan, args.count, drift, topic, quiet=args.quiet)


def _generated_for(ref: str, count: int, seed: int, prefix: str | None) -> list[dict]:
    """Generated events of a demo model's schema (the sensor model's readings)."""
    from models.sensor_demo import generate_readings, live_start_ms

    if not ref.startswith("sensor:"):
        raise InputError(f"--model {ref}: the generator makes events for the sensor model only; "
                         f"give your own with --input FILE")
    readings = generate_readings(count, seed, prefix or f"rd-{int(time.time())}-", start_ms=live_start_ms(count))
    return [{k: v for k, v in r.items() if k != "is_anomaly"} for r in readings]


def _check_bounds(args: argparse.Namespace) -> None:
    if args.max_rate is not None and args.max_rate <= 0:
        raise InputError(f"--max-rate must be > 0 events/s, got {args.max_rate:g}")
    if args.max_rate is not None and args.rate > args.max_rate:
        raise InputError(f"--rate {args.rate:g} is above --max-rate {args.max_rate:g}: "
                         f"lower --rate or raise the ceiling")
    if args.max_message_bytes is not None and args.max_message_bytes <= 0:
        raise InputError(f"--max-message-bytes must be > 0, got {args.max_message_bytes}")


def _refused_note(args: argparse.Namespace, stats: dict) -> str:
    if args.max_message_bytes is None:
        return ""
    largest = f" (largest {stats['largest_refused']} bytes)" if stats["refused_oversized"] else ""
    return f"; refused {stats['refused_oversized']} larger than {args.max_message_bytes} bytes{largest}"


def _require_topic(settings: Settings, topic: str) -> None:
    from connectors.kafka_clients import existing_topics

    if topic not in existing_topics(settings):
        raise InputError(f"topic {topic!r} does not exist at {settings.kafka_bootstrap} "
                         f"(create it: streamscore topics create, or name an existing topic)")


def parse_drift(spec: str, start_after: int):
    """'FEATURE:KIND=AMOUNT[@CATEGORY]' -> DriftSpec, e.g. 'device_trust_score:shift=0.5'."""
    from models.demo_data import FEATURE_NAMES, DriftSpec

    try:
        feature, rest = spec.split(":", 1)
        kind, amount = rest.split("=", 1)
        amount, _, category = amount.partition("@")
        value = float(amount)
    except ValueError as exc:
        raise InputError(f"--drift {spec!r}: expected FEATURE:KIND=AMOUNT, e.g. device_trust_score:shift=0.5") from exc
    if feature not in FEATURE_NAMES:
        raise InputError(f"--drift {spec!r}: unknown feature {feature!r}")
    try:
        return DriftSpec(feature, kind, value, start_after=start_after, category=category or None)
    except (ValueError, StreamscoreError) as exc:
        raise InputError(f"--drift {spec!r}: {exc}") from exc


def live_demo_events(count: int, seed: int, prefix: str, drift=()) -> Iterator[dict]:
    """Demo events stamped with their send time: a live stream (and a Kafka timestamp) of now."""
    from models.demo_data import generate_events

    for event in generate_events(count, seed=seed, id_prefix=prefix, drift=drift):
        event["event_time"] = int(time.time() * 1000)
        yield event


@dataclass(frozen=True)
class EventWire:
    """How events go on a topic: the encoder (it validates), and the fields that are the key and the time."""

    encode: Callable[[dict], bytes]
    id_field: str = "event_id"
    time_field: str | None = "event_time"
    schema_id: int | None = None  # the registry's id of the schema (Confluent wire); None: JSON


def model_wire(settings: Settings, ref: str, topic: str, wire_format: InputFormat = "avro") -> EventWire:
    """The Confluent wire of the event schema ``ref``'s card binds, on ``topic`` (registered under
    TOPIC-value), or JSON objects checked against that schema."""
    from models.registry import load_model

    return binding_wire(settings, load_model(ref).card.binding, topic, wire_format)


def binding_wire(settings: Settings, binding, topic: str, wire_format: InputFormat = "avro") -> EventWire:
    """Events of ``binding``'s schema (``models.event_binding.EventBinding``) on ``topic``: Avro on the
    Confluent wire (the schema registered under TOPIC-value), or JSON objects checked against it."""
    if wire_format == "json":
        from schemas.json_events import JsonEvents

        return EventWire(JsonEvents(binding.schema).encode, binding.id_field, binding.time_field)
    from connectors.schema_registry import SchemaRegistry, topic_writer

    serde = topic_writer(SchemaRegistry(settings.schema_registry), topic, dict(binding.schema))
    return EventWire(serde.encode, binding.id_field, binding.time_field, serde.schema_id)


def demo_wire(settings: Settings, topic: str) -> EventWire:
    """The demo fraud events (``io.streamscore.v1.Event``) on ``topic``, on the Confluent wire."""
    from models.event_binding import EventBinding
    from schemas.serde import schema_document

    return binding_wire(settings, EventBinding(schema_document("event")), topic)


@dataclass(frozen=True)
class ProduceLimits:
    """How a produce run paces, bounds and checks itself."""

    rate: float = 0.0  # events/s; 0: as fast as possible
    transaction_size: int = 1000
    max_rate: float | None = None  # a ceiling that holds even while ``rate`` catches up after a stall
    max_message_bytes: int | None = None  # larger events are refused and counted
    check_all_first: bool = False  # encode (validate) every event before the first is sent: a file goes whole or not


def produce_events(settings: Settings, topic: str, events: Iterable[dict], limits: ProduceLimits = ProduceLimits(),
                   *, progress: bool = False, metrics=None, wire: EventWire | None = None, on_commit=None) -> dict:
    """Validate, encode and write ``events`` within ``limits`` (default: the demo fraud events' wire).

    ``metrics`` (a :class:`streamscore.cli.cli_metrics.CliMetrics`) counts delivered and failed records;
    ``on_commit`` is given each committed transaction's (key, value, timestamp) records."""
    from connectors.kafka_transactions import TransactionPlan, produce_transactionally
    from streamscore.cli.bounds import SizeBound, TokenBucket

    items = _encoded_events(events, topic, wire or demo_wire(settings, topic))
    bound = SizeBound(limits.max_message_bytes) if limits.max_message_bytes is not None else None
    plan = TransactionPlan(
        rate=limits.rate, transaction_size=limits.transaction_size,
        throttle=TokenBucket(limits.max_rate).acquire if limits.max_rate is not None else None,
        producer_config={"message.max.bytes": bound.producer_message_max_bytes()} if bound else None,
        on_commit=on_commit)
    if limits.check_all_first:
        items = iter(list(items))  # a bad event fails the run before any transaction commits
    items = bound.filter(items) if bound else items
    if metrics is None:
        return _with_refused(bound, produce_transactionally(
            settings, topic, items, replace(plan, progress=_progress if progress else None)))
    counter = DeliveryCounter(metrics, topic, echo=_progress if progress else None)
    try:
        return _with_refused(bound, produce_transactionally(
            settings, topic, counter.count_pulled(items), replace(plan, progress=counter)))
    except (StreamscoreError, KeyboardInterrupt) as exc:
        counter.failed(exc)
        raise


def _encoded_events(events: Iterable[dict], topic: str, wire: EventWire) -> Iterator[tuple[bytes, bytes, int | None]]:
    """(key, Avro payload, event time) per event; the encoder validates (a bad record raises naming the field).

    Each event is logged at debug level with its ids (never its payload), so one event can be
    followed by its correlation id from here to the scoring job's log and the output topics."""
    from streamscore.foundation.logs import get_logger

    log = get_logger("streamscore.produce", topic=topic)
    for event in events:
        payload = wire.encode(event)
        key = event[wire.id_field]
        log.debug("event_sent", event_id=key, correlation_id=event.get("correlation_id"))
        yield str(key).encode(), payload, _event_time(event, wire.time_field)


def _with_refused(bound, stats: dict) -> dict:
    """The producer's stats plus what the size bound refused (read after the records went through it)."""
    return stats | {"refused_oversized": bound.refused if bound else 0,
                    "largest_refused": bound.largest_refused if bound else 0}


def _event_time(event: dict, field: str | None) -> int | None:
    value = event.get(field) if field else None
    return value if isinstance(value, int) and value > 0 else None


def _progress(produced: int, elapsed: float) -> None:
    end = "\n" if produced < 0 else ""
    print(f"\rproduced {abs(produced)} events ({abs(produced) / max(elapsed, 1e-9):.0f}/s)", end=end,
          file=sys.stderr, flush=True)
