"""``streamscore bench [OPTIONS]``: the benchmarks side by side on the running stack.

Its options belong to ``benchmarks.bench``, which is imported only when ``bench`` runs: the rest
of the CLI never loads the benchmarks (``streamscore bench --help`` lists them).
"""

from __future__ import annotations

import argparse

from streamscore.foundation.config import Settings


def register(sub) -> None:
    bench = sub.add_parser("bench", add_help=False, help="benchmarks side by side on the running stack "
                                                         "(streamscore bench --help for its options)")
    bench.set_defaults(handler=run, pass_through=True)  # main() hands it the arguments it does not know


def run(args: argparse.Namespace, settings: Settings) -> int:
    from benchmarks.bench import parse_args
    from benchmarks.bench import run as run_bench

    payload = run_bench(parse_args(args.passed_through), settings)
    return 1 if any(r.get("error") for r in payload["rows"]) else 0
