"""models.promotion_policy: when the retrainer may promote its challenger by itself."""

from __future__ import annotations

import json

import pytest

from models.promotion_policy import (
    PromotionPolicy,
    ShadowEvidence,
    current_shadow,
    decide,
    evidence_from_records,
    history_refusal,
)
from streamscore.foundation.errors import ModelError

POLICY = PromotionPolicy(agreement=0.95, promote_after=2000, min_labelled=500)


def test_waits_for_enough_shadowed_events():
    decision = decide(ShadowEvidence(shadowed=1999, agreements=1999), POLICY)
    assert not decision.promote
    assert decision.line("fraud:1.1.0") == ("not promoting fraud:1.1.0: 1,999 shadowed events < 2,000 needed "
                                            "(--promote-after)")
    assert not decide(ShadowEvidence(0, 0), POLICY).promote


def test_refuses_below_the_agreement_threshold():
    decision = decide(ShadowEvidence(shadowed=2431, agreements=2217), POLICY)  # 0.912
    assert decision == decide(ShadowEvidence(2431, 2217, labelled=2431, champion_correct=1, challenger_correct=2431),
                              POLICY)  # agreement is judged first: accuracy cannot buy it back
    assert not decision.promote
    assert decision.line("fraud:1.1.0") == ("not promoting fraud:1.1.0: agreement 0.912 < 0.950 over 2,431 "
                                            "shadowed events")


def test_promotes_at_exactly_the_threshold_without_enough_labels_to_compare():
    decision = decide(ShadowEvidence(shadowed=2000, agreements=1900, labelled=499, champion_correct=499), POLICY)
    assert decision.promote
    assert decision.reason == ("agreement 0.950 >= 0.950 over 2,000 shadowed events; accuracy not compared "
                               "(499 labelled < 500)")


def test_refuses_a_less_accurate_challenger_when_labels_suffice():
    evidence = ShadowEvidence(shadowed=3000, agreements=2900, labelled=500, champion_correct=460,
                              challenger_correct=459)
    decision = decide(evidence, POLICY)
    assert not decision.promote
    assert decision.reason == ("accuracy 0.918 < champion's 0.920 over 500 labelled events (agreement 0.967 >= "
                               "0.950 over 3,000 shadowed events)")


def test_promotes_an_as_accurate_challenger():
    for correct in (460, 470):
        decision = decide(ShadowEvidence(3000, 2900, labelled=500, champion_correct=460,
                                         challenger_correct=correct), POLICY)
        assert decision.promote, decision
    assert decision.line("fraud:1.1.0") == ("promoting fraud:1.1.0: agreement 0.967 >= 0.950 over 3,000 shadowed "
                                            "events; accuracy 0.940 >= champion's 0.920 over 500 labelled events")


@pytest.mark.parametrize("kwargs", [{"agreement": 0.0}, {"agreement": 1.01}, {"agreement": 0.9, "promote_after": 0},
                                    {"agreement": 0.9, "min_labelled": 0}])
def test_policy_refuses_bad_values(kwargs):
    with pytest.raises(ModelError):
        PromotionPolicy(**kwargs)
    assert PromotionPolicy(1.0).agreement == 1.0


def test_evidence_refuses_inconsistent_counts():
    with pytest.raises(ModelError):
        ShadowEvidence(shadowed=10, agreements=11)
    with pytest.raises(ModelError):
        ShadowEvidence(shadowed=10, agreements=5, labelled=4, champion_correct=5)
    assert ShadowEvidence(0, 0).agreement is None and ShadowEvidence(0, 0).champion_accuracy is None


def _scored(event_id: str, version: str, label: int, name: str = "fraud") -> dict:
    return {"event_id": event_id, "model_name": name, "model_version": version, "label": label}


def test_evidence_joins_champion_and_shadow_records_by_event_id():
    champion = [_scored("a", "1.0.0", 0), _scored("b", "1.0.0", 1), _scored("c", "1.0.0", 0),
                _scored("d", "1.0.0", 0),  # not shadowed
                _scored("e", "1.1.0", 1)]  # scored by the challenger itself (after a promotion): not evidence
    shadow = [_scored("a", "1.1.0", 0), _scored("b", "1.1.0", 0), _scored("c", "1.1.0", 1),
              _scored("e", "1.1.0", 1), _scored("f", "1.1.0", 1),  # no champion record (yet)
              _scored("a", "1.2.0", 1),  # another challenger
              _scored("d", "1.1.0", 1, name="sensor")]  # another model's record on the shared topic
    champion.append(_scored("f", "1.0.0", 0, name="sensor"))  # likewise
    evidence = evidence_from_records("fraud", "1.1.0", champion, shadow, {"a": 0, "b": 0, "d": 1, "f": 1})
    assert evidence == ShadowEvidence(shadowed=3, agreements=1, labelled=2, champion_correct=1,
                                      challenger_correct=2)
    assert evidence.agreement == pytest.approx(1 / 3) and evidence.challenger_accuracy == 1.0


