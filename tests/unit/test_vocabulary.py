"""The wire vocabulary (streamscore.foundation.vocabulary) agrees with the Avro enums symbol for symbol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drift.settings import Tier
from streamscore.foundation.vocabulary import (
    ControlKind,
    DeadLetterStage,
    DriftStatistic,
    DriftTier,
    LifecycleAction,
    Reason,
    RejectCode,
)

AVRO = Path(__file__).resolve().parents[2] / "schemas" / "avro"


def avro_enums() -> dict[str, list[str]]:
    """name -> symbols of every enum declared in schemas/avro/*.avsc."""
    found: dict[str, list[str]] = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "enum":
                found[node["name"]] = node["symbols"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(AVRO.glob("*.avsc")):
        walk(json.loads(path.read_text()))
    return found


@pytest.mark.parametrize("enum", [ControlKind, DeadLetterStage, DriftStatistic, DriftTier])
def test_each_enum_matches_its_avro_symbols_in_order(enum):
    assert [member.value for member in enum] == avro_enums()[enum.__name__]


def test_every_avro_enum_has_its_python_twin():
    assert set(avro_enums()) == {"ControlKind", "DeadLetterStage", "DriftStatistic", "DriftTier"}


def test_the_ordered_tier_and_the_wire_tier_name_the_same_levels():
    assert [t.name for t in Tier] == [t.value for t in DriftTier]


def test_every_lifecycle_action_announces_one_distinct_kind():
    kinds = [action.kind for action in LifecycleAction]
    assert len(set(kinds)) == len(kinds) and ControlKind.RETRAIN_TRIGGER not in kinds


def test_a_reason_keeps_its_code_through_copies_and_pickles():
    import pickle

    reason = Reason("hour_of_day: value 42 out of range [0, 23]", RejectCode.OUT_OF_RANGE)
    assert pickle.loads(pickle.dumps(reason)).code is RejectCode.OUT_OF_RANGE
    assert str(reason) == "hour_of_day: value 42 out of range [0, 23]" and isinstance(reason, str)
    with pytest.raises(ValueError):
        Reason("x", "not_a_code")
