"""``streamscore retrain --model NAME [--follow]``: answer retraining triggers with a challenger in shadow.

Glue only (training is ``models.retrain``, registration ``models.register``, the shadow attach
``streamscore.model_commands``). For the model's RETRAIN_TRIGGER messages on ``control``:

1. **Pending triggers**: those whose ``message_id`` no registered version of the model answers
   (each challenger card lists the triggers it answers in ``training.retraining.answers``). One
   challenger answers every pending trigger at once; none pending -> nothing to train (and if
   the answering version was never attached in shadow, it is attached now).
2. **Recent labelled events**: the last ``--recent`` (10,000) records of ``events`` joined by event
   id with the labels found in the last ``3 x --recent`` records of ``labels`` (the trigger's
   window ids name sidecar windows, not offsets, so "recent" is counted from the end of the topic).
   Fewer than ``--min-labelled`` (3,000) labelled events -> one error line (``--follow``: a line,
   then it waits for more labels).
3. Train (``models.retrain``: parent = the version the trigger judged), register through
   ``models.register`` (the usual checks), publish SHADOW_ATTACHED. Never promotes.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from jobs.model_router import DEFAULT_ACTIVATION_DELAY_MS
from models.registry import ModelRegistry
from streamscore.config import Settings
from streamscore.errors import StreamscoreError

TRIGGER = "RETRAIN_TRIGGER"
DEFAULT_RECENT = 10_000


def add_parser(sub) -> None:
    retrain = sub.add_parser("retrain", help="answer retraining triggers on control: train a challenger on recent "
                                             "labelled events, register it, attach it in shadow (never promotes)")
    retrain.add_argument("--model", required=True, help="model NAME whose triggers to answer")
    retrain.add_argument("--follow", action="store_true", help="keep waiting for new triggers")
    retrain.add_argument("--min-labelled", type=int, default=3000, help="refuse with fewer labelled events")
    retrain.add_argument("--recent", type=int, default=DEFAULT_RECENT, help="events read from the end of events")
    retrain.add_argument("--registry-dir", default=None)
    retrain.add_argument("--activation-delay-ms", type=int, default=DEFAULT_ACTIVATION_DELAY_MS,
                         help="the shadow attach takes effect this long after publication")
    retrain.add_argument("--poll-s", type=float, default=2.0, help="--follow: seconds between reads of control")
    for role in ("control", "events", "labels"):
        retrain.add_argument(f"--{role}-topic", default=None, help=f"default: the settings' {role} topic")


def answered_by(registry: ModelRegistry, name: str) -> dict[str, str]:
    """trigger message id -> the registered version of ``name`` that answers it."""
    answers: dict[str, str] = {}
    for ref in registry.list_models():
        if ref.name == name:
            card = registry.load(ref.name, ref.version).card
            for message_id in card.training.retraining.get("answers", ()):
                answers[message_id] = ref.version
    return answers


def pending_triggers(messages: list[dict], name: str, answered: dict[str, str]) -> list[dict]:
    """The model's triggers in log order that no registered version answers."""
    return [m for m in messages if m.get("kind") == TRIGGER and m.get("model_name") == name
            and m["message_id"] not in answered]


def shadow_attached(messages: list[dict], name: str, version: str) -> bool:
    return any(m.get("kind") == "SHADOW_ATTACHED" and m.get("model_name") == name
               and m.get("model_version") == version for m in messages)


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.min_labelled < 100 or args.recent < args.min_labelled:
        raise StreamscoreError("retrain needs --min-labelled >= 100 and --recent >= --min-labelled")
    topics = {role: getattr(args, f"{role}_topic") or settings.topic(role).name
              for role in ("control", "events", "labels")}
    if not args.follow:
        return 0 if answer_once(args, settings, topics, quiet_if_none=False) else 1
    print(f"following {topics['control']} for {TRIGGER} of {args.model} (Ctrl-C stops)", flush=True)
    while True:
        answer_once(args, settings, topics, quiet_if_none=True)
        time.sleep(args.poll_s)


def answer_once(args: argparse.Namespace, settings: Settings, topics: dict[str, str], *,
                quiet_if_none: bool) -> bool:
    """Answer the pending triggers (if any); True when something was trained, attached or already done."""
    from models.retrain import TooFewLabelsError
    from streamscore.model_commands import _read_control

    registry = ModelRegistry(args.registry_dir)
    messages = _read_control(settings, topics["control"])
    answered = answered_by(registry, args.model)
    pending = pending_triggers(messages, args.model, answered)
    if not pending:
        return _nothing_pending(args, settings, topics, messages, answered, quiet_if_none)
    try:
        version = _train_and_register(args, settings, topics, registry, pending)
    except TooFewLabelsError as exc:
        if not args.follow:
            raise
        print(f"waiting for labels: {exc}", flush=True)
        return False
    _attach(args, settings, topics["control"], version)
    return True


