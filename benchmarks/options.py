"""The options of ``streamscore bench`` (the CLI reads them only when ``bench`` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true", help="a few thousand events per system, 1 repetition")
    parser.add_argument("--repetitions", type=int, default=None)
    parser.add_argument("--systems", nargs="+", default=None, help="only these system keys")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    parser.add_argument("--latency-loads", type=float, nargs="+", default=(), metavar="FRACTION",
                        help="after the half-load latency phase, one more at each of these fractions of the drained "
                             "rate (e.g. 0.4 0.3 0.2: up to what load a latency target holds)")
    parser.add_argument("--note", default="", help="recorded with the results (e.g. 'machine shared')")
