"""The retraining protocol: answer a model's retraining triggers with a challenger in shadow.

``streamscore retrain`` (``streamscore.cli.retrain``) runs it. Glue only (training is
``models.retrain``, registration ``models.register``, the shadow attach
``streamscore.lifecycle.control``). For the model's RETRAIN_TRIGGER messages on ``control``:

1. **Pending triggers**: those whose ``message_id`` no registered version of the model answers
   (each challenger card lists the triggers it answers in ``training.retraining.answers``). One
   challenger answers every pending trigger at once; none pending -> nothing to train (and if
   the answering version was never attached in shadow, it is attached now). One round of a model
   at a time on a registry (:func:`retrain_lock`), so two retrain runs never answer one trigger twice.
2. **Recent labelled events**: the last ``--recent`` (10,000) records of ``events`` joined by event
   id with the labels found in the last ``3 x --recent`` records of ``labels`` (the trigger's
   window ids name sidecar windows, not offsets, so "recent" is counted from the end of the topic).
   Fewer than ``--min-labelled`` (3,000) labelled events -> one error line (``--follow``: a line,
   then it waits for more labels).
3. Train (``models.retrain``: parent = the version the trigger judged), register through
   ``models.register`` (the usual checks), publish SHADOW_ATTACHED.
4. Promotion stays a human decision (``streamscore models promote``) unless ``--auto-promote
   AGREEMENT``: then, while the answering version is the model's current shadow (a one-shot run,
   or every poll of ``--follow``), its evidence is read from Kafka (``streamscore.lifecycle.shadow_evidence``:
   the job's ``scored`` and ``scored-shadow`` records joined by event id, and ``labels``) and judged
   by ``models.promotion_policy`` (at least ``--promote-after`` shadowed events, agreement >=
   AGREEMENT, and with >= ``--promote-min-labelled`` labelled ones, accuracy not below the
   champion's). A yes publishes MODEL_PROMOTED as ``streamscore models promote`` does, then
   SHADOW_DETACHED (unless ``--keep-shadow``); a no prints one line saying why. A version already
   promoted or rolled back (per control) is never promoted again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from jobs.model_router import DEFAULT_ACTIVATION_DELAY_MS
from models.card import ModelCard
from models.promotion_policy import DEFAULT_MIN_LABELLED, DEFAULT_PROMOTE_AFTER, PromotionPolicy
from models.registry import ModelRegistry
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import ModelError, StreamscoreError
from streamscore.foundation.locks import exclusive
from streamscore.foundation.vocabulary import ControlKind, LifecycleAction
from streamscore.lifecycle.control import LifecycleChange, apply_change, read_control
from streamscore.lifecycle.shadow_evidence import read_tail

TRIGGER = ControlKind.RETRAIN_TRIGGER
DEFAULT_RECENT = 10_000
DEFAULT_MIN_LABELLED_TO_TRAIN = 3000
TOPIC_ROLES = {"control": "control", "events": "events", "labels": "labels", "scored": "scored",
               "shadow": "scored_shadow"}  # topic key -> the settings' topic role


@dataclass(frozen=True)
class RetrainOptions:
    """How to answer a model's triggers (``streamscore retrain`` flags, one field each)."""

    model: str
    follow: bool = False
    min_labelled: int = DEFAULT_MIN_LABELLED_TO_TRAIN
    recent: int = DEFAULT_RECENT
    registry_dir: str | None = None
    activation_delay_ms: int = DEFAULT_ACTIVATION_DELAY_MS
    auto_promote: float | None = None  # the agreement needed to promote; None: never promote
    promote_after: int = DEFAULT_PROMOTE_AFTER
    promote_min_labelled: int = DEFAULT_MIN_LABELLED
    keep_shadow: bool = False
    # the challenger's HistGradientBoostingClassifier hyper-parameters over the parent's (a parent registered
    # from ONNX records none: these alone); None: the parent's
    model_params: Mapping[str, Any] | None = None

    def check(self) -> None:
        """Refuse inconsistent values before anything is read."""
        if self.min_labelled < 100 or self.recent < self.min_labelled:
            raise StreamscoreError("retrain needs --min-labelled >= 100 and --recent >= --min-labelled")
        policy(self)


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
    return any(m.get("kind") == ControlKind.SHADOW_ATTACHED and m.get("model_name") == name
               and m.get("model_version") == version for m in messages)