def _nothing_pending(args, settings, topics, messages, answered, quiet_if_none: bool) -> bool:
    triggers = [m for m in messages if m.get("kind") == TRIGGER and m.get("model_name") == args.model]
    if not triggers:
        if quiet_if_none:
            return False
        raise StreamscoreError(f"no {TRIGGER} for model {args.model!r} on {topics['control']}: nothing to answer")
    version = answered[triggers[-1]["message_id"]]
    if shadow_attached(messages, args.model, version):
        if not quiet_if_none:
            print(f"trigger {triggers[-1]['message_id']} already answered by {args.model}:{version} (in shadow)")
        return True
    print(f"trigger {triggers[-1]['message_id']} answered by {args.model}:{version}, not yet in shadow: attaching")
    _attach(args, settings, topics["control"], version)
    return True


def _train_and_register(args, settings: Settings, topics: dict[str, str], registry: ModelRegistry,
                        pending: list[dict]) -> str:
    from models.register import register_model
    from models.retrain import RetrainRequest, retrain

    latest = pending[-1]
    parent = registry.load(args.model, latest["model_version"])
    events, labels, source = collect_labelled(settings, topics, args.recent)
    request = RetrainRequest(
        answers=tuple(m["message_id"] for m in pending),
        window_ids=tuple(w for m in pending for w in m.get("window_ids") or ()),
        source=source, min_labelled=args.min_labelled,
        taken_versions=tuple(r.version for r in registry.list_models() if r.name == args.model))
    result = retrain(parent, events, labels, request)
    with tempfile.TemporaryDirectory(prefix="streamscore-retrain-") as staging:
        onnx_path, card_path = Path(staging) / "model.onnx", Path(staging) / "model.json"
        onnx_path.write_bytes(result.onnx_bytes)
        card_path.write_text(result.card.to_json(), encoding="utf-8")
        model = register_model(onnx_path, card_path, args.registry_dir)
    reasons = "; ".join(r for m in pending for r in m.get("reasons") or ())
    print(f"answering {len(pending)} trigger(s) ({latest.get('tier')}: {reasons})")
    print(f"registered {model.card.ref} at {model.directory}")
    print(result.summary(), flush=True)
    return model.card.version


def _attach(args, settings: Settings, control_topic: str, version: str) -> None:
    from streamscore import model_commands

    model_commands.dispatch(argparse.Namespace(
        action="shadow-attach", ref=f"{args.model}:{version}", registry_dir=args.registry_dir,
        control_topic=control_topic, activation_delay_ms=args.activation_delay_ms, percent=None, onnx=None,
        card=None, training_sample=None), settings)


def collect_labelled(settings: Settings, topics: dict[str, str], recent: int) -> tuple[list[dict], list[int], dict]:
    """The last ``recent`` events that have a label (events in log order; labels joined by event id)."""
    from schemas import serde_for

    events = read_tail(settings, topics["events"], recent, serde_for("event").decode)
    labels = {r["event_id"]: int(r["label"])
              for r in read_tail(settings, topics["labels"], 3 * recent, serde_for("label").decode)}
    labelled = [e for e in events if e["event_id"] in labels]
    source = {"events_topic": topics["events"], "labels_topic": topics["labels"], "events_read": len(events),
              "labels_read": len(labels), "joined": len(labelled)}
    return labelled, [labels[e["event_id"]] for e in labelled], source


def read_tail(settings: Settings, topic: str, count: int, decode, timeout_s: float = 60.0) -> list[dict]:
    """Decoded committed records among the last ``count`` offsets of ``topic`` (spread over its partitions);
    records that do not decode are skipped."""
    from confluent_kafka import TopicPartition

    from connectors.kafka_clients import KafkaClientError, existing_topics, read_committed_consumer
    from streamscore.errors import SerdeError

    partitions = existing_topics(settings).get(topic)
    if partitions is None:
        raise KafkaClientError(f"topic {topic!r} does not exist at {settings.kafka_bootstrap}")
    consumer = read_committed_consumer(settings, **{"enable.partition.eof": False})
    records, deadline, share = [], time.monotonic() + timeout_s, math.ceil(count / partitions)
    try:
        bounds = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)
                  for p in range(partitions)]
        tps = [TopicPartition(topic, p, max(low, high - share)) for p, (low, high) in enumerate(bounds)]
        consumer.assign(tps)
        ends = [high for _low, high in bounds]
        while any(end > start.offset and tp.offset < end
                  for tp, start, end in zip(consumer.position(tps), tps, ends)):
            if time.monotonic() > deadline:
                raise KafkaClientError(f"could not read the end of topic {topic!r} in {timeout_s:.0f} s")
            for record in consumer.consume(num_messages=1000, timeout=0.2):
                if record.error() is None:
                    try:
                        records.append(decode(record.value()))
                    except SerdeError:
                        continue
    finally:
        consumer.close()
    return records

