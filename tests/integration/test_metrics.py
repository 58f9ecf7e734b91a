"""The scoring job's metrics, scraped from Flink's Prometheus reporter, equal what came out of Kafka."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import pytest

from jobs.flink_cluster import cancel_job
from jobs.flink_metrics import scrape
from jobs.submit import scoring_config_from_settings, submit_scoring
from streamscore.harness.traffic import TrafficPlan, TrafficTopics, run_traffic

pytestmark = pytest.mark.integration

def test_counters_equal_events_produced_scored_and_dead_lettered(settings, fresh_topics):
    events, scored, dead = fresh_topics("events", "scored", "dead")
    tag = uuid.uuid4().hex[:8]
    config = scoring_config_from_settings(settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead,
                                          job_name=f"it-metrics-{tag}", startup_mode="earliest-offset")
    job_id = submit_scoring(settings, config)
    try:
        report = run_traffic(settings, TrafficPlan(20_000, f"m{tag}-", malformed_every=50),
                             TrafficTopics(events, scored, dead))
        deadline, metrics = time.monotonic() + 30, {}
        while time.monotonic() < deadline:  # Python metrics reach the reporter after their bundle
            metrics = scrape(settings, config.job_name)
            if (metrics.get("events_in", {}).get("") == report.produced
                    and metrics.get("latency_ms_count", {}).get("") == len(report.scored)):
                break
            time.sleep(1)
    finally:
        cancel_job(settings, job_id)
    assert report.accounted == report.produced == 20_000
    assert metrics["events_in"][""] == report.produced
    assert metrics["events_scored"][""] == len(report.scored)
    assert sum(metrics["stage_events_dead_lettered"].values()) == len(report.dead_letters) == 400
    by_stage = defaultdict(int)
    for bad in report.malformed:
        by_stage[bad.stage] += 1
    assert {k: int(v) for k, v in metrics["stage_events_dead_lettered"].items()} == dict(by_stage)
    assert 1 <= metrics["model_calls"][""] <= report.produced / 10  # batches, not records
    by_reason = defaultdict(int)
    for bad in report.malformed:
        by_reason[bad.reason_code] += 1
    assert {k: int(v) for k, v in metrics["reason_events_dead_lettered"].items() if v} == dict(by_reason)
    # histograms: one batch-size observation per model call, one latency and score per scored record
    assert metrics["batch_size_count"][""] == metrics["model_calls"][""]
    assert metrics["provider_model_sessions"] == {"CPUExecutionProvider": 1.0}  # which provider really runs
    # Flink's reporter writes le="+Inf" as "_Inf" (Prometheus relabels it back: deploy/prometheus)
    assert metrics["le_batch_size_bucket"]["_Inf"] == metrics["model_calls"][""]
    assert metrics["le_latency_ms_bucket"]["_Inf"] == metrics["latency_ms_count"][""] == len(report.scored)
    assert metrics["score_milli_count"][""] == metrics["le_score_milli_bucket"]["1000"] == len(report.scored)
    # a bucket's series appears once something falls into it (Beam reports only updated counters)
    buckets = [metrics["le_latency_ms_bucket"].get(le, 0.0) for le in ("100", "1000", "30000", "_Inf")]
    assert buckets == sorted(buckets) and buckets[-1] > 0  # cumulative
