"""Scale-out on the real engine: the scoring job at parallelism 2 and 4 over 4 partitions, on a session
cluster of two TaskManagers; every record accounted by identity (scored or dead-lettered exactly once,
each dead letter tied to its record by source partition and offset), the subtasks spread over both
TaskManagers; and the drift sidecar at parallelism 2 judging the same windows as at 1.

The suite's stack has one TaskManager; this module starts a second one on it
(``STREAMSCORE_FLINK_TASKMANAGERS=2`` for ``stack up``) and stops it afterwards.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from drift_runs import assert_one_episode_and_trigger, judged_features, run_sidecars
from topic_reads import transactional_ids

from jobs.flink_cluster import cancel_jobs, rest
from jobs.submit import scoring_config_from_settings, submit_together
from streamscore.harness.accounting import account, read_identities
from streamscore.harness.traffic import TrafficPlan, TrafficTopics, run_traffic
from streamscore.stack import Stack
from streamscore.stack.process import stop_process
from streamscore.stack.services import FlinkService

pytestmark = pytest.mark.integration

PARTITIONS, EVENTS, RATE = 4, 12_000, 2_000.0


@pytest.fixture(scope="module")
def two_taskmanagers(settings, stack):
    """The suite's stack with a second TaskManager for this module (``stack up`` waits until both report)."""
    wider = dataclasses.replace(settings, flink_taskmanagers=2)
    Stack(wider).up(only=["flink"])
    yield wider
    stop_process(FlinkService(wider).process_spec("taskmanager", 2))


def _taskmanagers_of(settings, job_id: str) -> set[str]:
    """The TaskManagers running the job's subtasks, as Flink's REST API reports them."""
    found = set()
    for vertex in rest(settings, f"/jobs/{job_id}")["vertices"]:
        for subtask in rest(settings, f"/jobs/{job_id}/vertices/{vertex['id']}")["subtasks"]:
            found.add(subtask.get("taskmanager-id") or subtask.get("endpoint") or subtask.get("host"))
    return found


def test_parallelism_2_and_4_score_each_record_exactly_once_over_two_taskmanagers(two_taskmanagers, fresh_topics):
    settings = two_taskmanagers
    tag = uuid.uuid4().hex[:8]
    topics, configs = {}, []
    for parallelism in (2, 4):
        events, scored = fresh_topics("events", "scored", partitions=PARTITIONS)
        (dead,) = fresh_topics("dead")
        topics[parallelism] = TrafficTopics(events, scored, dead)
        configs.append(scoring_config_from_settings(settings, events_topic=events, scored_topic=scored,
                                                    dead_letter_topic=dead, job_name=f"it-scale-p{parallelism}-{tag}",
                                                    startup_mode="earliest-offset", parallelism=parallelism))
    runs = dict(zip(topics, zip(topics.values(), submit_together(settings, configs), strict=True), strict=True))
    try:
        placed = {p: _taskmanagers_of(settings, job_id) for p, (_, job_id) in runs.items()}
        reports = {}
        for parallelism, (topics, _) in runs.items():
            plan = TrafficPlan(EVENTS, f"p{parallelism}-{tag}-", rate=RATE, malformed_every=200,
                               transaction_size=200, timeout_s=120)
            report = run_traffic(settings, plan, topics)
            identities = read_identities(settings, topics.events, [*report.valid_ids, *report.malformed_keys],
                                         report.malformed_keys)
            reports[parallelism] = account(identities, report.scored, report.scored_duplicates,
                                           report.dead_letters)
        job_names = {p: f"it-scale-p{p}-{tag}" for p in runs}
        transactions = {(p, sink): transactional_ids(settings, f"{job_names[p]}-{sink}-")
                        for p in runs for sink in ("scored", "dead-letter")}
    finally:
        cancel_jobs(settings, [job_id for _, job_id in runs.values()])
    for parallelism, found in reports.items():
        assert found.clean, (parallelism, found)
        assert (found.produced, found.scored, found.dead_lettered) == (EVENTS, EVENTS - EVENTS // 200, EVENTS // 200)
        assert len(placed[parallelism]) == 2, (parallelism, placed[parallelism])  # both TaskManagers work
        # each sink subtask writes under its own transactional ids (<prefix>-<subtask>-<n>): every subtask
        # of both sinks must appear in the broker's transaction log
        for sink in ("scored", "dead-letter"):
            ids = transactions[(parallelism, sink)]
            assert _subtasks(ids) == set(range(parallelism)), (parallelism, sink, ids)
            # pooled: a subtask reuses the few ids no open transaction holds, however many checkpoints the
            # run took (a new id per checkpoint, the connector's default, left one per second on the broker)
            assert len(ids) <= 5 * parallelism, (parallelism, sink, sorted(ids))


def _subtasks(ids: set[str]) -> set[int]:
    """The subtask index of each Flink Kafka sink transactional id ``<prefix>-<subtask>-<n>``."""
    return {int(i.rsplit("-", 2)[1]) for i in ids}


def test_the_drift_sidecar_judges_the_same_windows_at_parallelism_1_2_and_rescaled(two_taskmanagers, fresh_topics):
    """Event-time windows of 2 s over 2 partitions scored at parallelism 2: a sidecar rescaled 1 -> 2 -> 1
    through savepoints while the events flow (at 2: two subtasks counting, one judging, on the heap instead
    of RocksDB) raises the very feature alerts (same windows, sizes, tiers, PSI to 1e-9) and trigger one left
    at 1 does."""
    sidecars = {"p1": {"window_kind": "time"}, "rescaled": {"window_kind": "time"}}
    found, drift_started_ms = run_sidecars(two_taskmanagers, fresh_topics, sidecars, partitions=2,
                                           scoring_parallelism=2, rescaled="rescaled")
    assert_one_episode_and_trigger("time", *found["p1"], drift_started_ms)
    # rescaled 1 -> 2 -> 1 through savepoints while the events flowed (restored at 2 about 4 s in, it
    # catches up on the drifted events at parallelism 2): its open windows' partial counts travelled in
    # the savepoints, so no window was judged twice (alert ids are unique) or lost, and parallelism 2
    # judged them as parallelism 1 did
    assert_one_episode_and_trigger("time", *found["rescaled"], drift_started_ms)
    assert judged_features(*found["rescaled"]) == judged_features(*found["p1"]), "the rescaled sidecar judged otherwise"
