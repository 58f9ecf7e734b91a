"""Model lifecycle on the real stack: promote and attach a shadow while events flow, no restart.

One scoring job on fresh topics follows a fresh control topic. Its registry is a temp folder
holding ``fraud-it`` 1.0.0 (the demo model under another name, so the shared Redis pointer of
``fraud`` is never touched) and 1.1.0 and 1.2.0, challengers retrained from it: three models whose
scores differ, so each record's score says which model scored it. While 8000 events flow, the
CLI path promotes 1.1.0, attaches 1.2.0 in shadow and then sends 30 % of events to 1.2.0 as a
canary; every event is checked against the announced effective times: its version in ``scored``
(for the canary: by its event id's bucket), its record in ``scored-shadow``.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from collections import defaultdict

import pytest
from topic_reads import decoder_of

from connectors.kafka_reads import read_topic
from connectors.redis_client import redis_client
from jobs.flink_cluster import cancel_job, list_jobs
from jobs.flink_metrics import LIFECYCLE_PREFIX, job_series
from jobs.model_router import canary_bucket
from jobs.submit import scoring_config_from_settings, submit_scoring
from models.demo_data import generate_events
from streamscore.foundation.vocabulary import LifecycleAction
from streamscore.harness.traffic import TrafficPlan, TrafficTopics, run_traffic
from streamscore.harness.versions import register_distinct_versions, version_scores
from streamscore.lifecycle import control as control_protocol

pytestmark = pytest.mark.integration

NAME = "fraud-it"
DELAY_MS = 3000  # the job's activation delay; the shadow message uses a longer one (allowed: >= the job's)
# 20 s of traffic at 400/s: the canary (published third, effective 8 s after) must still see > 300 events
# when each of the three changes takes 2-3 s on a busy machine (at 6,000 events the margin was ~3 s)
EVENTS = 8000
KILL_DELAY_MS = 6000  # the kill test's: its promotion must commit within half of it while a consumer follows
# The kill test's checkpoint interval: each transaction stays open this long, so the record that
# triggers the kill is (almost always) in one the kill aborts; at 1 s a busy machine's commit
# sometimes landed between seeing that record and the kill, and nothing was replayed.
KILL_CHECKPOINT_MS = 4000


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    assert register_distinct_versions(root, NAME) == ["1.0.0", "1.1.0", "1.2.0"]
    yield root
    shutil.rmtree(root, ignore_errors=True)


def _lifecycle(settings, action, ref, registry, control, delay_ms, percent=None):
    change = control_protocol.LifecycleChange(LifecycleAction(action), ref, control_topic=control,
                                              registry_dir=str(registry), activation_delay_ms=delay_ms,
                                              percent=percent)
    published = control_protocol.apply_change(settings, change)
    assert published.message["kind"] == LifecycleAction(action).kind


def _lifecycle_metrics(settings, job_name: str, timeout_s: float = 20.0) -> dict[str, dict[tuple, float]]:
    """The job's ``model_lifecycle`` series from Flink's reporter: name -> {(version, role, le): value},
    summed over the job's subtasks."""
    deadline = time.monotonic() + timeout_s
    while True:
        values: dict[str, dict[tuple, float]] = defaultdict(lambda: defaultdict(float))
        for name, labels, value in job_series(settings, job_name, LIFECYCLE_PREFIX):
            values[name][(labels.get("version"), labels.get("role"), labels.get("le"))] += value
        if "version_shadow_label_agreements" in values or time.monotonic() > deadline:
            return values
        time.sleep(1.0)


def _lifecycle_job(settings, fresh_topics, registry, job_name: str, **knobs):
    """Fresh topics and the config of a job following a fresh control topic, pinned to 1.0.0 at start."""
    events, scored, dead, shadow = fresh_topics("events", "scored", "dead", "shadow", partitions=2)
    (control,) = fresh_topics("control")
    config = scoring_config_from_settings(
        settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead, control_topic=control,
        shadow_topic=shadow, model=f"{NAME}:1.0.0", registry_dir=str(registry), job_name=job_name,
        startup_mode="earliest-offset", max_delay_ms=50, **knobs)
    return config, (events, scored, dead, shadow, control)


