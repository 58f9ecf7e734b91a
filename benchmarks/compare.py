"""Side by side, in one run, interleaved: the hand-written loops and the streamscore job draining the same backlog.

    python -m benchmarks.compare --events 30000 --repetitions 3
"""

from __future__ import annotations

import argparse
import statistics
import uuid

from benchmarks.handwritten import preload, run_loop
from benchmarks.scoring_knobs import drain_throughput
from connectors.kafka_clients import delete_topics
from streamscore.config import load_settings


def handwritten(settings, events: int, max_batch: int) -> float:
    names = preload(settings, uuid.uuid4().hex[:8], events)
    try:
        return run_loop(settings, *names, events, max_batch=max_batch)["events_per_s"]
    finally:
        delete_topics(settings, list(names))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args(argv)
    settings = load_settings()
    systems = {
        "hand-written loop, 1 record per model call": lambda: handwritten(settings, args.events, 1),
        "hand-written loop, batches of 512": lambda: handwritten(settings, args.events, 512),
        "streamscore scoring job (exactly-once, batch 512)":
            lambda: drain_throughput(settings, 512, args.events)["events_per_s"],
    }
    results: dict[str, list[float]] = {name: [] for name in systems}
    for rep in range(args.repetitions):  # interleaved: A B C, A B C, ...
        for name, run in systems.items():
            results[name].append(run())
            print(f"rep {rep + 1}: {name}: {results[name][-1]:.0f} events/s", flush=True)
    base = statistics.median(results["hand-written loop, 1 record per model call"])
    print(f"\n| system ({args.events} events, transactions/checkpoints every 1 s) | min | median | max | vs per-record |")
    print("|---|---|---|---|---|")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"| {name} | {min(values):,.0f} | {med:,.0f} | {max(values):,.0f} | {med / base:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
