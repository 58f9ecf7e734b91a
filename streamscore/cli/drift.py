"""CLI for drift: ``alerts``, ``control`` (tables or JSON lines) and ``drift report`` (offline, over a file)."""

from __future__ import annotations

import argparse
import json
import sys

from streamscore.foundation.config import Settings
from streamscore.foundation.errors import InputError, StreamscoreError


def register(sub) -> None:
    for name, helptext in (("alerts", "drift alerts (drift-alerts topic)"),
                           ("control", "retraining triggers and model messages (control topic)")):
        parser = sub.add_parser(name, help=helptext)
        parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
        parser.add_argument("--follow", action="store_true")
        parser.add_argument("--max", type=int, default=None)
        parser.set_defaults(handler=lambda args, settings: show_topic(settings, args))
    drift = sub.add_parser("drift", help="offline drift statistics")
    drift.add_argument("action", choices=["report"])
    drift.add_argument("--model", default="fraud:1.0.0")
    drift.add_argument("--input", required=True, help="JSON lines of events")
    drift.add_argument("--window", type=int, default=None, help="events per window (default: the whole file)")
    drift.add_argument("--json", action="store_true")
    drift.set_defaults(handler=lambda args, settings: drift_report(args))


_ALERT_COLUMNS = ("window_start", "feature", "tier", "statistic", "value", "threshold", "p_value", "window_size")
_CONTROL_COLUMNS = ("emitted_time", "kind", "model_version", "tier", "action", "reasons")


def show_topic(settings: Settings, args: argparse.Namespace) -> int:
    from connectors.kafka_reads import read_topic
    from connectors.schema_registry import reader_of

    role = "drift_alerts" if args.command == "alerts" else "control"
    name = "drift_alert" if args.command == "alerts" else "control"
    serde = reader_of(settings.schema_registry, name)
    columns = _ALERT_COLUMNS if args.command == "alerts" else _CONTROL_COLUMNS
    if not args.json:
        print("  ".join(f"{c:>14s}" for c in columns))
    for record in read_topic(settings, settings.topic(role).name, max_records=args.max, follow=args.follow,
                             idle_timeout_s=3):
        decoded = serde.decode(record.value)
        if args.json:
            print(json.dumps(decoded), flush=True)
        else:
            print("  ".join(f"{_cell(decoded[c]):>14s}" for c in columns), flush=True)
    return 0


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "; ".join(value)
    return str(value)


def drift_report(args: argparse.Namespace) -> int:
    """The sidecar's statistics over a file of events, per window: for notebooks and CI. Notes (events
    the contract rejected, a last partial window) go to stderr, so ``--json`` output stays JSON lines."""
    from drift.decision import DriftDetector
    from models.registry import load_model
    from models.runtime import OnnxScorer
    from schemas.json_lines import read_json_lines

    if args.window is not None and args.window < 1:
        raise InputError(f"--window must be >= 1, got {args.window}")
    model = load_model(args.model)
    matrix, rejects, _ = model.contract.to_matrix(read_json_lines(args.input))
    if not len(matrix):
        raise StreamscoreError(f"{args.input}: no event satisfies the {model.card.ref} contract "
                               f"({len(rejects)} rejected)")
    size = args.window or len(matrix)
    if size > len(matrix):
        raise InputError(f"--window {size}: {args.input} has {len(matrix)} events the {model.card.ref} contract "
                         f"accepts, fewer than one window")
    scores = OnnxScorer(model).predict_batch(matrix)  # the sidecar watches predictions too
    detector = DriftDetector.for_card(model.card)
    whole = len(matrix) - len(matrix) % size
    for start in range(0, whole, size):
        window = slice(start, start + size)
        verdict = detector.advance(detector.judge.judge(matrix[window], scores[window]))
        _print_verdict(verdict, args.json)
    if whole < len(matrix):
        print(f"# the last {len(matrix) - whole} event(s) fill no whole window of {size} and were not judged",
              file=sys.stderr)
    if rejects:
        print(f"# {len(rejects)} event(s) broke the contract and were left out", file=sys.stderr)
    return 0


def _print_verdict(verdict, as_json: bool) -> None:
    rows = [{"window": verdict.window_id, "feature": t.feature, "test": t.test, "psi": round(t.psi, 5),
             "psi_critical": round(t.psi_critical, 5), "statistic": round(t.statistic, 5),
             "p_adjusted": t.p_adjusted, "tier": t.tier.name} for t in verdict.tests]
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    print(f"window {verdict.window_id}: {verdict.size} events, tier {verdict.tier.name}"
          + (f" ({verdict.reason})" if verdict.too_small else ""))
    for row in rows:
        print(f"  {row['feature']:26s} {row['test']:4s} PSI {row['psi']:.4f} (critical {row['psi_critical']:.4f}) "
              f"stat {row['statistic']:.4f} p_adj {row['p_adjusted']:.2e} {row['tier']}")