def test_promotion_and_shadow_while_events_flow(settings, fresh_topics, registry):
    """At parallelism 2 (a subtask per partition): each subtask follows control on its own, and every
    record, whichever subtask scored it, carries the version in force at its event time."""
    tag = uuid.uuid4().hex[:8]
    config, (events, scored, dead, shadow, control) = _lifecycle_job(
        settings, fresh_topics, registry, f"it-lifecycle-{tag}", activation_delay_ms=DELAY_MS, parallelism=2)
    job_id = submit_scoring(settings, config)

    def change_models():  # while the events flow
        time.sleep(1.0)
        _lifecycle(settings, "promote", f"{NAME}:1.1.0", registry, control, DELAY_MS)
        _lifecycle(settings, "shadow-attach", f"{NAME}:1.2.0", registry, control, 5000)
        _lifecycle(settings, "canary", f"{NAME}:1.2.0", registry, control, 8000, percent=30)

    changer = threading.Thread(target=change_models)
    try:
        changer.start()
        plan = TrafficPlan(EVENTS, f"lc-{tag}-", seed=17, rate=400, malformed_every=0, transaction_size=100,
                           timeout_s=90)
        report = run_traffic(settings, plan, TrafficTopics(events, scored, dead))
        changer.join(30)
        decode = decoder_of(settings, "scored")
        shadow_records = [decode(r.value) for r in read_topic(settings, shadow, idle_timeout_s=3)]
        running = {j.job_id: j.state for j in list_jobs(settings)}
        pointer = redis_client(settings).get(control_protocol.pointer_key(NAME))
        metrics = _lifecycle_metrics(settings, config.job_name)
        announced = [decoder_of(settings, "control")(r.value) for r in read_topic(settings, control, idle_timeout_s=2)]
    finally:
        cancel_job(settings, job_id)
        redis_client(settings).delete(control_protocol.pointer_key(NAME))

    assert running.get(job_id) == "RUNNING"  # the same job followed control: no resubmission
    assert pointer == b"1.1.0"
    # every event exactly once, scored by the version in force at its event time
    assert report.scored_duplicates == 0 and not report.dead_letters
    assert sorted(report.scored) == sorted(report.valid_ids)
    records = list(report.scored.values())
    effective = {m["kind"]: json.loads(m["payload_json"])["effective_from_ms"] for m in announced}
    promote_at, shadow_at = effective["MODEL_PROMOTED"], effective["SHADOW_ATTACHED"]
    canary_at = effective["CANARY_WEIGHT"]

    def expected_version(r):
        if r["event_time"] >= canary_at and canary_bucket(r["event_id"]) < 30:
            return "1.2.0"
        return "1.1.0" if r["event_time"] >= promote_at else "1.0.0"

    assert all(r["model_version"] == expected_version(r) for r in records)
    before = sum(r["event_time"] < promote_at for r in records)
    canaried = sum(r["model_version"] == "1.2.0" for r in records)
    in_canary_window = sum(r["event_time"] >= canary_at for r in records)
    assert 300 < before < len(records) - 300, "the promotion must fall inside the traffic"
    assert in_canary_window > 300 and 0.2 < canaried / in_canary_window < 0.4

    # each record's score is its version's model's score, and the models differ: the score says which scored it
    ids = sorted(report.scored)
    by_version = _scores_by_version(registry, generate_events(EVENTS, seed=17, id_prefix=f"lc-{tag}-"), ids)
    for i, r in zip(ids, (report.scored[i] for i in ids)):
        assert abs(r["score"] - by_version[r["model_version"]][i]) <= 1e-6, (i, r)
    apart = [abs(by_version["1.0.0"][i] - by_version[v][i]) > 1e-4 for i in ids for v in ("1.1.0", "1.2.0")]
    assert sum(apart) > 0.9 * len(apart), "the versions' models must score differently"

    # one shadow record per scored event from the shadow's effective time on, by the challenger
    shadow_ids = [r["event_id"] for r in shadow_records]
    assert len(shadow_ids) == len(set(shadow_ids))
    assert set(shadow_ids) == {r["event_id"] for r in records if r["event_time"] >= shadow_at}
    assert 300 < len(shadow_ids) < len(records) - 300
    assert {r["model_version"] for r in shadow_records} == {"1.2.0"}
    for r in shadow_records:
        assert abs(r["score"] - by_version["1.2.0"][r["event_id"]]) <= 1e-6
    champions = [report.scored[r["event_id"]] for r in shadow_records]
    agreeing = sum(r["label"] == c["label"] for r, c in zip(shadow_records, champions))
    canaried_shadowed = sum(c["model_version"] == "1.2.0" for c in champions)

    # lifecycle metrics: events and inference time per version and role, shadow agreement and score difference
    # (Flink's reporter writes version 1.1.0 as 1_1_0, see docs/metrics.md)
    scored_by = metrics["version_role_events_scored"]
    assert scored_by[("1_0_0", "champion", None)] == before
    assert scored_by[("1_1_0", "champion", None)] == len(records) - before - canaried
    assert scored_by[("1_2_0", "champion", None)] == canaried
    assert scored_by[("1_2_0", "shadow", None)] == len(shadow_ids)
    assert metrics["version_shadow_label_agreements"][("1_2_0", None, None)] == agreeing
    assert metrics["version_shadow_label_disagreements"][("1_2_0", None, None)] == len(shadow_ids) - agreeing
    assert metrics["version_shadow_score_diff_milli_count"][("1_2_0", None, None)] == len(shadow_ids)
    # a canaried event's shadow score equals its champion's (both 1.2.0); the rest differ by models
    assert metrics["version_shadow_le_score_diff_milli_bucket"][("1_2_0", None, "1")] >= canaried_shadowed
    assert metrics["version_shadow_le_score_diff_milli_bucket"][("1_2_0", None, "1")] < len(shadow_ids) - 300
    assert metrics["version_role_inference_us_count"][("1_2_0", "shadow", None)] >= 1


