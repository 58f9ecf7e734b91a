"""One dead-lettered event followed by its correlation id: producer log -> scoring job log -> dead-letter record.

The producer (the CLI, at debug level) logs each event's ids; the scoring job logs one line per
dead letter with the job, model, batch id and the event's correlation id; the dead-letter record
carries the same id. No line carries the payload.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import uuid

import pytest
from job_logs import job_log_lines, json_lines
from topic_reads import decoder_of

from connectors.kafka_reads import read_topic
from jobs.flink_cluster import cancel_job
from jobs.submit import scoring_config_from_settings, submit_scoring
from models.demo_data import generate_events

pytestmark = pytest.mark.integration


def test_a_dead_letter_is_traceable_by_correlation_id_from_producer_log_to_dead_letter(
        settings, fresh_topics, tmp_path):
    events_t, scored_t, dead_t = fresh_topics("events", "scored", "dead")
    tag = uuid.uuid4().hex[:8]
    config = scoring_config_from_settings(settings, events_topic=events_t, scored_topic=scored_t,
                                          dead_letter_topic=dead_t, job_name=f"it-trace-{tag}",
                                          startup_mode="earliest-offset")
    events = generate_events(5, seed=9, id_prefix=f"t{tag}-")
    events[2]["amount"] = math.nan  # valid Avro, breaks the model's contract: a CONTRACT dead letter
    bad = events[2]
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in events))
    job_id = submit_scoring(settings, config)
    try:
        produced = subprocess.run([sys.executable, "-m", "streamscore.cli.main", "--log-level", "debug", "produce",
                                   "--input", str(source), "--topic", events_t, "--quiet"],
                                  capture_output=True, text=True, timeout=120, check=False)
        assert produced.returncode == 0, produced.stderr[-2000:]
        dead = decoder_of(settings, "dead_letter")
        deadline, letters = time.monotonic() + 60, []
        while not letters and time.monotonic() < deadline:
            letters = [dead(r.value) for r in read_topic(settings, dead_t, idle_timeout_s=2)]
        deadline, job_lines = time.monotonic() + 30, []
        while not job_lines and time.monotonic() < deadline:
            job_lines = [r for r in job_log_lines(settings, config.job_name) if r.get("event") == "dead_lettered"]
            time.sleep(1)
    finally:
        cancel_job(settings, job_id)

    # 1. the producer's line for the bad event
    sent = [r for r in json_lines(produced.stderr) if r.get("event") == "event_sent"]
    assert len(sent) == 5, produced.stderr[-2000:]
    mine = [r for r in sent if r["event_id"] == bad["event_id"]]
    assert len(mine) == 1 and mine[0]["correlation_id"] == bad["correlation_id"] and mine[0]["topic"] == events_t
    correlation_id = mine[0]["correlation_id"]
    # 2. the scoring job's line for it: job, model, batch, stage and reason code, and no payload
    traced = [r for r in job_lines if r.get("correlation_id") == correlation_id]
    assert len(traced) == 1, job_lines
    line = traced[0]
    assert line["model"] == "fraud:1.0.0" and line["batch_id"].startswith(config.job_name)
    assert (line["stage"], line["reason_code"], line["event_id"]) == ("CONTRACT", "not_finite", bad["event_id"])
    assert not {"payload", "original_bytes", "amount"} & set(line)
    # 3. the dead-letter record
    assert [(d["correlation_id"], d["stage"]) for d in letters] == [(correlation_id, "CONTRACT")]
    assert letters[0]["reason"].startswith("contract: amount: NaN")
