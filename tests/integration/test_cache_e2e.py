"""The Redis prediction cache on the real stack: scores identical with the cache on and off, and
Redis killed (SIGKILL) mid-run changes nothing but the hit ratio.

Three scoring jobs score the same 20,000 events, half of which repeat the features of one of the
first 1,000 (fresh features per run: a random seed, so no earlier run's cache entry can hit):

- (a) cache off and (b) cache on read one events topic, preloaded;
- (c) cache on reads a second topic holding the very same records (same keys, same bytes), fed
  in stages once (a) and (b) are done: a backlog first (Redis holds (b)'s score of every input,
  so every lookup must hit), then a paced stream during which Redis is SIGKILLed and restarted.

(c) runs after (b) on purpose: both use the one Redis, so a kill while (b) runs would make (b) a
second outage run, and a preloaded backlog cannot guarantee that the kill lands while (c) scores.
Redis keeps no data across a restart, so (c)'s hits after the kill can only be its own writes made
after the cache recovered: between 1 and the repeats among those later events.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from benchmarks.feed import with_repeats
from connectors.kafka_reads import read_topic
from connectors.kafka_transactions import TransactionPlan, produce_transactionally
from connectors.schema_registry import SchemaRegistry, topic_reader, topic_writer
from jobs.flink_cluster import cancel_job
from jobs.flink_metrics import scrape
from jobs.submit import scoring_config_from_settings, submit_together
from models.demo_data import generate_events
from models.registry import load_model
from schemas.serde import schema_document
from streamscore.foundation.errors import StreamscoreError
from streamscore.harness.run_evidence import cache_log_events
from streamscore.stack.process import pid_alive, running_pid

pytestmark = pytest.mark.integration

COUNT, REPEAT, BACKLOG_C = 20_000, 0.5, 5_000  # BACKLOG_C: (c)'s records before the kill
RATE_C, KILL_AFTER_S, DOWN_S = 1_000.0, 1.5, 3.0  # the rest of (c)'s records at RATE_C (15 s); Redis down DOWN_S
SETTLE_S = 2.0  # two checkpoint intervals: what a job would still commit, it has
LOG_EVENTS = ["prediction_cache_unavailable", "prediction_cache_recovered"]


@pytest.fixture
def redis_restored(stack):
    """Redis is up again after the test, whatever happened in it."""
    yield stack
    stack.up(only=["redis"])


def test_scores_are_identical_with_the_cache_on_off_and_redis_killed(settings, fresh_topics, redis_restored):
    began = time.monotonic()
    events = _events_with_repeats(COUNT, REPEAT)
    topics = dict(zip(("events", "events_c", "a", "dead_a", "b", "dead_b", "c", "dead_c"),
                      fresh_topics("events", "events-c", "scored-a", "dead-a", "scored-b", "dead-b",
                                   "scored-c", "dead-c")))
    writer = topic_writer(SchemaRegistry(settings.schema_registry), topics["events"], schema_document("event"))
    records = [(e["event_id"].encode(), writer.encode_trusted(e), None) for e in events]  # the same bytes in both
    jobs: dict = {}
    try:
        _submit_all(settings, topics, jobs)
        submitted_s = time.monotonic() - began
        metrics = _run_a_and_b(settings, jobs, topics, records)
        metrics.update(_run_c_through_a_redis_kill(settings, redis_restored, jobs, topics, records))
    finally:
        for job_id, _ in jobs.values():
            _cancel_quietly(settings, job_id)
    # read once every job is cancelled: nothing can be committed after this
    scored = {role: _scored(settings, topics[role], topics[f"dead_{role}"]) for role in "abc"}
    _assert_same_outputs(scored, [e["event_id"] for e in events])
    _assert_cache_metrics(metrics, events)
    print(f"cache e2e: {time.monotonic() - began:.0f}s in all ({submitted_s:.0f}s submitting the three jobs)")


def _events_with_repeats(count: int, fraction: float) -> list[dict]:
    seed = uuid.uuid4().int % 2**31  # fresh inputs: no cache entry of an earlier run can hit
    events = generate_events(count, seed=seed, id_prefix=f"cache-{seed}-")
    with_repeats(events, fraction, seed=seed)
    return events


def _submit_all(settings, topics: dict, jobs: dict) -> None:
    """(a), (b), (c) submitted side by side (each client takes seconds), into ``jobs``."""
    tag = uuid.uuid4().hex[:8]
    configs = {role: scoring_config_from_settings(
        settings, events_topic=topics["events_c" if role == "c" else "events"], scored_topic=topics[role],
        dead_letter_topic=topics[f"dead_{role}"], job_name=f"it-cache-{role}-{tag}",
        startup_mode="earliest-offset", cache_enabled=role != "a") for role in "abc"}
    job_ids = submit_together(settings, list(configs.values()))
    for (role, config), job_id in zip(configs.items(), job_ids, strict=True):
        jobs[role] = job_id, config.job_name


def _run_a_and_b(settings, jobs: dict, topics: dict, records: list) -> dict:
    """(a) and (b) score the preloaded topic: their metrics once all is committed, then they stop."""
    produce_transactionally(settings, topics["events"], records, TransactionPlan(transaction_size=5_000))
    for role in "ab":
        _wait_metric(settings, jobs[role][1], "events_scored", COUNT)
        _wait_committed(settings, topics[role])
    time.sleep(SETTLE_S)  # a late duplicate would be committed by now
    # read after the settle, each job's asserted counter waited for (a scrape once read events_scored at 20,000
    # while cache_lookups still read 18,301: see _wait_metric)
    metrics = {"a": _wait_metric(settings, jobs["a"][1], "events_scored", COUNT),
               "b": _wait_metric(settings, jobs["b"][1], "cache_lookups", COUNT)}
    for role in "ab":  # free the two cores for (c)
        cancel_job(settings, jobs.pop(role)[0])
    return metrics


def _run_c_through_a_redis_kill(settings, stack, jobs: dict, topics: dict, records: list) -> dict:
    """(c): a backlog (all hits), then paced records while Redis is SIGKILLed and restarted."""
    job_name = jobs["c"][1]
    produce_transactionally(settings, topics["events_c"], records[:BACKLOG_C], TransactionPlan(transaction_size=5_000))
    before = _wait_metric(settings, job_name, "cache_lookups", BACKLOG_C)
    with ThreadPoolExecutor(1) as pool:
        feeder = pool.submit(produce_transactionally, settings, topics["events_c"], records[BACKLOG_C:],
                             TransactionPlan(rate=RATE_C, transaction_size=int(RATE_C // 10)))
        time.sleep(KILL_AFTER_S)
        _kill_redis(stack)
        time.sleep(DOWN_S)
        stack.up(only=["redis"])
        feeder.result(timeout=120)
    _wait_committed(settings, topics["c"])
    time.sleep(SETTLE_S)
    after = _wait_metric(settings, job_name, "cache_lookups", COUNT)  # after the settle: see _run_a_and_b
    return {"c_before_kill": before, "c": after, "c_log": cache_log_events(settings, job_name)}


def _cancel_quietly(settings, job_id: str) -> None:
    try:
        cancel_job(settings, job_id)
    except StreamscoreError as exc:  # e.g. it failed already: the assertions tell why
        print(f"cancelling {job_id}: {exc}")


def _kill_redis(stack) -> None:
    spec = stack.service("redis").prepare()[0]
    pid = running_pid(spec)
    assert pid is not None, "no Redis of this stack is running"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:  # our own child when this test session started the stack: reap it
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_metric(settings, job_name: str, name: str, target: int, timeout_s: float = 150.0) -> dict:
    """The job's metrics once ``name`` reaches ``target`` and two scrapes agree (Python metrics arrive per
    bundle, and the TaskManager copies one bundle's counters one by one: a scrape can land in between)."""
    deadline, values, last = time.monotonic() + timeout_s, {}, None
    while time.monotonic() < deadline:
        raw = scrape(settings, job_name)
        values = {key: int(raw.get(key, {}).get("", 0))
                  for key in ("events_scored", "cache_lookups", "cache_hits", "cache_errors")}
        if values[name] >= target and values == last:
            return values
        last = values
        time.sleep(0.5)
    raise AssertionError(f"{job_name}: {name} did not reach {target} within {timeout_s:.0f}s: {values}")


