"""The retraining loop on the real stack: drift -> trigger -> retrained challenger in shadow -> agreement.

Fresh topics, a temp registry holding ``fraud-rt:1.0.0`` (a copy of the demo model under another
name), one scoring job following its own control topic and the drift sidecar on the same topics.
8,000 drifted events (30 % more travel purchases, and travel now risky: a concept the parent never
saw, as in ``tests/unit/test_retrain.py``) and their labels are produced; the sidecar's
trigger is answered by ``streamscore retrain`` (the CLI, in process), which registers
``fraud-rt:1.1.0`` and attaches it in shadow. 4,000 more drifted events after the attach must each
have one champion record (1.0.0, unchanged scores) and one ``scored-shadow`` record (1.1.0), with
agreement metrics; on those fresh events the challenger ranks fraud better than the champion.

The second test runs ``streamscore retrain --follow --auto-promote`` as a subprocess on the same
kind of stack: it trains and attaches 1.1.0 itself, judges the shadow's evidence on Kafka, promotes
once (then detaches the shadow), and events after the promotion's effective time are scored by 1.1.0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from model_copies import register_renamed
from sklearn.metrics import roc_auc_score
from topic_reads import decoder_of, demo_events_writer

from connectors.kafka_reads import read_topic
from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from jobs.flink_cluster import cancel_jobs
from jobs.flink_metrics import LIFECYCLE_PREFIX, job_series
from jobs.submit import drift_config_from_settings, scoring_config_from_settings, submit_together
from models import demo_data
from models.demo_labels import LabelPlan, label_records
from models.registry import ModelRegistry, load_model
from models.runtime import OnnxScorer
from streamscore.cli import main as cli
from streamscore.harness.labels import produce_labels

pytestmark = pytest.mark.integration

# the activation delay: a publish must flush within a quarter of it and commit within half (as in the kill test)
NAME, DELAY_MS = "fraud-rt", 6000
FIRST, SECOND = 8000, 4000


def travel_ring(n: int, seed: int, uplift: float = 2.5) -> tuple[list[dict], np.ndarray]:
    """Drifted events and labels: 30 % more travel, and travel now risky (log-odds + ``uplift``)."""
    drift = [demo_data.DriftSpec("merchant_category", "category_mix", 0.3, category="travel")]
    columns = demo_data.generate_columns(n, seed, drift)
    travel = columns["merchant_category"] == demo_data.MERCHANTS.index("travel")
    logit = demo_data.fraud_logit(columns) + uplift * travel
    labels = (np.random.default_rng(seed + 1).random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    return demo_data.columns_to_events(columns, seed, id_prefix=f"rt{seed}-"), labels


@pytest.fixture
def registry(tmp_path):
    yield register_renamed("fraud/1.0.0", NAME, tmp_path)
    shutil.rmtree(tmp_path / "registry", ignore_errors=True)


def _read(settings, topic: str, schema: str, idle_s: float = 2.0) -> list[dict]:
    decode = decoder_of(settings, schema)
    return [decode(r.value) for r in read_topic(settings, topic, idle_timeout_s=idle_s)]


def _wait_for(fetch, predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = fetch()
        if predicate(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def _produce(settings, topics, events, truth, start_ms: int) -> None:
    for i, event in enumerate(events):
        event["event_time"] = start_ms + i
    encode = demo_events_writer(settings, topics["events"]).encode
    produce_transactionally(settings, topics["events"], ((e["event_id"].encode(), encode(e), e["event_time"])
                                                         for e in events), TransactionPlan(transaction_size=500))
    produce_labels(settings, label_records(events, truth, LabelPlan(delay_ms=1000)), topic=topics["labels"],
                   transaction_size=500)


def _lifecycle_metrics(settings, job_name: str) -> dict[str, dict[tuple, float]]:
    """``model_lifecycle_*`` series of one job from Flink's reporter: name -> {(version, role): value}."""
    values: dict[str, dict[tuple, float]] = defaultdict(dict)
    for name, labels, value in job_series(settings, job_name, LIFECYCLE_PREFIX):
        if "le" not in labels:
            values[name][(labels.get("version"), labels.get("role"))] = value
    return values


