"""Delayed labels joined to scored records in the drift sidecar: accuracy windows on the real stack.

6,000 events are scored; then their true labels arrive on a labels topic, the second half with
10 % flipped (concept drift: the features do not move, only the truth does). The labels' times are
1 ms apart from a whole second on, so each 1 s bucket of label time holds 1,000 labels and each
labelled window (>= 1,000 labels, cut over whole buckets in label-time order) one bucket. Two
sidecars read the same topics (two partitions each), one at parallelism 1 keeping its state on Flink's heap and
one at 2 on RocksDB (the default: incremental checkpoints): in both, six
windows close; the first three match the card's held-out accuracy and stay quiet (so they are compared
by count only); the fourth drops ~9 points and raises the same SEVERE accuracy alert (window bounds,
size, accuracy, p-value), the fifth confirms it with the same trigger; the episode then continues
without repeating them (the last two windows close when the watermark has not moved for
label_flush_ms: the labels are over).
"""

from __future__ import annotations

import time
import uuid
import warnings

import pytest
from job_logs import job_log_lines
from topic_reads import decoder_of, demo_events_writer

from connectors.kafka_reads import read_topic
from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from drift.accuracy import ACCURACY_BOUNDS
from drift.settings import Tier
from jobs.flink_cluster import cancel_jobs, job_failures, rest
from jobs.flink_metrics import scrape
from jobs.submit import drift_config_from_settings, scoring_config_from_settings, submit_together
from models.demo_data import generate_labelled
from models.demo_labels import LabelPlan, label_records
from streamscore.harness.labels import produce_labels

pytestmark = pytest.mark.integration

def _read(settings, topic: str, schema: str, idle_s: float) -> list[dict]:
    decode = decoder_of(settings, schema)
    return [decode(r.value) for r in read_topic(settings, topic, idle_timeout_s=idle_s)]


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


TOTAL, FLIP_AFTER, BUCKET_MS = 6_000, 3_000, 1_000
PARALLELISMS = (1, 2)
BACKENDS = {1: "hashmap", 2: "rocksdb"}  # where each keeps its state, and what Flink reports for it
FLINK_BACKEND_NAMES = {"hashmap": "HashMapStateBackend", "rocksdb": "EmbeddedRocksDBStateBackend"}


