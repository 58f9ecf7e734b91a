"""Superseded by ``streamscore bench``; kept as a shortcut to its three original rows.

    python -m benchmarks.compare [--repetitions 3]

= ``streamscore bench --systems handwritten-1 handwritten-batched streamscore-eo``
"""

from __future__ import annotations

import argparse

from benchmarks.bench import run
from benchmarks.options import add_arguments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compare")
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.systems = args.systems or ["handwritten-1", "handwritten-batched", "streamscore-eo"]
    payload = run(args)
    return 1 if any(r.get("error") for r in payload["rows"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
