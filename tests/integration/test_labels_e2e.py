"""Delayed labels joined to scored records in the drift sidecar: accuracy windows on the real stack.

6,000 events are scored; then their true labels arrive on a labels topic, the second half with
10 % flipped (concept drift: the features do not move, only the truth does). Windows of 1,000
labelled events: at parallelism 1 the first three match the card's held-out accuracy and stay quiet;
the fourth drops ~9 points and raises one SEVERE accuracy alert and one trigger; the episode then
continues without repeating them. At parallelism 2 the windows mix the two partitions' labels in the
order their subtasks deliver them: the drop is still caught at SEVERE and retrains once.
"""

from __future__ import annotations

import time
import uuid
import warnings

import pytest
from topic_reads import decoder_of, demo_events_writer

from connectors.kafka_clients import produce_transactionally
from connectors.kafka_reads import read_topic
from drift.accuracy import ACCURACY_BOUNDS
from drift.settings import Tier
from jobs.flink_cluster import cancel_jobs, job_failures
from jobs.flink_metrics import scrape
from jobs.submit import drift_config_from_settings, scoring_config_from_settings, submit_together
from models.demo_data import generate_labelled
from models.demo_labels import LabelPlan, label_records
from streamscore.harness.labels import produce_labels

pytestmark = pytest.mark.integration

TOTAL, FLIP_AFTER = 6_000, 3_000


def _read(settings, topic: str, schema: str, idle_s: float) -> list[dict]:
    decode = decoder_of(settings, schema)
    return [decode(r.value) for r in read_topic(settings, topic, idle_timeout_s=idle_s)]


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


