"""Where the scoring step's time goes on the Confluent wire: the Python step alone, per row, on one batch of
sensor readings, as the job runs it (no Kafka, no Flink), and a cProfile of its JVM-decoded form.

    python -m benchmarks.step_profile [--rows 2048] [--repetitions 20]

Rows it measures (microseconds per row, median of the repetitions):
- ``hand_over``: what the job's function does with the Arrow columns before and after scoring
  (``Series.tolist()`` of payloads and coordinates, the output DataFrame), without scoring;
- ``decoded``: ``BatchScorer.score`` on the columns the JVM decoded (the default path);
- ``python_decoded``: the same on the payloads, decoded in Python (fastavro: the path before).
Needs the running stack's Schema Registry (the scorer's schemas are registered as ``submit`` does).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from benchmarks.handwritten import LoopPlan, batch_scorer
from benchmarks.options import RESULTS
from jobs.decoded_batch import DecodedColumns, decoded_field_order
from streamscore.foundation.config import load_settings

MODEL = "sensor:1.0.0"


def decoded_columns(card, readings: list[dict]) -> DecodedColumns:
    """The columns ``decode_confluent`` hands the Python step for ``readings`` (every row decoded)."""
    columns = {name: np.array([r[name] for r in readings], dtype=object if isinstance(readings[0][name], str)
                              else None) for name in decoded_field_order(card)}
    binding = card.event_schema
    return DecodedColumns(np.ones(len(readings), dtype=bool), [None] * len(readings), [None] * len(readings),
                          columns[binding.id_field], columns[binding.time_field] if binding.time_field else None,
                          [columns[name] for name in card.contract.fields])


def _per_row_us(work, rows: int, repetitions: int) -> dict:
    times = []
    for _ in range(repetitions):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1e6 / rows)
    return {"median": round(float(np.median(times)), 2), "min": round(min(times), 2), "max": round(max(times), 2)}


def _hand_over(payloads: pd.Series, rows: int):
    def work():
        payloads.tolist(), pd.Series(np.zeros(rows, dtype=np.int32)).tolist(), pd.Series(np.arange(rows)).tolist()
        pd.DataFrame({"is_scored": [True] * rows, "msg_key": [b"k"] * rows, "body": payloads.tolist(),
                      "shadow_body": [None] * rows})
    return work


def profile(rows: int, repetitions: int) -> dict:
    from models.sensor_demo import generate_readings

    settings = load_settings()
    tag = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    scorer = batch_scorer(settings, LoopPlan("profile-readings", "profile-scored", "profile-dead", model=MODEL))
    readings = [{k: v for k, v in r.items() if k != "is_anomaly"} for r in generate_readings(rows, seed=5)]
    payloads = [scorer.wire.events.encode(r) for r in readings]
    coords = ([0] * rows, list(range(rows)), np.full(rows, 1_764_547_200_000))
    decoded = decoded_columns(scorer.card, readings)
    measured = {
        "hand_over": _per_row_us(_hand_over(pd.Series(payloads), rows), rows, repetitions),
        "decoded": _per_row_us(lambda: scorer.score(payloads, *coords, decoded=decoded), rows, repetitions),
        "python_decoded": _per_row_us(lambda: scorer.score(payloads, *coords), rows, repetitions),
    }
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repetitions):
        scorer.score(payloads, *coords, decoded=decoded)
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    return {"run": f"step-profile-{tag}", "model": MODEL, "rows": rows, "repetitions": repetitions,
            "us_per_row": measured, "cprofile_decoded_top_tottime": text.getvalue().splitlines()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_profile")
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--repetitions", type=int, default=20)
    args = parser.parse_args(argv)
    result = profile(args.rows, args.repetitions)
    path = RESULTS / f"{result['run']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["us_per_row"], indent=2))
    print("\n".join(result["cprofile_decoded_top_tottime"]))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
