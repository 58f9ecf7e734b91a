"""One single-process system under test, in its own process (so its CPU and memory are its own).

    python -m benchmarks.worker {score|passthrough|quix} --source T --scored T --dead T
        [--max-batch N] [--commit-interval-ms 1000] [--model fraud:1.0.0]

Runs until SIGTERM, then commits what it has and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import threading
import uuid

from streamscore.foundation.config import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("kind", choices=["score", "passthrough", "quix"])
    parser.add_argument("--source", required=True)
    parser.add_argument("--scored", required=True)
    parser.add_argument("--dead", required=True)
    parser.add_argument("--max-batch", type=int, default=1)
    parser.add_argument("--commit-interval-ms", type=int, default=1000)
    parser.add_argument("--model", default="fraud:1.0.0", help="the model the score loop runs (a bound model: "
                                                                "its events on the Confluent wire)")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.kind == "quix":
        from benchmarks.quix_app import run

        run(settings, args.source, args.scored, args.dead, group=f"bench-quix-{uuid.uuid4().hex[:8]}",
            commit_interval_ms=args.commit_interval_ms)
        return 0
    from benchmarks.handwritten import LoopPlan, run_loop

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_loop(settings, LoopPlan(args.source, args.scored, args.dead, max_batch=args.max_batch,
                                score=args.kind == "score", commit_interval_ms=args.commit_interval_ms,
                                model=args.model), should_stop=stop.is_set)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