def _retrain(topics, registry, capsys, *extra: str, expect: int = 0) -> tuple[str, str]:
    code = cli.main(["retrain", "--model", NAME, "--registry-dir", str(registry), "--control-topic",
                     topics["control"], "--events-topic", topics["events"], "--labels-topic", topics["labels"],
                     "--activation-delay-ms", str(DELAY_MS), *extra])
    out = capsys.readouterr()
    assert code == expect, out.err
    return out.out, out.err


def _loop_topics(fresh_topics) -> dict[str, str]:
    names = fresh_topics("events", "scored", "shadow", partitions=2)
    names += fresh_topics("dead", "control", "alerts", "labels")
    return dict(zip(("events", "scored", "shadow", "dead", "control", "alerts", "labels"), names))


def _loop_configs(settings, topics, registry):
    """A scoring job following its own control topic and the drift sidecar on the same topics."""
    tag = uuid.uuid4().hex[:8]
    scoring = scoring_config_from_settings(
        settings, events_topic=topics["events"], scored_topic=topics["scored"], dead_letter_topic=topics["dead"],
        control_topic=topics["control"], shadow_topic=topics["shadow"], model=f"{NAME}:1.0.0",
        registry_dir=str(registry), job_name=f"it-retrain-{tag}", activation_delay_ms=DELAY_MS,
        startup_mode="earliest-offset", max_delay_ms=50)
    drift = drift_config_from_settings(
        settings, model=f"{NAME}:1.0.0", registry_dir=str(registry), events_topic=topics["events"],
        scored_topic=topics["scored"], alerts_topic=topics["alerts"], control_topic=topics["control"],
        labels_topic="", job_name=f"it-retrain-drift-{tag}", startup_mode="earliest-offset")
    return scoring, drift