def _wait_committed(settings, scored_topic: str, timeout_s: float = 60.0) -> None:
    """Until every event's score is committed (visible to read_committed consumers)."""
    deadline, seen = time.monotonic() + timeout_s, 0
    while seen < COUNT and time.monotonic() < deadline:
        seen = sum(1 for _ in read_topic(settings, scored_topic, idle_timeout_s=2))
        if seen < COUNT:
            time.sleep(1)


def _scored(settings, scored_topic: str, dead_topic: str) -> list[dict]:
    assert not list(read_topic(settings, dead_topic, idle_timeout_s=1)), f"dead letters in {dead_topic}"
    decode = topic_reader(SchemaRegistry(settings.schema_registry), "scored").decode
    return [decode(r.value) for r in read_topic(settings, scored_topic, idle_timeout_s=2)]


def _assert_same_outputs(scored: dict[str, list[dict]], ids: list[str]) -> None:
    """Every id exactly once per job; score (bit for bit: the cache keeps the float64), label,
    threshold and model version the same in all three."""
    fields = ("score", "label", "threshold", "model_name", "model_version")
    outputs = {}
    for role, records in scored.items():
        counts = Counter(r["event_id"] for r in records)
        assert len(records) == len(ids) and set(counts) == set(ids), f"({role}): ids missing or foreign"
        assert max(counts.values()) == 1, f"({role}): duplicates"
        outputs[role] = {r["event_id"]: tuple(r[f] for f in fields) for r in records}
    for role in "bc":
        differ = [i for i in ids if outputs[role][i] != outputs["a"][i]]
        assert not differ, f"({role}) differs from cache-off (a) on {len(differ)} events, e.g. " \
                           f"{differ[0]}: {outputs[role][differ[0]]} != {outputs['a'][differ[0]]}"
    assert len({o[0] for o in outputs["a"].values()}) > 1000, "scores suspiciously uniform"