def _scores_by_version(registry, events: list[dict], ids: list[str]) -> dict[str, dict[str, float]]:
    """version -> event id -> that version's ONNX score, computed directly with ONNX Runtime."""
    events_by_id = {e["event_id"]: e for e in events}
    picked = [events_by_id[i] for i in ids]
    return {version: dict(zip(ids, version_scores(registry, NAME, version, picked)))
            for version in ("1.0.0", "1.1.0", "1.2.0")}


def _effective_promotion_ms(settings, control: str) -> int | None:
    messages = [decoder_of(settings, "control")(r.value) for r in read_topic(settings, control, idle_timeout_s=1)]
    return next((json.loads(m["payload_json"])["effective_from_ms"] for m in messages
                 if m["kind"] == "MODEL_PROMOTED"), None)


def _wait_for_written(settings, topic: str, predicate, timeout_s: float = 90.0, uncommitted: bool = False) -> None:
    """Until the job has written a scored record matching ``predicate``: one read_uncommitted consumer
    follows the topic, so the match is seen within milliseconds. With ``uncommitted``, only a match
    still in an open transaction counts (its offset at or past the partition's last stable offset)."""
    from confluent_kafka import TopicPartition

    from connectors.kafka_clients import existing_topics
    from connectors.kafka_reads import read_committed_consumer

    decode, deadline = decoder_of(settings, "scored"), time.monotonic() + timeout_s
    consumer = read_committed_consumer(settings, **{"isolation.level": "read_uncommitted",
                                                    "enable.partition.eof": False})
    committed_view = read_committed_consumer(settings)  # its watermark query answers the LSO

    def still_open(msg) -> bool:
        _, last_stable = committed_view.get_watermark_offsets(TopicPartition(topic, msg.partition()),
                                                              timeout=5, cached=False)
        return msg.offset() >= last_stable

    try:
        consumer.assign([TopicPartition(topic, p, -2) for p in range(existing_topics(settings)[topic])])
        while time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=0.1):
                if msg.error() is None and predicate(decode(msg.value())) and (not uncommitted or still_open(msg)):
                    return
    finally:
        consumer.close()
        committed_view.close()
    raise AssertionError(f"no matching record was written to {topic} in {timeout_s:.0f} s")


def _every_attempt(settings, topic: str) -> dict[str, list[dict]]:
    """event id -> every record written for it, committed or aborted (read_uncommitted)."""
    attempts: dict[str, list[dict]] = defaultdict(list)
    decode = decoder_of(settings, "scored")
    for record in read_topic(settings, topic, idle_timeout_s=3, isolation_level="read_uncommitted"):
        scored = decode(record.value)
        attempts[scored["event_id"]].append(scored)
    return attempts