def test_drift_trigger_retrained_challenger_in_shadow(settings, fresh_topics, registry, capsys):
    topics = _loop_topics(fresh_topics)
    scoring, drift = _loop_configs(settings, topics, registry)
    first, first_truth = travel_ring(FIRST, seed=61)
    second, second_truth = travel_ring(SECOND, seed=62)
    for event in second:
        event["event_id"] = f"after-{event['event_id']}"
    jobs = submit_together(settings, [scoring, drift])
    try:
        _produce(settings, topics, first, first_truth, int(time.time() * 1000) - 20_000)
        control = _wait_for(lambda: _read(settings, topics["control"], "control"),
                            lambda ms: any(m["kind"] == "RETRAIN_TRIGGER" for m in ms), 120, "a retrain trigger")
        _, refused = _retrain(topics, registry, capsys, "--min-labelled", "9000", "--recent", "9000", expect=1)
        trained, _ = _retrain(topics, registry, capsys)
        again, _ = _retrain(topics, registry, capsys)
        control = _read(settings, topics["control"], "control")
        attach = next(m for m in control if m["kind"] == "SHADOW_ATTACHED")
        effective = json.loads(attach["payload_json"])["effective_from_ms"]
        time.sleep(max(0.0, (effective - time.time() * 1000) / 1000) + 0.5)
        _produce(settings, topics, second, second_truth, int(time.time() * 1000))
        ids = {e["event_id"] for e in second}
        scored = _wait_for(lambda: [r for r in _read(settings, topics["scored"], "scored") if r["event_id"] in ids],
                           lambda rs: len(rs) >= SECOND, 120, "the second batch scored")
        shadow = _wait_for(lambda: _read(settings, topics["shadow"], "scored"),
                           lambda rs: len(rs) >= SECOND, 60, "the second batch shadowed")
        time.sleep(3)
        metrics = _wait_for(lambda: _lifecycle_metrics(settings, scoring.job_name),
                            lambda m: sum(m.get("version_shadow_label_agreements", {}).values())
                            + sum(m.get("version_shadow_label_disagreements", {}).values()) >= SECOND,
                            30, "shadow agreement metrics")
        shadow = _read(settings, topics["shadow"], "scored")
    finally:
        cancel_jobs(settings, jobs)

    triggers = [m for m in control if m["kind"] == "RETRAIN_TRIGGER"]
    challenger = load_model(f"{NAME}:1.1.0", root=registry)
    answered = challenger.card.training.retraining
    print(trained)
    assert triggers and triggers[0]["tier"] and triggers[0]["model_version"] == "1.0.0"
    assert triggers[0]["message_id"] in answered["answers"] and answered["parent"] == f"{NAME}:1.0.0"
    assert f"registered {NAME}:1.1.0" in trained and f"SHADOW_ATTACHED {NAME}:1.1.0" in trained
    refused_lines = [line for line in refused.splitlines() if not line.startswith("{")]  # JSON log lines aside
    refusal = (f"streamscore: error: {FIRST} labelled recent events for {NAME}:1.0.0; retraining needs >= 9000 "
               f"({FIRST} events read from {topics['events']}, {FIRST} labels, {FIRST} joined by id)")
    assert refused_lines == [refusal], refused
    assert "already answered" in again and [m["model_version"] for m in control
                                            if m["kind"] == "SHADOW_ATTACHED"] == ["1.1.0"]
    held_out = answered["holdout_challenger"]["auc"], answered["holdout_parent"]["auc"]
    assert held_out[0] > held_out[1], held_out
    assert {r.version for r in ModelRegistry(registry).list_models()} == {"1.0.0", "1.1.0"}

    # champion: one record per event, the parent's version and scores, untouched by the shadow
    assert len(scored) == SECOND == len({r["event_id"] for r in scored})
    assert {r["model_version"] for r in scored} == {"1.0.0"}
    by_id = {e["event_id"]: e for e in second}
    order = sorted(ids)
    parent = load_model(f"{NAME}:1.0.0", root=registry)
    matrix = parent.contract.to_matrix([by_id[i] for i in order]).matrix
    champion = {r["event_id"]: r for r in scored}
    np.testing.assert_allclose([champion[i]["score"] for i in order], OnnxScorer(parent).predict_batch(matrix),
                               rtol=0, atol=1e-6)
    # shadow: exactly the events after the attach, once each, by the challenger
    assert sorted(r["event_id"] for r in shadow) == order
    assert {r["model_version"] for r in shadow} == {"1.1.0"}
    challenger_scores = {r["event_id"]: r["score"] for r in shadow}
    np.testing.assert_allclose([challenger_scores[i] for i in order], OnnxScorer(challenger).predict_batch(matrix),
                               rtol=0, atol=1e-6)
    truth = dict(zip((e["event_id"] for e in second), second_truth.tolist()))
    y = [truth[i] for i in order]
    auc_champion = roc_auc_score(y, [champion[i]["score"] for i in order])
    auc_challenger = roc_auc_score(y, [challenger_scores[i] for i in order])
    agree = sum(champion[i]["label"] == r["label"] for i, r in ((r["event_id"], r) for r in shadow))
    print(f"fresh drifted events: AUC champion {auc_champion:.4f}, challenger {auc_challenger:.4f}; "
          f"label agreement {agree / SECOND:.1%}")
    assert auc_challenger > auc_champion, (auc_champion, auc_challenger)
    # agreement metrics of the shadow (Flink writes version 1.1.0 as 1_1_0)
    assert metrics["version_shadow_label_agreements"][("1_1_0", None)] == agree
    assert metrics["version_shadow_label_disagreements"][("1_1_0", None)] == SECOND - agree
    assert metrics["version_shadow_score_diff_milli_count"][("1_1_0", None)] == SECOND
    assert metrics["version_role_events_scored"][("1_1_0", "shadow")] == SECOND


# --follow --auto-promote. At the uplift above (+2.5) the challenger agrees with the champion on 88 % of
# fresh events but is *less* accurate at its F1-best threshold (0.887 vs 0.918, measured offline on 3,000
# events), so the rule rightly refuses it. At +4.5 travel fraud is common enough that flagging it pays in
# accuracy too. Measured on the stack (seeds 61/62, two runs): label agreement 0.750 and 0.752 over the first
# 2,000 shadowed events (where the retrainer decided; accuracy 0.860/0.857 vs the champion's 0.819) and 0.763
# over all 3,000 (0.866 vs 0.823). AGREEMENT 0.70 leaves a margin of 5 points below the lowest of these.
UPLIFT, AGREEMENT, PROMOTE_AFTER = 4.5, 0.70, 2000
SHADOWED, LATE = 3000, 1000