def _control(kind: str, version: str, previous: str | None = None, name: str = "fraud") -> dict:
    return {"kind": kind, "model_name": name, "model_version": version,
            "payload_json": json.dumps({"version": version, "effective_from_ms": 1, "previous": previous})}


def test_current_shadow_is_the_latest_shadow_message_of_the_model():
    assert current_shadow([], "fraud") is None
    messages = [_control("SHADOW_ATTACHED", "1.1.0"), _control("SHADOW_ATTACHED", "9.0.0", name="other")]
    assert current_shadow(messages, "fraud") == "1.1.0"
    assert current_shadow(messages + [_control("SHADOW_DETACHED", "")], "fraud") is None
    assert current_shadow(messages + [_control("SHADOW_ATTACHED", "1.2.0")], "fraud") == "1.2.0"


def test_history_allows_only_the_current_shadow_never_promoted_or_rolled_back():
    attached = [_control("RETRAIN_TRIGGER", "1.0.0"), _control("SHADOW_ATTACHED", "1.1.0")]
    assert history_refusal(attached, "fraud", "1.1.0") is None
    assert history_refusal(attached, "fraud", "1.2.0") == "fraud:1.2.0 is not the current shadow of fraud"
    promoted = attached + [_control("MODEL_PROMOTED", "1.1.0", previous="1.0.0")]
    assert history_refusal(promoted, "fraud", "1.1.0") == ("fraud:1.1.0 was already promoted or rolled back "
                                                           "(MODEL_PROMOTED on control)")
    rolled_back = attached + [_control("MODEL_ROLLED_BACK", "1.0.0", previous="1.1.0")]
    assert "already promoted or rolled back (MODEL_ROLLED_BACK" in history_refusal(rolled_back, "fraud", "1.1.0")
    other_model = attached + [_control("MODEL_PROMOTED", "1.1.0", name="other")]
    assert history_refusal(other_model, "fraud", "1.1.0") is None


def test_retrain_cli_takes_the_policy_and_the_evidence_topics():
    from streamscore.cli.main import build_parser

    args = build_parser().parse_args(["retrain", "--model", "fraud", "--auto-promote", "0.9", "--promote-after",
                                      "3000", "--scored-topic", "s", "--shadow-topic", "sh"])
    assert (args.auto_promote, args.promote_after, args.promote_min_labelled, args.keep_shadow) == (0.9, 3000, 500,
                                                                                                   False)
    assert (args.scored_topic, args.shadow_topic) == ("s", "sh")
    assert build_parser().parse_args(["retrain", "--model", "fraud"]).auto_promote is None
    for bad in ("0", "1.5", "high"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["retrain", "--model", "fraud", "--auto-promote", bad])


def test_retrainer_promotes_then_detaches_and_says_each_decision_once(monkeypatch, capsys):
    from streamscore.lifecycle import retraining, shadow_evidence

    evidence = [ShadowEvidence(1500, 1400), ShadowEvidence(1500, 1400), ShadowEvidence(2500, 2400)]
    monkeypatch.setattr(shadow_evidence, "read_evidence", lambda settings, topics, version, recent: evidence.pop(0))
    published = []
    monkeypatch.setattr(retraining, "_lifecycle",
                        lambda args, settings, topic, action, ref: published.append((action, ref, topic)))
    args = retraining.RetrainOptions(model="fraud", auto_promote=0.9, promote_after=2000,
                                           promote_min_labelled=500, recent=10_000, keep_shadow=False)
    topics, said = {"control": "ctl"}, set()
    messages = [_control("SHADOW_ATTACHED", "1.1.0")]
    for _ in range(3):
        retraining.consider_promotion(args, None, topics, messages, "1.1.0", said)
    assert published == [("promote", "fraud:1.1.0", "ctl"), ("shadow-detach", "fraud", "ctl")]
    messages.append(_control("MODEL_PROMOTED", "1.1.0", previous="1.0.0"))
    for _ in range(2):
        assert not retraining.consider_promotion(args, None, topics, messages, "1.1.0", said)
    assert len(published) == 2 and not evidence
    assert capsys.readouterr().out.splitlines() == [
        "not promoting fraud:1.1.0: 1,500 shadowed events < 2,000 needed (--promote-after)",
        ("promoting fraud:1.1.0: agreement 0.960 >= 0.900 over 2,500 shadowed events; accuracy not compared "
         "(0 labelled < 500)"),
        "not promoting fraud:1.1.0: fraud:1.1.0 was already promoted or rolled back (MODEL_PROMOTED on control)"]


def test_retrain_refuses_evidence_it_could_never_read(capsys):
    from streamscore.cli.main import main

    assert main(["retrain", "--model", "fraud", "--auto-promote", "0.9", "--promote-after", "20000"]) != 0
    assert "needs --promote-after <= --recent" in capsys.readouterr().err
