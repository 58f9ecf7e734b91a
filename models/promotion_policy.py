"""When may the retrainer promote its challenger by itself (``streamscore retrain --auto-promote``)?

Pure (no Kafka, no Flink): the evidence is counted from decoded records and control messages
that the caller read (``streamscore.lifecycle.shadow_evidence``); this module joins, counts and decides.

**Evidence.** An event is *shadowed* when it has a record of the challenger version on
``scored-shadow`` and a champion record (another version) on ``scored``. Label agreement is the
share of shadowed events where both gave the same label. Where the ``labels`` topic has the true
label of a shadowed event, each model's label is right or wrong; the accuracies are counted on
those *labelled* shadowed events (the same events for both models).

**Decision** (:func:`decide`), in this order:

1. fewer than ``promote_after`` shadowed events -> wait (not yet);
2. agreement below ``agreement`` -> no;
3. at least ``min_labelled`` labelled shadowed events and the challenger right on fewer of them
   than the champion (accuracy below the champion's) -> no; with fewer labelled events the
   accuracies are not compared (the reason says so);
4. otherwise promote.

**History** (:func:`history_refusal`): a version is never promoted twice, nor promoted after
it was promoted or rolled back (it appears in a ``MODEL_PROMOTED``/``MODEL_ROLLED_BACK`` payload
as ``version`` or ``previous``), and only while it is the model's current shadow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streamscore.foundation.errors import ModelError
from streamscore.foundation.vocabulary import PRIMARY_KINDS, SHADOW_KINDS, ControlKind

DEFAULT_PROMOTE_AFTER = 2000
DEFAULT_MIN_LABELLED = 500


@dataclass(frozen=True)
class PromotionPolicy:
    """``agreement``: the least label agreement, in (0, 1]; ``promote_after``: shadowed events needed;
    ``min_labelled``: labelled shadowed events needed before accuracies are compared."""

    agreement: float
    promote_after: int = DEFAULT_PROMOTE_AFTER
    min_labelled: int = DEFAULT_MIN_LABELLED

    def __post_init__(self) -> None:
        if not 0.0 < self.agreement <= 1.0:
            raise ModelError(f"the agreement threshold must be in (0, 1], got {self.agreement!r}")
        if self.promote_after < 1 or self.min_labelled < 1:
            raise ModelError(f"promote_after and min_labelled must be >= 1, got {self.promote_after}, "
                             f"{self.min_labelled}")


@dataclass(frozen=True)
class ShadowEvidence:
    """Counts over the shadowed events of one challenger version."""

    shadowed: int
    agreements: int
    labelled: int = 0
    champion_correct: int = 0
    challenger_correct: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.agreements <= self.shadowed and 0 <= self.labelled <= self.shadowed
                and 0 <= self.champion_correct <= self.labelled and 0 <= self.challenger_correct <= self.labelled):
            raise ModelError(f"inconsistent shadow evidence: {self}")

    @property
    def agreement(self) -> float | None:
        return self.agreements / self.shadowed if self.shadowed else None

    @property
    def champion_accuracy(self) -> float | None:
        return self.champion_correct / self.labelled if self.labelled else None

    @property
    def challenger_accuracy(self) -> float | None:
        return self.challenger_correct / self.labelled if self.labelled else None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str

    def line(self, ref: str) -> str:
        return f"{'promoting' if self.promote else 'not promoting'} {ref}: {self.reason}"


def decide(evidence: ShadowEvidence, policy: PromotionPolicy) -> Decision:
    """Promote or not, with the reason (see the module docstring for the rule)."""
    n = evidence.shadowed
    if n < policy.promote_after:
        return Decision(False, f"{n:,} shadowed events < {policy.promote_after:,} needed (--promote-after)")
    agreement = evidence.agreement
    said = f"agreement {agreement:.3f} {'>=' if agreement >= policy.agreement else '<'} {policy.agreement:.3f} " \
           f"over {n:,} shadowed events"
    if agreement < policy.agreement:
        return Decision(False, said)
    if evidence.labelled < policy.min_labelled:
        return Decision(True, f"{said}; accuracy not compared ({evidence.labelled:,} labelled < "
                              f"{policy.min_labelled:,})")
    accuracies = f"accuracy {evidence.challenger_accuracy:.3f} {{}} champion's {evidence.champion_accuracy:.3f} " \
                 f"over {evidence.labelled:,} labelled events"
    if evidence.challenger_correct < evidence.champion_correct:  # same events: compare counts, not floats
        return Decision(False, f"{accuracies.format('<')} ({said})")
    return Decision(True, f"{said}; {accuracies.format('>=')}")


def evidence_from_records(name: str, version: str, champion: Iterable[Mapping], shadow: Iterable[Mapping],
                          truth: Mapping[str, int]) -> ShadowEvidence:
    """Join model ``name``'s ``scored`` records (champion: any version but ``version``) and ``scored-shadow``
    records of ``version`` by event id (another model's records on shared topics are not evidence);
    ``truth``: event id -> true label (0/1)."""
    champion_label = {r["event_id"]: int(r["label"]) for r in champion
                      if r.get("model_name") == name and r["model_version"] != version}
    challenger_label = {r["event_id"]: int(r["label"]) for r in shadow
                        if r.get("model_name") == name and r["model_version"] == version}
    shadowed = agreements = labelled = champion_correct = challenger_correct = 0
    for event_id, label in challenger_label.items():
        if event_id not in champion_label:
            continue
        shadowed += 1
        agreements += label == champion_label[event_id]
        if event_id in truth:
            labelled += 1
            champion_correct += champion_label[event_id] == int(truth[event_id])
            challenger_correct += label == int(truth[event_id])
    return ShadowEvidence(shadowed, agreements, labelled, champion_correct, challenger_correct)


def current_shadow(messages: Iterable[Mapping], name: str) -> str | None:
    """The version of ``name`` attached in shadow by the latest shadow message in log order, or None."""
    version = None
    for message in messages:
        if message.get("kind") in SHADOW_KINDS and message.get("model_name") == name:
            version = message.get("model_version") if message["kind"] == ControlKind.SHADOW_ATTACHED else None
    return version or None


def history_refusal(messages: Iterable[Mapping], name: str, version: str) -> str | None:
    """Why ``name:version`` may not be auto-promoted given the control history, or None when it may.
    Stricter than the jobs on purpose: a promotion message naming the version refuses it even when the jobs
    skip that message as malformed (an auto-promotion waits for a person rather than guess)."""
    messages = list(messages)
    for message in messages:
        if message.get("kind") in PRIMARY_KINDS and message.get("model_name") == name:
            payload = _payload(message)
            if version in (message.get("model_version"), payload.get("version"), payload.get("previous")):
                return f"{name}:{version} was already promoted or rolled back ({message['kind']} on control)"
    if current_shadow(messages, name) != version:
        return f"{name}:{version} is not the current shadow of {name}"
    return None


def _payload(message: Mapping) -> Mapping:
    """A control message's payload as a mapping; {} for a malformed (hand-written) one."""
    try:
        payload = json.loads(message.get("payload_json") or "{}")
    except (ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}
