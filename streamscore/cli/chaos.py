"""``streamscore chaos --fault KIND``: exactly-once under one fault, on the running stack."""

from __future__ import annotations

import argparse

from streamscore.foundation.config import Settings
from streamscore.harness.fault_kinds import FaultKind


def register(sub) -> None:
    chaos = sub.add_parser("chaos", help="exactly-once under a fault, on the running stack")
    chaos.add_argument("--fault", required=True, choices=[kind.value for kind in FaultKind])
    chaos.add_argument("--count", type=int, default=200_000)
    chaos.add_argument("--rate", type=float, default=5000.0)
    chaos.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streamscore.harness.chaos import run_fault

    report = run_fault(settings, args.fault, count=args.count, rate=args.rate)
    print(report.line())
    return 0 if report.passed else 1
