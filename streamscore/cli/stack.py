"""``streamscore stack up | down | status | logs | config``: the local Kafka + Flink + Redis + registry stack."""

from __future__ import annotations

import argparse
import json
import time

from streamscore.foundation.config import Settings

SERVICES = ["kafka", "flink", "redis", "registry", "prometheus"]


def register(sub) -> None:
    stack = sub.add_parser("stack", help="the local Kafka + Flink + Redis + Schema Registry stack "
                                         "(+ Prometheus with STREAMSCORE_PROMETHEUS=on)")
    actions = stack.add_subparsers(dest="action", required=True, parser_class=type(stack))
    up = actions.add_parser("up", help="start what is not running and wait until all answer")
    up.add_argument("--only", nargs="+", choices=SERVICES)
    actions.add_parser("down", help="stop what 'up' started")
    status = actions.add_parser("status", help="each service, its address and health")
    status.add_argument("--json", action="store_true")
    logs = actions.add_parser("logs", help="the tail of a service's log")
    logs.add_argument("service", choices=SERVICES)
    logs.add_argument("-n", "--lines", type=int, default=50)
    actions.add_parser("config", help="print the effective settings")
    stack.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streamscore.stack import Stack

    stack = Stack(settings)
    if args.action == "up":
        began = time.monotonic()
        for report in stack.up(only=args.only):
            verb = "started" if report.started else "already up"
            print(f"{report.service:10s} {verb:10s} ({report.seconds:.1f}s)")
        print_status(stack.status())
        print(f"stack up in {time.monotonic() - began:.1f}s (state and logs: {settings.home})")
    elif args.action == "down":
        stopped = stack.down()
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    elif args.action == "status":
        health = stack.status()
        if args.json:
            print(json.dumps([h.__dict__ for h in health], indent=2))
        else:
            print_status(health)
        return 0 if all(h.healthy for h in health) else 1
    elif args.action == "logs":
        print(stack.logs(args.service, args.lines))
    elif args.action == "config":
        print(json.dumps(settings.describe(), indent=2))
    return 0


def print_status(health) -> None:
    print(f"{'service':10s} {'mode':9s} {'address':22s} {'health':9s} detail")
    for h in health:
        state = "healthy" if h.healthy else ("running" if h.running else "down")
        pids = f" pid {','.join(map(str, h.pids))}" if h.pids else ""
        print(f"{h.service:10s} {h.mode:9s} {h.address:22s} {state:9s} {h.detail}{pids}")
