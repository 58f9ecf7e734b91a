"""What a submission costs: the same scoring job submitted by ``flink run`` and through the warm submitter,
interleaved on the running stack, each until Flink has the job (``submit_scoring(wait=False)``: preflight,
planning, job graph sent), then run, then cancelled.

    python -m benchmarks.submit_cost [--repetitions 5] [--model fraud:1.0.0]

Rows: ``cli`` (a ``flink run`` client JVM per submission), ``daemon-first`` (the first request of a
fresh daemon: its start and a cold JVM), ``daemon`` (the requests after it). Seconds, median (min-max).
Writes ``benchmarks/results/submit-cost-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from datetime import UTC, datetime

from benchmarks.options import RESULTS
from jobs.flink_cluster import cancel_job, wait_running
from jobs.submit import scoring_config_from_settings, submit_scoring
from jobs.submitter_client import stop_daemon
from streamscore.foundation.config import FlinkSubmitter, Settings, load_settings


def submit_seconds(settings: Settings, submitter: FlinkSubmitter, job_name: str, model: str) -> float:
    """Seconds until Flink has the job; the job is then run and cancelled."""
    chosen = dataclasses.replace(settings, flink_submitter=submitter)
    started = time.perf_counter()
    job_id = submit_scoring(chosen, scoring_config_from_settings(chosen, job_name=job_name, model=model), wait=False)
    seconds = time.perf_counter() - started
    try:
        wait_running(chosen, job_id, timeout_s=120)
    finally:
        cancel_job(chosen, job_id, timeout_s=60)
    return seconds


def summary(samples: list[float]) -> dict:
    return {"median_s": round(statistics.median(samples), 2), "min_s": round(min(samples), 2),
            "max_s": round(max(samples), 2), "samples_s": [round(s, 2) for s in samples]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.submit_cost")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--model", default="fraud:1.0.0")
    args = parser.parse_args(argv)
    settings = load_settings()
    stop_daemon(settings)  # the first daemon request starts a fresh one
    samples: dict[str, list[float]] = {"cli": [], "daemon-first": [], "daemon": []}
    samples["daemon-first"].append(submit_seconds(settings, "daemon", "submit-cost-first", args.model))
    for rep in range(args.repetitions):
        for submitter in ("cli", "daemon"):
            samples[submitter].append(submit_seconds(settings, submitter, f"submit-cost-{submitter}-{rep}", args.model))
            print(f"{submitter} {rep}: {samples[submitter][-1]:.2f} s", flush=True)
    rows = {name: summary(values) for name, values in samples.items()}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    payload = {"run": f"submit-cost-{stamp}", "model": args.model, "repetitions": args.repetitions, "rows": rows,
               "ratio_cli_over_daemon": round(rows["cli"]["median_s"] / rows["daemon"]["median_s"], 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"submit-cost-{stamp}.json").write_text(json.dumps(payload, indent=2) + "\n")
    for name, row in rows.items():
        print(f"{name:13} {row['median_s']:6.2f} s ({row['min_s']:.2f}-{row['max_s']:.2f})")
    print(f"cli / daemon: {payload['ratio_cli_over_daemon']}x; written {RESULTS / f'submit-cost-{stamp}.json'}")


if __name__ == "__main__":
    main()