def test_flipped_labels_raise_the_same_accuracy_alert_and_trigger_at_parallelism_1_and_2(settings, fresh_topics):
    events_t, scored_t, dead_t, labels_t = fresh_topics("events", "scored", "dead", "labels", partitions=2)
    tag = uuid.uuid4().hex[:8]
    scoring = scoring_config_from_settings(settings, events_topic=events_t, scored_topic=scored_t,
                                           dead_letter_topic=dead_t, job_name=f"it-lscore-{tag}",
                                           startup_mode="earliest-offset")
    sidecars = {}
    for parallelism in PARALLELISMS:
        alerts_t, control_t = fresh_topics("alerts", "control")
        sidecars[parallelism] = drift_config_from_settings(
            settings, events_topic=events_t, scored_topic=scored_t, alerts_topic=alerts_t, control_topic=control_t,
            labels_topic=labels_t, job_name=f"it-ldrift-p{parallelism}-{tag}", startup_mode="earliest-offset",
            label_window_events=1000, label_bucket_ms=BUCKET_MS, parallelism=parallelism,
            state_backend=BACKENDS[parallelism])
    events, truth = generate_labelled(TOTAL, seed=31, id_prefix=f"l{tag}-")
    now = int(time.time() * 1000)
    for i, event in enumerate(events):
        event["event_time"] = now + i
    encode = demo_events_writer(settings, events_t).encode
    jobs = submit_together(settings, [scoring, *sidecars.values()])
    try:
        produce_transactionally(settings, events_t, ((e["event_id"].encode(), encode(e), e["event_time"])
                                                     for e in events), TransactionPlan(transaction_size=500))
        _wait_for(lambda: len(_read(settings, scored_t, "scored", 2)) >= TOTAL, 120, "all events scored")
        # the labels become known now: label times from the next whole second on (later than every event's)
        first_label = (int(time.time() * 1000) // BUCKET_MS + 2) * BUCKET_MS
        labels = label_records(events, truth, LabelPlan(delay_ms=first_label - now, flip_rate=0.10,
                                                        flip_after=FLIP_AFTER, seed=5))
        _produce_labels_that_cannot_join(settings, labels_t, tag)  # stamped before first_label: no bucket
        produce_labels(settings, labels, topic=labels_t, transaction_size=500)
        metrics = {p: _labelled_metrics(settings, config.job_name, windows=TOTAL // 1000)
                   for p, config in sidecars.items()}
        found = {p: (_accuracy_alerts(settings, config.alerts_topic),
                     _read(settings, config.control_topic, "control", 3)) for p, config in sidecars.items()}
        failovers = [f for job in jobs for f in job_failures(settings, job)]
        sidecar_failovers = {p: job_failures(settings, job) for p, job in zip(PARALLELISMS, jobs[1:], strict=True)}
        backends = {p: rest(settings, f"/jobs/{job}/checkpoints/config").get("state_backend")
                    for p, job in zip(PARALLELISMS, jobs[1:], strict=True)}
    finally:
        cancel_jobs(settings, jobs)

    assert backends == {p: FLINK_BACKEND_NAMES[b] for p, b in BACKENDS.items()}, backends
    # both sidecars judged the same windows: bounds, sizes, accuracy, p-value, tier; the same trigger
    facts = {p: [_facts(a) for a in alerts] for p, (alerts, _) in found.items()}
    assert facts[1] == facts[2], facts
    assert [_trigger_facts(t) for t in found[1][1]] == [_trigger_facts(t) for t in found[2][1]], found
    for parallelism, (alerts, triggers) in found.items():
        _assert_one_episode(alerts, triggers, first_label, parallelism)
        _assert_metrics(metrics[parallelism], triggers[0]["tier"], failovers)
        _assert_labels_accounted(metrics[parallelism], sidecar_failovers[parallelism])
    # and each rejected record identified: the sidecar's log names its partition, offset and reason
    rejected = _rejected_on_topic(settings, labels_t)
    assert len(rejected) == OUT_OF_RANGE + len(JUNK), rejected
    for config in sidecars.values():
        assert _rejections_logged(settings, config.job_name) == rejected, config.job_name


def _labelled_metrics(settings, job_name: str, windows: int) -> dict:
    """The sidecar's metrics once it judged ``windows`` labelled windows (the last ones when the watermark has
    stood still for label_flush_ms: the labels are over) and they show the trigger and the flush. In one run
    here (2026-12-07) the scrape that first showed six windows had no flush counter yet, though only the flush
    closes the last two (its cause not found): so the wait is for all three, and a flush that never comes
    still fails the test."""
    deadline = time.monotonic() + 120
    metrics = scrape(settings, job_name)
    while metrics.get("drift_labels_windows_closed", {}).get("", 0) < windows or \
            not any(metrics.get("drift_tier_triggers", {}).values()) or \
            not metrics.get("drift_labels_idle_flushes", {}).get("", 0):
        if time.monotonic() > deadline:
            raise AssertionError(f"{job_name}: {windows} labelled windows, a trigger and an idle flush never came: "
                                 f"{dict(metrics)}")
        time.sleep(1)
        metrics = scrape(settings, job_name)
    return metrics


NEVER_SCORED, OUT_OF_RANGE = 7, 3  # labels that cannot join, besides the TOTAL that do
# records on the labels topic that are no label, by the reason the sidecar gives
JUNK = {"bad_marker": b"\x07neither the Confluent wire nor single-object",
        "unknown_schema_id": b"\x00\x7f\xff\xff\xf0a schema id the registry does not know"}
LABELS_READ = TOTAL + NEVER_SCORED + OUT_OF_RANGE + len(JUNK)


def _produce_labels_that_cannot_join(settings, labels_topic: str, tag: str) -> None:
    """Labels for events never scored, labels that are no class (label 7) and records that are no label at all,
    stamped now: every sidecar reads them, joins none, and counts each."""
    now = int(time.time() * 1000)

    def label(i: int, value: int) -> dict:
        return {"event_id": f"never-{tag}-{i}", "correlation_id": None, "label": value, "event_time": now - 1,
                "label_time": now}

    produce_labels(settings, [label(i, i % 2) for i in range(NEVER_SCORED)] +
                   [label(NEVER_SCORED + i, 7) for i in range(OUT_OF_RANGE)], topic=labels_topic)
    produce_transactionally(settings, labels_topic, ((b"junk", payload, now) for payload in JUNK.values()),
                            TransactionPlan())


def _assert_labels_accounted(metrics: dict, failovers: list[str]) -> None:
    """Every labels record is read; the TOTAL labels of scored events join; the rest are rejected by reason or
    left unjoined (read - rejected - joined = the labels for events never scored)."""
    read = metrics.get("drift_labels_read", {}).get("", 0)
    joined = metrics.get("drift_labels_joined", {}).get("", 0)
    rejected = metrics.get("drift_labels_reason_rejected", {})
    expected_rejected = {**dict.fromkeys(JUNK, 1), "out_of_range": OUT_OF_RANGE}
    if failovers:  # this sidecar restarted: its task attempt's counters start again from 0 (see _assert_metrics)
        warnings.warn(f"the sidecar failed over ({failovers[0]}): its labels counted since", stacklevel=1)
        assert joined <= TOTAL and read <= LABELS_READ and set(rejected) <= set(expected_rejected), dict(metrics)
        return
    assert read == LABELS_READ, dict(metrics)
    assert rejected == expected_rejected, dict(metrics)
    assert joined == TOTAL, dict(metrics)  # so read - rejected - joined: the NEVER_SCORED labels


def _rejected_on_topic(settings, labels_topic: str) -> set[tuple[int, int, str]]:
    """(partition, offset, reason) of every labels record that is no label, read back from the topic."""
    decode, junk = decoder_of(settings, "label"), {payload: reason for reason, payload in JUNK.items()}
    out = set()
    for record in read_topic(settings, labels_topic, idle_timeout_s=2):
        reason = junk.get(record.value) or ("out_of_range" if decode(record.value)["label"] not in (0, 1) else None)
        if reason:
            out.add((record.partition, record.offset, reason))
    return out


def _rejections_logged(settings, job_name: str) -> set[tuple[int, int, str]]:
    """(partition, offset, reason) of the ``label_rejected`` lines a sidecar's Python workers logged (a replay
    after a failover writes the same again)."""
    return {(line["source_partition"], line["source_offset"], line["reason_code"])
            for line in job_log_lines(settings, job_name) if line.get("event") == "label_rejected"}


def _accuracy_alerts(settings, topic: str) -> list[dict]:
    return [a for a in _read(settings, topic, "drift_alert", 3) if a["statistic"] == "ACCURACY"]


def _facts(alert: dict) -> tuple:
    sequence = int(alert["window_id"].rsplit(":", 1)[1])
    return (sequence, alert["window_start"], alert["window_end"], alert["window_size"], round(alert["value"], 6),
            alert["p_value"], alert["tier"])


def _trigger_facts(trigger: dict) -> tuple:
    return trigger["tier"], trigger["action"], tuple(trigger["reasons"]), [w.rsplit(":", 1)[1] for w in
                                                                           trigger["window_ids"]]


def _assert_one_episode(alerts: list[dict], triggers: list[dict], first_label: int, parallelism: int) -> None:
    facts = [_facts(a) for a in alerts]
    assert len({a["alert_id"] for a in alerts}) == len(alerts), facts
    # every window is one bucket of 1,000 labels; the first three (clean) are quiet, the fourth (flipped) is
    # SEVERE, and the episode stays there without repeating it
    assert [(f[0], f[1] - first_label, f[2] - first_label, f[3], f[6]) for f in facts] == \
        [(3, 3000, 4000, 1000, "SEVERE")], (parallelism, facts)
    alert = alerts[0]
    assert alert["feature"] == "model_accuracy" and alert["threshold"] == pytest.approx(0.95725)
    # flipped windows sit near 0.866: SEVERE is a drop of more than 5 points below the card's accuracy
    assert 0.80 < alert["value"] < alert["threshold"] - ACCURACY_BOUNDS[1] and alert["p_value"] < 1e-6, facts
    assert len(triggers) == 1, (parallelism, triggers)
    trigger = triggers[0]
    assert trigger["tier"] == "SEVERE" and trigger["action"] == Tier.SEVERE.action != "none", trigger
    assert trigger["reasons"][0].startswith("accuracy 0.8") and "AUC" in trigger["reasons"][0], trigger
    # confirmed by the next flipped window (2 of the last 3 windows agree)
    assert trigger["window_ids"] == [alert["window_id"].replace(":labels:3", ":labels:4")], trigger


def _assert_metrics(metrics: dict, tier: str, failovers: list[str]) -> None:
    """The sidecar's metrics say the same: six labelled windows (the last two closed by the idle flush), no
    label late, the last window's accuracy and AUC (a flipped window: true frauds, ~3 %, keep high scores,
    flipped legitimate events, ~10 %, get random ones: AUC ~0.58, far below the card's 0.85), one SEVERE alert
    and one trigger."""
    assert metrics["drift_labels_windows_closed"][""] == TOTAL // 1000, dict(metrics)
    assert metrics.get("drift_labels_late", {}).get("", 0) == 0, dict(metrics)
    assert metrics["drift_labels_idle_flushes"][""] >= 1, dict(metrics)
    accuracy, auc = metrics["drift_labels_accuracy_milli"][""], metrics["drift_labels_auc_milli"][""]
    assert 800 <= accuracy <= 907 and 450 <= auc <= 750, (accuracy, auc)
    assert metrics["drift_tier_triggers"].get(tier) == 1 and metrics["drift_tier_alerts"].get("SEVERE") == 1
    # Flink's metrics live as long as a task attempt, and a Python counter reaches the reporter only once it
    # moves in that attempt: after a failover (restored from the last checkpoint, so no window is judged
    # twice) the feature windows judged before it are no longer counted (CI on ef9c4f8, parallelism 2: no
    # drift_windows_closed series at all). Then the test says so.
    windows_closed = metrics.get("drift_windows_closed", {}).get("", 0)
    if failovers:
        warnings.warn(f"a job failed over during the test ({'; '.join(failovers[:2])}): "
                      f"{windows_closed} feature windows counted since", stacklevel=1)
    else:
        assert windows_closed >= 3, dict(metrics)
    assert len(metrics["drift_feature_psi_milli"]) == 25  # one gauge per contract feature