def policy(args: RetrainOptions) -> PromotionPolicy | None:
    if args.auto_promote is None:
        return None
    if args.promote_after > args.recent:  # the evidence is read from the last --recent shadow records
        raise StreamscoreError("retrain --auto-promote needs --promote-after <= --recent")
    try:
        return PromotionPolicy(args.auto_promote, args.promote_after, args.promote_min_labelled)
    except ModelError as exc:
        raise StreamscoreError(f"retrain --auto-promote: {exc}") from exc


def answer_once(args: RetrainOptions, settings: Settings, topics: dict[str, str], *,
                quiet_if_none: bool, said: set[str] | None = None) -> bool:
    """Answer the pending triggers (if any) and, with ``--auto-promote``, judge the challenger already in
    shadow; True when something was trained, attached or already done."""
    registry = ModelRegistry(args.registry_dir)
    with retrain_lock(registry, args.model):
        return _answer_pending(args, settings, topics, registry, quiet_if_none=quiet_if_none, said=said)


def retrain_lock(registry: ModelRegistry, model: str) -> AbstractContextManager[None]:
    """One retraining of ``model`` at a time on this registry: an exclusive lock on
    ``<registry>/<model>/.retrain.lock``, held while the pending triggers are read, answered and attached
    (a --follow loop and a one-shot run would otherwise both answer a trigger, the later attach replacing
    the first challenger)."""
    return exclusive(registry.root / model / ".retrain.lock")


def _answer_pending(args: RetrainOptions, settings: Settings, topics: dict[str, str], registry: ModelRegistry, *,
                    quiet_if_none: bool, said: set[str] | None) -> bool:
    from models.retrain import TooFewLabelsError

    messages = read_control(settings, topics["control"])
    answered = answered_by(registry, args.model)
    pending = pending_triggers(messages, args.model, answered)
    if not pending:
        version = _nothing_pending(args, settings, topics, messages, answered, quiet_if_none)
        if version and args.auto_promote is not None and shadow_attached(messages, args.model, version):
            consider_promotion(args, settings, topics, messages, version, set() if said is None else said)
        return version is not None
    try:
        version = _train_and_register(args, settings, topics, registry, pending)
    except TooFewLabelsError as exc:
        if not args.follow:
            raise
        print(f"waiting for labels: {exc}", flush=True)
        return False
    _lifecycle(args, settings, topics["control"], LifecycleAction.SHADOW_ATTACH, f"{args.model}:{version}")
    return True


def _nothing_pending(args: RetrainOptions, settings: Settings, topics, messages, answered,
                     quiet_if_none: bool) -> str | None:
    """The version answering the latest trigger (attached in shadow now if it never was); None: no trigger."""
    triggers = [m for m in messages if m.get("kind") == TRIGGER and m.get("model_name") == args.model]
    if not triggers:
        if quiet_if_none:
            return None
        raise StreamscoreError(f"no {TRIGGER} for model {args.model!r} on {topics['control']}: nothing to answer")
    version = answered[triggers[-1]["message_id"]]
    if shadow_attached(messages, args.model, version):
        if not quiet_if_none:
            print(f"trigger {triggers[-1]['message_id']} already answered by {args.model}:{version} (in shadow)")
        return version
    print(f"trigger {triggers[-1]['message_id']} answered by {args.model}:{version}, not yet in shadow: attaching")
    _lifecycle(args, settings, topics["control"], LifecycleAction.SHADOW_ATTACH, f"{args.model}:{version}")
    return version


def consider_promotion(args: RetrainOptions, settings: Settings, topics: dict[str, str], messages: list[dict],
                       version: str,
                       said: set[str]) -> bool:
    """--auto-promote: promote ``version`` (then detach the shadow) when its evidence meets the policy;
    prints the decision unless it is the last line printed. True when it promoted."""
    from models.promotion_policy import decide, history_refusal
    from streamscore.lifecycle.shadow_evidence import read_evidence

    ref = f"{args.model}:{version}"
    refusal = history_refusal(messages, args.model, version)
    decision = None if refusal else decide(read_evidence(settings, topics, (args.model, version), args.recent),
                                           policy(args))
    line = decision.line(ref) if decision else f"not promoting {ref}: {refusal}"
    if line not in said:  # a new decision or new evidence: say it (repeating nothing while idle)
        said.clear()
        said.add(line)
        print(line, flush=True)
    if not decision or not decision.promote:
        return False
    _lifecycle(args, settings, topics["control"], LifecycleAction.PROMOTE, ref)
    if not args.keep_shadow:
        _lifecycle(args, settings, topics["control"], LifecycleAction.SHADOW_DETACH, args.model)
    return True