def _spawn_retrainer(topics, registry, out_dir: Path) -> subprocess.Popen:
    cli_path = Path(sys.executable).parent / "streamscore"
    command = [str(cli_path), "retrain", "--model", NAME, "--follow", "--auto-promote", str(AGREEMENT),
               "--promote-after", str(PROMOTE_AFTER), "--poll-s", "1", "--registry-dir", str(registry),
               "--activation-delay-ms", str(DELAY_MS), "--control-topic", topics["control"],
               "--events-topic", topics["events"], "--labels-topic", topics["labels"],
               "--scored-topic", topics["scored"], "--shadow-topic", topics["shadow"]]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the stack's STREAMSCORE_* settings too
    with (out_dir / "stdout").open("w") as out, (out_dir / "stderr").open("w") as err:
        return subprocess.Popen(command, stdout=out, stderr=err, env=env, start_new_session=True)


def _control_until(settings, topics, retrainer, kind: str, timeout_s: float) -> dict:
    """The first ``kind`` message on control, failing early if the retrainer died."""
    def fetch():
        if retrainer.poll() is not None:
            raise AssertionError(f"the retrainer exited with {retrainer.returncode}")
        return _read(settings, topics["control"], "control", idle_s=1.0)
    messages = _wait_for(fetch, lambda ms: any(m["kind"] == kind for m in ms), timeout_s, kind)
    return next(m for m in messages if m["kind"] == kind)


def _sleep_past(message: dict) -> int:
    effective = json.loads(message["payload_json"])["effective_from_ms"]
    time.sleep(max(0.0, (effective - time.time() * 1000) / 1000) + 0.5)
    return effective


def _stop(retrainer: subprocess.Popen) -> None:
    if retrainer.poll() is None:
        retrainer.terminate()
        try:
            retrainer.wait(10)
        except subprocess.TimeoutExpired:
            retrainer.kill()
            retrainer.wait(10)


def _run_follow(settings, topics, registry, batches, out_dir: Path) -> dict:
    """Jobs and the retrainer subprocess; the batches produced around its attach and its promotion.
    Returns what was read at the end (and when the promotion took effect)."""
    scoring, drift = _loop_configs(settings, topics, registry)
    jobs = submit_together(settings, [scoring, drift])
    retrainer = _spawn_retrainer(topics, registry, out_dir)
    began, phases = time.monotonic(), {}
    try:
        _produce(settings, topics, *batches[0], int(time.time() * 1000) - 20_000)
        _sleep_past(_control_until(settings, topics, retrainer, "SHADOW_ATTACHED", 150))
        phases["trigger, training, attach"] = time.monotonic() - began
        _produce(settings, topics, *batches[1], int(time.time() * 1000))
        effective = _sleep_past(_control_until(settings, topics, retrainer, "MODEL_PROMOTED", 120))
        _sleep_past(_control_until(settings, topics, retrainer, "SHADOW_DETACHED", 30))
        phases["shadow evidence, promotion, detach"] = time.monotonic() - began - sum(phases.values())
        _produce(settings, topics, *batches[2], int(time.time() * 1000))
        total = sum(len(events) for events, _truth in batches)
        _wait_for(lambda: _read(settings, topics["scored"], "scored"), lambda rs: len(rs) >= total, 120,
                  "every event scored")
        phases["late events scored"] = time.monotonic() - began - sum(phases.values())
        time.sleep(3)  # anything extra (a duplicate) would show now
        seen = {"scored": _read(settings, topics["scored"], "scored"), "effective": effective, "phases": phases,
                "shadow": _read(settings, topics["shadow"], "scored"),
                "control": _read(settings, topics["control"], "control")}
        time.sleep(2)  # a few more polls: still no second promotion
        assert retrainer.poll() is None, "the retrainer exited"
        return {**seen, "control_later": _read(settings, topics["control"], "control")}
    finally:
        _stop(retrainer)
        cancel_jobs(settings, jobs)
        errors = [line for line in (out_dir / "stderr").read_text().splitlines() if not line.startswith("{")]
        print("retrainer stderr (JSON log lines aside):", *errors[-20:], sep="\n")