def _repeats(events: list[dict]) -> int:
    """Events whose contract inputs equal an earlier event's (the only ones a cold cache can hit)."""
    matrix, rejects, _ = load_model("fraud:1.0.0").contract.to_matrix(events)
    assert not rejects
    rows = np.ascontiguousarray(matrix, dtype=np.float32)
    return len(events) - len({row.tobytes() for row in rows})


def _assert_cache_metrics(m: dict, events: list[dict]) -> None:
    repeats, later_repeats = _repeats(events), _repeats(events[BACKLOG_C:])
    a, b, c0, c = m["a"], m["b"], m["c_before_kill"], m["c"]
    hits_after_kill = c["cache_hits"] - c0["cache_hits"]
    print(f"cache e2e: {COUNT} events, {repeats} repeated inputs ({repeats / COUNT:.3f}); "
          f"(a) {a}; (b) {b}, hit ratio {b['cache_hits'] / COUNT:.3f}; (c) before the kill {c0}; "
          f"(c) {c}, hit ratio {c['cache_hits'] / COUNT:.3f}, hits after the kill {hits_after_kill} "
          f"(at most {later_repeats}); log {m['c_log']}")
    assert a["events_scored"] == COUNT and a["cache_lookups"] == a["cache_hits"] == 0
    # (b), cold cache, Redis healthy: only a repeat can hit, and (almost) every repeat does
    assert b["cache_lookups"] == COUNT and b["cache_errors"] == 0
    assert 0.9 * repeats <= b["cache_hits"] <= repeats
    # (c) before the kill: (b) cached every input, so every lookup hits
    assert c0["cache_lookups"] == c0["cache_hits"] == BACKLOG_C and c0["cache_errors"] == 0
    # (c) after: the outage was seen and logged, and the restarted (empty) Redis served hits again
    assert c["cache_lookups"] == COUNT and c["cache_errors"] >= 1
    assert m["c_log"] == LOG_EVENTS
    assert 0 < hits_after_kill <= later_repeats