def _train_and_register(args: RetrainOptions, settings: Settings, topics: dict[str, str], registry: ModelRegistry,
                        pending: list[dict]) -> str:
    from models.register import register_card
    from models.retrain import RetrainRequest, check_retrainable, retrain

    latest = pending[-1]
    parent = registry.load(args.model, latest["model_version"])
    params = dict(args.model_params) if args.model_params is not None else None
    check_retrainable(parent.card, RetrainRequest(model_params=params))  # before reading Kafka
    events, labels, source = collect_labelled(settings, topics, args.recent, parent.card)
    request = RetrainRequest(
        answers=tuple(m["message_id"] for m in pending),
        window_ids=tuple(w for m in pending for w in m.get("window_ids") or ()),
        source=source, min_labelled=args.min_labelled, model_params=params,
        taken_versions=tuple(r.version for r in registry.list_models() if r.name == args.model))
    result = retrain(parent, events, labels, request)
    model = register_card(result.card, result.onnx_bytes, args.registry_dir)
    reasons = "; ".join(r for m in pending for r in m.get("reasons") or ())
    print(f"answering {len(pending)} trigger(s) ({latest.get('tier')}: {reasons})")
    print(f"registered {model.card.ref} at {model.directory}")
    print(result.summary(), flush=True)
    return model.card.version


def _lifecycle(args: RetrainOptions, settings: Settings, control_topic: str, action: LifecycleAction, ref: str) -> None:
    """One lifecycle change exactly as ``streamscore models ACTION REF`` makes it."""
    published = apply_change(settings, LifecycleChange(
        LifecycleAction(action), ref, control_topic=control_topic, registry_dir=args.registry_dir,
        activation_delay_ms=args.activation_delay_ms))
    print(published.line(), flush=True)  # its line, now: --follow may run with a pipe as stdout


def collect_labelled(settings: Settings, topics: dict[str, str], recent: int,
                     card: ModelCard) -> tuple[list[dict], list[int], dict]:
    """The last ``recent`` events that have a label (events in log order, read as the model's event schema:
    its own, on the Confluent wire or as JSON objects, or the demo's; labels joined by the schema's id field).
    The source's counts name the records that did not decode (another topic's, another schema's)."""
    from connectors.schema_registry import SchemaRegistry, topic_reader

    registry = SchemaRegistry(settings.schema_registry)
    reader = _OwnEvents(card.binding.schema, registry) if card.event_schema is not None \
        else topic_reader(registry, "event")
    undecodable: Counter = Counter()
    events = read_tail(settings, topics["events"], recent, reader.decode, skipped=undecodable)
    labels = {r["event_id"]: int(r["label"])
              for r in read_tail(settings, topics["labels"], 3 * recent, topic_reader(registry, "label").decode)}
    key = card.binding.id_field
    labelled = [e for e in events if e[key] in labels]
    source = {"events_topic": topics["events"], "labels_topic": topics["labels"], "events_read": len(events),
              "labels_read": len(labels), "joined": len(labelled)}
    if undecodable:
        source["events_undecodable"] = dict(undecodable)
    return labelled, [labels[e[key]] for e in labelled], source


class _OwnEvents:
    """A model's own events as its scoring job takes them: Confluent-wire Avro, or JSON objects
    (``submit scoring --input-format json``), told apart by the first byte."""

    def __init__(self, schema, registry) -> None:
        from schemas.confluent import RegistryAvroSerde
        from schemas.json_events import JsonEvents

        self._avro, self._json = RegistryAvroSerde(schema, None, registry), JsonEvents(schema)

    def decode(self, payload: bytes | None) -> dict:
        is_json = payload is not None and payload[:1] == b"{"  # None (a tombstone): the Avro reader refuses it
        return self._json.decode(payload) if is_json else self._avro.decode(payload)
