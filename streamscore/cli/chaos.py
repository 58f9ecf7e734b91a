"""``streamscore chaos --fault KIND [--fault KIND ...]``, ``chaos --soak --minutes M`` or ``chaos --overload``:
exactly-once under faults and overload, on the running stack."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from streamscore.cli.arg_types import finite_float
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import ConfigError
from streamscore.harness.fault_kinds import DEMO_MODELS, FRAUD_MODEL, FaultKind


def register(sub) -> None:
    chaos = sub.add_parser("chaos", help="exactly-once under faults, on the running stack")
    chaos.add_argument("--fault", action="append", choices=[kind.value for kind in FaultKind],
                       help="a fault to inject; repeat it for several, injected one after the other")
    chaos.add_argument("--model", default=None, choices=DEMO_MODELS,
                       help="the model scored under the faults (and, in the soak, its versions promoted and rolled "
                            "back): fraud:1.0.0 (default) or sensor:1.0.0, both on the Confluent wire; not with "
                            "--overload")
    chaos.add_argument("--count", type=int, default=None, help="events of a fault run (default 200000)")
    chaos.add_argument("--rate", type=finite_float, default=None,
                       help="events/s (default 5000; the soak 2500, steady beside its own producer and reader "
                            "on a 2-core machine)")
    chaos.add_argument("--spacing", type=finite_float, default=None, help="seconds between two faults (default 25)")
    chaos.add_argument("--soak", action="store_true",
                       help="steady traffic for --minutes with faults of every kind at random times, memory "
                            "and checkpoint sizes sampled; the report goes to --out as JSON")
    chaos.add_argument("--overload", action="store_true",
                       help="measure the scoring job's capacity, then send 2x it for --minutes (default 3) "
                            "between two calm phases at half of it; the report goes to --out as JSON")
    chaos.add_argument("--minutes", type=finite_float, default=None,
                       help="the soak's length (default 30), the overload's (default 3)")
    chaos.add_argument("--seed", type=int, default=1, help="the soak's fault schedule (default 1)")
    chaos.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                       help="where the soak's or the overload's report goes")
    chaos.set_defaults(handler=run)


# the flags each kind of run ignores, so giving one is refused rather than silently dropped
_NOT_FOR = {"soak": ("fault", "count", "spacing"), "overload": ("fault", "model", "count", "rate", "spacing"),
            "faults": ("minutes",)}
_WHY = {"soak": "(its faults are drawn at random times, for --minutes)",
        "overload": "(it scores fraud-wide:1.0.0 at rates from its own measured capacity)",
        "faults": "(a fault run sends --count events)"}


def _checked_mode(args: argparse.Namespace) -> str:
    if args.soak and args.overload:
        raise ConfigError("--soak and --overload are two different runs: give one")
    mode = "soak" if args.soak else "overload" if args.overload else "faults"
    ignored = [f"--{name}" for name in _NOT_FOR[mode] if getattr(args, name) is not None]
    if ignored:
        raise ConfigError(f"{', '.join(ignored)}: not for {'a fault run' if mode == 'faults' else '--' + mode} "
                          f"{_WHY[mode]}")
    for name in ("count", "rate", "spacing", "minutes"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise ConfigError(f"--{name} must be > 0, got {getattr(args, name)}")
    if mode == "faults" and not args.fault:
        raise ConfigError("chaos needs --fault KIND (repeatable), --soak or --overload")
    return mode


def _writable_folder(out: Path) -> None:
    """The report's folder, made and checked before a run of many minutes, not after it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write a report there ({exc.strerror or exc})") from exc


def _or(value, default):
    return default if value is None else value


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streamscore.harness.chaos import FaultPlan, run_faults

    mode = _checked_mode(args)
    if mode in ("soak", "overload"):
        _writable_folder(args.out)
    if mode == "soak":
        return _soak(args, settings)
    if mode == "overload":
        return _overload(args, settings)
    spacing = _or(args.spacing, 25.0)
    first = None if len(args.fault) == 1 else spacing / 2
    plan = FaultPlan(tuple(args.fault), _or(args.count, 200_000), _or(args.rate, 5000.0), first, spacing,
                     model=_or(args.model, FRAUD_MODEL))
    report = run_faults(settings, plan)
    print(report.line())
    return 0 if report.passed else 1


def _soak(args: argparse.Namespace, settings: Settings) -> int:
    from streamscore.harness.soak import SoakRun, run_soak

    try:
        report, path = run_soak(settings, SoakRun(_or(args.minutes, 30.0), _or(args.rate, 2500.0), args.seed,
                                                  _or(args.model, FRAUD_MODEL)),
                                args.out)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    print(report.line())
    print(f"soak report: {path}")
    return 0 if report.passed else 1


def _overload(args: argparse.Namespace, settings: Settings) -> int:
    from streamscore.harness.overload import OverloadPlan, run_overload

    try:
        report, path = run_overload(settings, OverloadPlan(overload_s=_or(args.minutes, 3.0) * 60.0), args.out)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    print(f"capacity {report['capacity_events_per_s']:,.0f} events/s")
    for phase in report["phases"]:
        print(f"{phase['name']}: target {phase['target_rate']:,.0f}/s, sent {phase['sent_rate']:,.0f}/s, "
              f"produced {phase['produced']}, missing {phase['missing']}, duplicates {phase['duplicates']}, "
              f"p50/p99/max {phase['p50_ms']}/{phase['p99_ms']}/{phase['max_ms']} ms, drained {phase['drain_s']} s "
              f"after the last send, RSS max MiB {phase['rss_max_mib']}")
    print(f"checks {report['checks']}; overload report: {path} -> {'PASS' if report['passed'] else 'FAIL'}")
    return 0 if report["passed"] else 1
