"""The wire vocabulary: the closed sets of symbols that the Avro schemas declare, declared once for Python.

Each ``StrEnum`` mirrors one enum of ``schemas/avro/*.avsc`` symbol for symbol
(``tests/unit/test_vocabulary.py`` checks that they agree), so code compares and builds records
with ``ControlKind.MODEL_PROMOTED`` instead of a string spelled again in each module. Members are
strings, so records keep plain strings on the wire:

>>> ControlKind.MODEL_PROMOTED == "MODEL_PROMOTED"
True
>>> DeadLetterStage("CONTRACT") is DeadLetterStage.CONTRACT
True
>>> LifecycleAction.SHADOW_ATTACH.kind
<ControlKind.SHADOW_ATTACHED: 'SHADOW_ATTACHED'>
"""

from __future__ import annotations

from enum import StrEnum


class ControlKind(StrEnum):
    """``io.streamscore.v1.ControlKind``: what a control-topic message announces."""

    RETRAIN_TRIGGER = "RETRAIN_TRIGGER"
    MODEL_PROMOTED = "MODEL_PROMOTED"
    MODEL_ROLLED_BACK = "MODEL_ROLLED_BACK"
    SHADOW_ATTACHED = "SHADOW_ATTACHED"
    SHADOW_DETACHED = "SHADOW_DETACHED"
    CANARY_WEIGHT = "CANARY_WEIGHT"


class DeadLetterStage(StrEnum):
    """``io.streamscore.v1.DeadLetterStage``: the scoring step a dead letter failed in."""

    DECODE = "DECODE"
    CONTRACT = "CONTRACT"
    INFERENCE = "INFERENCE"
    ENCODE = "ENCODE"


class DriftStatistic(StrEnum):
    """``io.streamscore.v1.DriftStatistic``: the test behind a drift alert."""

    PSI = "PSI"
    KS = "KS"
    CHI2 = "CHI2"
    ACCURACY = "ACCURACY"
    AUC = "AUC"


class DriftTier(StrEnum):
    """``io.streamscore.v1.DriftTier``: a finding's severity on the wire (``drift.settings.Tier`` orders it)."""

    NONE = "NONE"
    SMALL = "SMALL"
    MODERATE = "MODERATE"
    SEVERE = "SEVERE"


class LifecycleAction(StrEnum):
    """The model-lifecycle changes a user asks for (``streamscore models ACTION``), each one control kind."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"
    SHADOW_ATTACH = "shadow-attach"
    SHADOW_DETACH = "shadow-detach"
    CANARY = "canary"

    @property
    def kind(self) -> ControlKind:
        return _KIND_OF_ACTION[self]


_KIND_OF_ACTION = {
    LifecycleAction.PROMOTE: ControlKind.MODEL_PROMOTED,
    LifecycleAction.ROLLBACK: ControlKind.MODEL_ROLLED_BACK,
    LifecycleAction.SHADOW_ATTACH: ControlKind.SHADOW_ATTACHED,
    LifecycleAction.SHADOW_DETACH: ControlKind.SHADOW_DETACHED,
    LifecycleAction.CANARY: ControlKind.CANARY_WEIGHT,
}
PRIMARY_KINDS = (ControlKind.MODEL_PROMOTED, ControlKind.MODEL_ROLLED_BACK)  # they set the champion
SHADOW_KINDS = (ControlKind.SHADOW_ATTACHED, ControlKind.SHADOW_DETACHED)