def _recount_evidence(scored, shadow, batches) -> tuple[int, float, float, float]:
    """(shadowed events, label agreement, champion accuracy, challenger accuracy), from the records."""
    champion = {r["event_id"]: r["label"] for r in scored if r["model_version"] == "1.0.0"}
    challenger = {r["event_id"]: r["label"] for r in shadow if r["model_version"] == "1.1.0"}
    truth = {e["event_id"]: int(y) for events, labels in batches for e, y in zip(events, labels)}
    joined = sorted(challenger.keys() & champion.keys())
    agreement = sum(champion[i] == challenger[i] for i in joined) / len(joined)
    accuracy = [sum(labels[i] == truth[i] for i in joined) / len(joined) for labels in (champion, challenger)]
    return len(joined), agreement, accuracy[0], accuracy[1]


def test_follow_auto_promotes_an_agreeing_challenger_once(settings, fresh_topics, registry, tmp_path):
    """``streamscore retrain --follow --auto-promote`` as a subprocess: drift -> trigger -> 1.1.0 in shadow ->
    shadowed evidence -> one MODEL_PROMOTED (then SHADOW_DETACHED) -> later events scored by 1.1.0, once."""
    batches = [travel_ring(FIRST, seed=61, uplift=UPLIFT), travel_ring(SHADOWED, seed=62, uplift=UPLIFT),
               travel_ring(LATE, seed=63, uplift=UPLIFT)]
    for prefix, (events, _truth) in zip(("", "shadowed-", "late-"), batches):
        for event in events:
            event["event_id"] = prefix + event["event_id"]
    seen = _run_follow(settings, _loop_topics(fresh_topics), registry, batches, tmp_path)

    out = (tmp_path / "stdout").read_text()
    print(out)
    print("phases (s): " + ", ".join(f"{what} {seconds:.0f}" for what, seconds in seen["phases"].items()))
    decisions = [line for line in out.splitlines() if line.startswith(("promoting", "not promoting"))]
    promoting = [line for line in decisions if line.startswith(f"promoting {NAME}:1.1.0: agreement ")]
    assert len(promoting) == 1, decisions
    assert f"registered {NAME}:1.1.0" in out and f"SHADOW_ATTACHED {NAME}:1.1.0" in out
    assert f"MODEL_PROMOTED {NAME}:1.1.0" in out and f"SHADOW_DETACHED {NAME}:-" in out
    assert f"not promoting {NAME}:1.1.0: {NAME}:1.1.0 was already promoted or rolled back" in out
    # control: exactly one promotion, of the retrained version, and the shadow detached after it
    for messages in (seen["control"], seen["control_later"]):
        assert [m["model_version"] for m in messages if m["kind"] == "MODEL_PROMOTED"] == ["1.1.0"]
    kinds = [m["kind"] for m in seen["control"] if m["kind"] in ("SHADOW_ATTACHED", "MODEL_PROMOTED",
                                                                  "SHADOW_DETACHED")]
    assert kinds == ["SHADOW_ATTACHED", "MODEL_PROMOTED", "SHADOW_DETACHED"], kinds
    # scored: every event exactly once, by the version in force at its event time
    events = [e for batch, _truth in batches for e in batch]
    assert sorted(r["event_id"] for r in seen["scored"]) == sorted(e["event_id"] for e in events)
    version_of = {r["event_id"]: r["model_version"] for r in seen["scored"]}
    wrong = [e["event_id"] for e in events
             if version_of[e["event_id"]] != ("1.1.0" if e["event_time"] >= seen["effective"] else "1.0.0")]
    assert not wrong, wrong[:5]
    assert {version_of[e["event_id"]] for e in batches[2][0]} == {"1.1.0"}
    # the shadow stopped before the late batch; the evidence, recounted from Kafka, meets the rule
    assert not {e["event_id"] for e in batches[2][0]} & {r["event_id"] for r in seen["shadow"]}
    shadowed, agreement, champion, challenger = _recount_evidence(seen["scored"], seen["shadow"], batches)
    print(f"{shadowed} shadowed events: label agreement {agreement:.3f}, accuracy champion {champion:.3f}, "
          f"challenger {challenger:.3f}; decision: {promoting[0]}")
    assert shadowed >= PROMOTE_AFTER and agreement >= AGREEMENT and challenger >= champion
