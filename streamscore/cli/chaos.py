"""``streamscore chaos --fault KIND [--fault KIND ...]``: exactly-once under faults, on the running stack."""

from __future__ import annotations

import argparse

from streamscore.foundation.config import Settings
from streamscore.harness.fault_kinds import FaultKind


def register(sub) -> None:
    chaos = sub.add_parser("chaos", help="exactly-once under faults, on the running stack")
    chaos.add_argument("--fault", required=True, action="append", choices=[kind.value for kind in FaultKind],
                       help="a fault to inject; repeat it for several, injected one after the other")
    chaos.add_argument("--count", type=int, default=200_000)
    chaos.add_argument("--rate", type=float, default=5000.0)
    chaos.add_argument("--spacing", type=float, default=25.0, help="seconds between two faults (default 25)")
    chaos.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streamscore.harness.chaos import FaultPlan, run_faults

    first = None if len(args.fault) == 1 else args.spacing / 2
    report = run_faults(settings, FaultPlan(tuple(args.fault), args.count, args.rate, first, args.spacing))
    print(report.line())
    return 0 if report.passed else 1
