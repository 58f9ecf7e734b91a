"""The ``streamscore`` command. Every failure the user can cause prints one line and exits non-zero."""

from __future__ import annotations

import argparse
import json
import sys
import time

from streamscore.cli_metrics import metrics_port
from streamscore.config import load_settings
from streamscore.errors import StreamscoreError
from streamscore.logs import configure_logging

EXIT_ERROR = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, no usage dump
        print(f"streamscore: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="streamscore", description=__doc__)
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None,
                        help="structured log level (env STREAMSCORE_LOG_LEVEL, default info)")
    parser.add_argument("--log-format", choices=["json", "console"], default=None,
                        help="logs on stderr as JSON lines or for a terminal (env STREAMSCORE_LOG_FORMAT, default json)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    stack = sub.add_parser("stack", help="the local Kafka + Flink + Redis stack "
                                         "(+ Prometheus with STREAMSCORE_PROMETHEUS=on)")
    stack_sub = stack.add_subparsers(dest="action", required=True, parser_class=_Parser)
    up = stack_sub.add_parser("up", help="start what is not running and wait until all answer")
    up.add_argument("--only", nargs="+", choices=["kafka", "flink", "redis", "prometheus"])
    stack_sub.add_parser("down", help="stop what 'up' started")
    status = stack_sub.add_parser("status", help="each service, its address and health")
    status.add_argument("--json", action="store_true")
    logs = stack_sub.add_parser("logs", help="the tail of a service's log")
    logs.add_argument("service", choices=["kafka", "flink", "redis", "prometheus"])
    logs.add_argument("-n", "--lines", type=int, default=50)
    stack_sub.add_parser("config", help="print the effective settings")

    topics = sub.add_parser("topics", help="create or list the topics")
    topics.add_argument("action", choices=["create", "list"])

    consume = sub.add_parser("consume", help="print decoded records of a topic as JSON lines (read_committed)")
    consume.add_argument("topic", help="a topic name or role (events, scored, dead-letter, drift-alerts, control)")
    consume.add_argument("--from-beginning", action="store_true")
    consume.add_argument("--max", type=int, default=None)
    consume.add_argument("--follow", action="store_true")
    consume.add_argument("--idle-timeout", type=float, default=5.0)
    consume.add_argument("--metrics-port", type=metrics_port, default=None, metavar="PORT",
                         help="serve Prometheus metrics on 127.0.0.1:PORT while consuming")

    bench = sub.add_parser("bench", help="benchmarks side by side on the running stack (see benchmarks/bench.py)")
    from benchmarks.options import add_arguments as add_bench_arguments

    add_bench_arguments(bench)

    chaos = sub.add_parser("chaos", help="exactly-once under a fault, on the running stack")
    chaos.add_argument("--fault", required=True, choices=["kill-taskmanager", "kill-python-worker", "restart-kafka",
                                                          "savepoint-restart", "redis-outage"])
    chaos.add_argument("--count", type=int, default=200_000)
    chaos.add_argument("--rate", type=float, default=5000.0)

    from streamscore import commands, drift_commands, job_commands, retrain_commands

    commands.add_produce_parser(sub)
    commands.add_demo_parser(sub)
    job_commands.add_parsers(sub)
    drift_commands.add_parsers(sub)
    retrain_commands.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(fmt=args.log_format, level=args.log_level)
    try:
        settings = load_settings()
        return _dispatch(args, settings)
    except StreamscoreError as exc:
        print(f"streamscore: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("streamscore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `streamscore consume scored | head`
        sys.stderr.close()
        return 0


def _dispatch(args: argparse.Namespace, settings) -> int:
    if args.command == "stack":
        return _stack(args, settings)
    if args.command == "topics":
        return _topics(args, settings)
    if args.command == "consume":
        from streamscore import commands

        return commands.consume(settings, args)
    if args.command == "bench":
        from benchmarks.bench import run as run_bench

        payload = run_bench(args, settings)
        return EXIT_ERROR if any(r.get("error") for r in payload["rows"]) else 0
    if args.command == "chaos":
        from streamscore.chaos import run_fault

        report = run_fault(settings, args.fault, count=args.count, rate=args.rate)
        print(report.line())
        return 0 if report.passed else EXIT_ERROR
    if args.command in ("alerts", "control", "drift"):
        from streamscore import drift_commands

        return drift_commands.dispatch(args, settings)
    if args.command == "retrain":
        from streamscore import retrain_commands

        return retrain_commands.dispatch(args, settings)
    if args.command in ("run", "submit", "jobs", "models"):
        from streamscore import job_commands

        return job_commands.dispatch(args, settings)
    from streamscore import commands

    return commands.dispatch(args, settings)


def _stack(args: argparse.Namespace, settings) -> int:
    from streamscore.stack import Stack

    stack = Stack(settings)
    if args.action == "up":
        began = time.monotonic()
        for report in stack.up(only=args.only):
            verb = "started" if report.started else "already up"
            print(f"{report.service:10s} {verb:10s} ({report.seconds:.1f}s)")
        _print_status(stack.status())
        print(f"stack up in {time.monotonic() - began:.1f}s (state and logs: {settings.home})")
    elif args.action == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.action == "status":
        health = stack.status()
        if args.json:
            print(json.dumps([h.__dict__ for h in health], indent=2))
        else:
            _print_status(health)
        return 0 if all(h.healthy for h in health) else EXIT_ERROR
    elif args.action == "logs":
        print(stack.logs(args.service, args.lines))
    elif args.action == "config":
        print(json.dumps(settings.describe(), indent=2))
    return 0


def _print_status(health) -> None:
    print(f"{'service':10s} {'mode':9s} {'address':22s} {'health':9s} detail")
    for h in health:
        state = "healthy" if h.healthy else ("running" if h.running else "down")
        pids = f" pid {','.join(map(str, h.pids))}" if h.pids else ""
        print(f"{h.service:10s} {h.mode:9s} {h.address:22s} {state:9s} {h.detail}{pids}")


def _topics(args: argparse.Namespace, settings) -> int:
    from connectors.kafka_clients import create_topics, existing_topics

    if args.action == "create":
        for name, outcome in create_topics(settings).items():
            print(f"{name:16s} {outcome}")
    else:
        for name, parts in sorted(existing_topics(settings).items()):
            print(f"{name:16s} {parts} partition(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