@pytest.mark.parametrize("parallelism", [1, 2])
def test_flipped_labels_raise_one_accuracy_alert_and_trigger(settings, fresh_topics, parallelism):
    """At parallelism 2 the sidecar's sources, join and labelled partial counts run on two subtasks over two
    partitions of each topic; the merge and the judgement stay one (one judgement per window, window ids in
    sequence, one trigger per episode), but which labels share a count window follows the subtasks' pace."""
    events_t, scored_t, dead_t, alerts_t, control_t, labels_t = fresh_topics(
        "events", "scored", "dead", "alerts", "control", "labels", partitions=parallelism)
    tag = uuid.uuid4().hex[:8]
    scoring = scoring_config_from_settings(settings, events_topic=events_t, scored_topic=scored_t,
                                           dead_letter_topic=dead_t, job_name=f"it-lscore-{tag}",
                                           startup_mode="earliest-offset")
    drift = drift_config_from_settings(settings, events_topic=events_t, scored_topic=scored_t, alerts_topic=alerts_t,
                                       control_topic=control_t, labels_topic=labels_t, job_name=f"it-ldrift-{tag}",
                                       startup_mode="earliest-offset", label_window_events=1000,
                                       parallelism=parallelism)
    events, truth = generate_labelled(TOTAL, seed=31, id_prefix=f"l{tag}-")
    now = int(time.time() * 1000)
    for i, event in enumerate(events):
        event["event_time"] = now + i
    encode = demo_events_writer(settings, events_t).encode
    jobs = submit_together(settings, [scoring, drift])
    try:
        produce_transactionally(settings, events_t, ((e["event_id"].encode(), encode(e), e["event_time"])
                                                     for e in events), transaction_size=500)
        _wait_for(lambda: len(_read(settings, scored_t, "scored", 2)) >= TOTAL, 120, "all events scored")
        labels = label_records(events, truth, LabelPlan(delay_ms=2000, flip_rate=0.10, flip_after=FLIP_AFTER, seed=5))
        produce_labels(settings, labels, topic=labels_t, transaction_size=500)
        _wait_for(lambda: _read(settings, control_t, "control", 2), 120, "an accuracy trigger")
        # at parallelism 2 the trigger can come at MODERATE, its episode's SEVERE alert in a later window
        _wait_for(lambda: any(a["statistic"] == "ACCURACY" and a["tier"] == "SEVERE"
                              for a in _read(settings, alerts_t, "drift_alert", 2)), 60, "a SEVERE accuracy alert")
        time.sleep(5)  # later windows would add (duplicate) alerts now
        alerts = [a for a in _read(settings, alerts_t, "drift_alert", 3) if a["statistic"] == "ACCURACY"]
        triggers = _read(settings, control_t, "control", 3)
        deadline = time.monotonic() + 20  # Python metrics reach the reporter after their bundle
        metrics = scrape(settings, drift.job_name)
        while not (any(metrics.get("drift_tier_triggers", {}).values()) and metrics.get("drift_windows_closed")) \
                and time.monotonic() < deadline:
            time.sleep(1)
            metrics = scrape(settings, drift.job_name)
        failovers = job_failures(settings, jobs[1])
    finally:
        cancel_jobs(settings, jobs)

    # Windows close at >= 1000 joined rows on Arrow-batch boundaries, so the window where the flip begins
    # mixes clean and flipped labels: it may alert at a lower tier, escalated by a later one, never lowered, at
    # parallelism 1, where the labels reach the one subtask in the order they were produced. At 2 a count window
    # takes the two subtasks' partials in the order they come, and one subtask can run thousands of labels ahead of
    # the other, so which labels share a window is not the produced order: windows may mix one partition's
    # flipped labels with the other's clean ones anywhere in the run, and tiers go up and down (clean-clone
    # runs: 37f43ba SEVERE 0.904, MODERATE 0.911, SEVERE 0.871; fd3d247 SEVERE 0.891 at window 1, then
    # MODERATE 0.912 at window 4). What holds at either parallelism: the drop is caught below the SEVERE bound,
    # alert ids never repeat, window ids rise, and the episode retrains once.
    facts = [(a["window_id"], a["window_size"], round(a["value"], 3), a["tier"]) for a in alerts]
    tiers = [("SMALL", "MODERATE", "SEVERE").index(a["tier"]) for a in alerts]
    sequences = [int(a["window_id"].rsplit(":", 1)[1]) for a in alerts]
    in_produced_order = parallelism == 1
    assert len({a["alert_id"] for a in alerts}) == len(alerts), facts
    # one key for every accuracy alert, so one partition, in the order they were judged
    assert sequences == sorted(set(sequences)), facts
    assert all(a["feature"] == "model_accuracy" and a["window_size"] >= 1000 for a in alerts)
    assert all(a["threshold"] == pytest.approx(0.95725) for a in alerts)
    # flipped windows sit near 0.866; a window mixing clean and flipped labels is SEVERE when it drops more than
    # 5 points below the card's accuracy (the alert's threshold): below 0.90725, so 0.907 is SEVERE (CI on a4a65d7)
    worst = min(alerts, key=lambda a: a["value"])
    severe_below = worst["threshold"] - ACCURACY_BOUNDS[1]
    assert worst["tier"] == "SEVERE" and 0.80 < worst["value"] < severe_below and worst["p_value"] < 1e-6, facts
    if in_produced_order:
        # the first window (1000+ true labels) is quiet; the episode escalates to SEVERE and stays there
        assert alerts[-1] is worst and tiers == sorted(tiers) and sequences[0] >= 1, facts
    # at 2 a subtask's partial can run ahead of the other's into the flipped labels, so window 0 may mix some in
    # and alert, but never at SEVERE: a partial is one Arrow batch (<= 1,000 rows) of one subtask, so window 0
    # holds < 2,000 of the earliest labels, at most about a third from the flipped half (a drop of 2-3 points)
    assert sequences[0] >= 1 or alerts[0]["tier"] != "SEVERE", facts
    assert len(triggers) == 1, triggers
    trigger = triggers[0]
    # one trigger per episode, at the episode's worst tier when it is confirmed: in produced order the flipped
    # window's (SEVERE); at 2 the windows that confirm the episode may still mix clean and flipped labels (a
    # MODERATE trigger, its SEVERE alert later in the episode, or in an earlier one a quiet window ended)
    assert trigger["tier"] == "SEVERE" or not in_produced_order, trigger
    assert trigger["action"] == Tier[trigger["tier"]].action != "none", trigger
    # the confirming window's accuracy: a flipped one in produced order; at 2 it may still mix clean labels in
    # (a run here, 2026-12-05: a MODERATE trigger at 0.919)
    assert trigger["reasons"][0].startswith("accuracy 0.8" if in_produced_order else "accuracy 0.")
    assert "AUC" in trigger["reasons"][0]
    # the sidecar's metrics say the same: labelled windows, the last accuracy, alerts and the trigger by tier
    assert metrics["drift_labels_windows_closed"][""] >= 3, dict(metrics)
    # the last closed window's accuracy and AUC: a flipped window in produced order (true frauds, ~3 %, keep
    # high scores, flipped legitimate events, ~10 %, get random ones: AUC ~0.58, far below the card's 0.85);
    # at 2 the last window may mix clean labels in
    accuracy, auc = metrics["drift_labels_accuracy_milli"][""], metrics["drift_labels_auc_milli"][""]
    assert (800 <= accuracy <= 907 and 450 <= auc <= 750) if in_produced_order else \
        (800 <= accuracy <= 1000 and 450 <= auc <= 1000), (accuracy, auc)
    assert metrics["drift_tier_triggers"].get(trigger["tier"]) == 1
    severe = sum(a["tier"] == "SEVERE" for a in alerts)
    assert metrics["drift_tier_alerts"].get("SEVERE") == severe and (severe == 1 or not in_produced_order), facts
    # a count window closes on the partial that takes it to >= 1,000 events, and a partial is one Arrow batch
    # (<= 1,000 rows) of one subtask, so each closed window holds < 2,000 and the open one < 1,000:
    # at least ceil((6,000 - 999) / 1,999) = 3 windows close, whatever the parallelism (CI on 5e1ca7a saw 4
    # at parallelism 2, where two subtasks' partials of up to 1,000 rows each meet in one window)
    # Flink's metrics live as long as a task attempt, and a Python counter reaches the reporter only once it
    # moves in that attempt: after a failover (restored from the last checkpoint, so no window is judged
    # twice) the feature windows judged before it are no longer counted, the labelled ones judged after it
    # are (CI on ef9c4f8, parallelism 2: no drift_windows_closed series at all). Then the test says so.
    windows_closed = metrics.get("drift_windows_closed", {}).get("", 0)
    if failovers:
        warnings.warn(f"drift job failed over during the test ({'; '.join(failovers[:2])}): "
                      f"{windows_closed} feature windows counted since", stacklevel=1)
    else:
        assert windows_closed >= 3, dict(metrics)
    assert len(metrics["drift_feature_psi_milli"]) == 25  # one gauge per contract feature