def test_taskmanager_killed_right_after_promotion_replays_with_the_recorded_versions(
        settings, stack, fresh_topics, registry):
    """kill -9 of the TaskManager as soon as the job wrote its first record of the promoted version
    (in a transaction its next checkpoint would have committed): the job recovers from its checkpoint
    and replays; every record (committed, and every aborted attempt too) carries the version in force
    at its event time, so the replay chose the versions the first run chose."""
    from streamscore.harness.fault_actions import FaultContext, kill_taskmanager

    tag = uuid.uuid4().hex[:8]
    config, (events, scored, dead, _shadow, control) = _lifecycle_job(
        settings, fresh_topics, registry, f"it-lifecycle-kill-{tag}", activation_delay_ms=KILL_DELAY_MS,
        checkpoint_interval_ms=KILL_CHECKPOINT_MS)
    ctx = FaultContext(stack, settings, config, submit_scoring(settings, config))
    killed_at: list[int] = []
    failed: list[BaseException] = []

    def promote_then_kill():  # once the job scores, promote; kill as soon as it wrote a 1.1.0 record
        try:
            _wait_for_written(settings, scored, lambda r: True)
            _lifecycle(settings, "promote", f"{NAME}:1.1.0", registry, control, KILL_DELAY_MS)
            _wait_for_written(settings, scored, lambda r: r["model_version"] == "1.1.0", uncommitted=True)
            killed_at.append(int(time.time() * 1000))
            kill_taskmanager(ctx)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failed.append(exc)

    changer = threading.Thread(target=promote_then_kill, daemon=True)
    topics = TrafficTopics(events, scored, dead)
    try:  # the job scores before the paced traffic starts, so the promotion falls inside it
        warm = run_traffic(settings, TrafficPlan(500, f"lw-{tag}-", malformed_every=0, timeout_s=120), topics)
        changer.start()
        plan = TrafficPlan(12_000, f"lk-{tag}-", seed=23, rate=400, malformed_every=0, transaction_size=40,
                           timeout_s=120)
        report = run_traffic(settings, plan, topics)
        changer.join(60)
        attempts = _every_attempt(settings, scored)
        promote_at = _effective_promotion_ms(settings, control)
    finally:
        cancel_job(settings, ctx.job_id)
        redis_client(settings).delete(control_protocol.pointer_key(NAME))

    assert not failed, f"promoting or killing failed: {failed[0]!r}"
    assert killed_at and promote_at, "the TaskManager was never killed"
    assert sorted(warm.scored) == sorted(warm.valid_ids)
    assert report.scored_duplicates == 0 and not report.dead_letters
    assert sorted(report.scored) == sorted(report.valid_ids)

    def expected(r):
        return "1.1.0" if r["event_time"] >= promote_at else "1.0.0"

    records = list(report.scored.values())
    assert all(r["model_version"] == expected(r) for r in records)
    ids = sorted(report.scored)
    by_version = _scores_by_version(registry, generate_events(12_000, seed=23, id_prefix=f"lk-{tag}-"), ids)
    assert all(abs(report.scored[i]["score"] - by_version[report.scored[i]["model_version"]][i]) <= 1e-6
               for i in ids), "a record's score is not its version's model's score"
    assert 300 < sum(r["event_time"] < promote_at for r in records) < len(records) - 300
    # the replay: records written before the kill in transactions that were then aborted, and
    # written again after the recovery -- with the same version (and score) both times
    replayed = {i: copies for i, copies in attempts.items() if len(copies) > 1}
    print(f"kill {killed_at[0] - promote_at} ms after the promotion took effect; {len(replayed)} events "
          f"written more than once (aborted attempts), {sum(len(c) for c in attempts.values())} attempts in all")
    assert replayed, "the kill aborted no transaction: nothing was replayed"
    assert any(expected(c[0]) == "1.1.0" for c in replayed.values()), "the replay did not cross the promotion"
    for copies in replayed.values():
        assert {c["model_version"] for c in copies} == {expected(copies[0])}
        assert max(c["score"] for c in copies) - min(c["score"] for c in copies) <= 1e-6


def test_an_emergency_rollback_needs_no_schema_registry(settings, stack, fresh_topics, registry):
    """A rollback from a fresh process while the registry is down: the control schema's id was remembered
    on this machine when the earlier promotions registered it (connectors.schema_memory), so the CLI
    reads the control history and publishes with it; the record carries that id."""
    import subprocess
    import sys

    from connectors.schema_registry import RegistryUnavailable, SchemaRegistry, subject_for
    from schemas.serde import schema_document
    from streamscore.stack import _specs
    from streamscore.stack.process import stop_process

    (control,) = fresh_topics("control")
    for version in ("1.0.0", "1.1.0"):
        _lifecycle(settings, "promote", f"{NAME}:{version}", registry, control, 1000)
    control_id = SchemaRegistry(settings.schema_registry).lookup(subject_for(control), schema_document("control")).id
    try:
        for spec in _specs(stack.service("registry")):
            stop_process(spec)
        with pytest.raises(RegistryUnavailable):
            SchemaRegistry(settings.schema_registry, timeout_s=2).subjects()
        rolled = subprocess.run([sys.executable, "-m", "streamscore.cli.main", "models", "rollback", NAME,
                                 "--control-topic", control, "--registry-dir", str(registry)],
                                capture_output=True, text=True, timeout=120, check=False)
        assert rolled.returncode == 0, rolled.stderr[-2000:]
        assert "1.0.0" in rolled.stdout, rolled.stdout
    finally:
        stack.up(only=["registry"])
        redis_client(settings).delete(control_protocol.pointer_key(NAME))
    raw = [r.value for r in read_topic(settings, control, idle_timeout_s=2)]
    assert [(value[0], int.from_bytes(value[1:5], "big")) for value in raw] == [(0, control_id)] * 3
    history = control_protocol.read_control(settings, control)
    assert [(m["kind"], m["model_version"]) for m in history] == [
        ("MODEL_PROMOTED", "1.0.0"), ("MODEL_PROMOTED", "1.1.0"), ("MODEL_ROLLED_BACK", "1.0.0")]
