"""CLI for jobs and models: ``run``, ``submit``, ``jobs list|cancel``, ``models list|show|build-demo|optimize``
(and the lifecycle actions of ``streamscore.model_commands``: register, promote, rollback, shadow, canary)."""

from __future__ import annotations

import argparse
import json

from streamscore.config import Settings
from streamscore.errors import StreamscoreError


def _add_scoring_knobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job", choices=["scoring", "drift"])
    parser.add_argument("--model", default="fraud:1.0.0", help="NAME:VERSION in the registry")
    parser.add_argument("--registry-dir", default=None)
    parser.add_argument("--job-name", default=None)
    parser.add_argument("--max-batch-size", type=int, default=None, help="records per model call (default 512)")
    parser.add_argument("--max-delay-ms", type=int, default=None, help="flush a partial batch after (default 100)")
    parser.add_argument("--checkpoint-interval-ms", type=int, default=None, help="default 1000")
    parser.add_argument("--transaction-timeout-ms", type=int, default=None, help="default 600000")
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--cache", action="store_true",
                        help="scoring: cache predictions in Redis (one MGET per micro-batch; off by default)")
    parser.add_argument("--cache-ttl-s", type=int, default=None, help="scoring: cached prediction lifetime (3600)")
    parser.add_argument("--low-confidence-band", type=float, default=None,
                        help="scoring: |score - threshold| within this counts as low confidence (0.05)")
    parser.add_argument("--follow-control", action="store_true",
                        help="scoring: follow model promotions, shadow and canary on the control topic")
    parser.add_argument("--at-least-once", action="store_true", help="weaker sinks (benchmarks only)")
    parser.add_argument("--startup-mode", default=None, choices=["group-offsets", "earliest-offset", "latest-offset"])
    parser.add_argument("--window-kind", default=None, choices=["count", "time"], help="drift: count or event time")
    parser.add_argument("--window-events", type=int, default=None, help="drift: events per count window (1000)")
    parser.add_argument("--window-ms", type=int, default=None, help="drift: event-time window length (60000)")


def add_parsers(sub) -> None:
    run = sub.add_parser("run", help="run a job on an embedded Flink MiniCluster (foreground)")
    _add_scoring_knobs(run)
    submit = sub.add_parser("submit", help="submit a job to the Flink cluster (STREAMSCORE_FLINK_REST)")
    _add_scoring_knobs(submit)
    submit.add_argument("--from-savepoint", default=None)

    jobs = sub.add_parser("jobs", help="list or cancel jobs on the Flink cluster")
    jobs.add_argument("action", choices=["list", "cancel"])
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--savepoint", action="store_true", help="stop with a savepoint (cancel)")

    models = sub.add_parser("models", help="the on-disk model registry")
    from streamscore import model_commands

    models.add_argument("action", choices=["list", "show", "build-demo", "optimize", *model_commands.ACTIONS])
    models.add_argument("ref", nargs="?", help="NAME:VERSION (show, optimize, promote, shadow-attach, canary), "
                                               "NAME (rollback, shadow-detach)")
    from models import optimize_cli

    optimize_cli.add_arguments(models)
    model_commands.add_arguments(models)


def scoring_config(settings: Settings, args: argparse.Namespace):
    from jobs.submit import scoring_config_from_settings

    return scoring_config_from_settings(
        settings, model=args.model, registry_dir=args.registry_dir, job_name=args.job_name,
        max_batch_size=args.max_batch_size, max_delay_ms=args.max_delay_ms,
        checkpoint_interval_ms=args.checkpoint_interval_ms, transaction_timeout_ms=args.transaction_timeout_ms,
        parallelism=args.parallelism, exactly_once=False if args.at_least_once else None,
        startup_mode=args.startup_mode, low_confidence_band=args.low_confidence_band,
        cache_enabled=True if args.cache else None, cache_ttl_s=args.cache_ttl_s,
        **({"control_topic": settings.topic("control").name, "shadow_topic": settings.topic("scored_shadow").name}
           if getattr(args, "follow_control", False) else {}),
    )


def drift_config(settings: Settings, args: argparse.Namespace):
    from jobs.submit import drift_config_from_settings

    return drift_config_from_settings(
        settings, model=args.model, registry_dir=args.registry_dir, job_name=args.job_name,
        checkpoint_interval_ms=args.checkpoint_interval_ms, transaction_timeout_ms=args.transaction_timeout_ms,
        startup_mode=args.startup_mode, window_kind=args.window_kind, window_events=args.window_events,
        window_ms=args.window_ms)


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        from jobs.submit import run_embedded

        config = scoring_config(settings, args) if args.job == "scoring" else drift_config(settings, args)
        return run_embedded(settings, config)
    if args.command == "submit":
        from jobs.submit import submit_drift, submit_scoring

        if args.job == "drift":
            config = drift_config(settings, args)
            job_id = submit_drift(settings, config, savepoint=args.from_savepoint)
            print(f"submitted {config.job_name} ({config.model}, {config.window_kind} windows): {job_id}")
            return 0
        config = scoring_config(settings, args)
        job_id = submit_scoring(settings, config, savepoint=args.from_savepoint)
        print(f"submitted {config.job_name} ({config.model}, batch {config.max_batch_size}, "
              f"delay {config.max_delay_ms} ms, checkpoint {config.checkpoint_interval_ms} ms): {job_id}")
        return 0
    if args.command == "jobs":
        return _jobs(args, settings)
    from streamscore import model_commands

    if args.action in model_commands.ACTIONS:
        return model_commands.dispatch(args, settings)
    return _models(args)


def _jobs(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.flink_cluster import cancel_job, list_jobs
    from streamscore.stack.flink_home import FlinkHome

    if args.action == "list":
        for job in list_jobs(settings):
            print(f"{job.job_id}  {job.state:10s} {job.name}")
        return 0
    if not args.job_id:
        raise StreamscoreError("jobs cancel needs a JOB_ID (see: streamscore jobs list)")
    target = str(FlinkHome(settings).savepoint_dir) if args.savepoint else None
    location = cancel_job(settings, args.job_id, savepoint_dir=target)
    print(f"stopped {args.job_id}" + (f" with savepoint {location}" if location else ""))
    return 0


def _models(args: argparse.Namespace) -> int:
    from models import optimize_cli
    from models.registry import ModelRegistry, load_model

    if args.action == "optimize":
        return optimize_cli.optimize(args)
    if args.action == "list":
        for ref in ModelRegistry(args.registry_dir).list_models():
            print(ref)
    elif args.action == "show":
        if not args.ref:
            raise StreamscoreError("models show needs NAME:VERSION")
        card = load_model(args.ref, root=args.registry_dir).card.to_dict()
        card.pop("drift_profile", None)
        print(json.dumps(card, indent=2))
    else:
        return optimize_cli.build_demo(args)
    return 0
