"""``streamscore run | submit`` (a scoring or drift job, embedded or on the cluster) and ``jobs list | cancel``."""

from __future__ import annotations

import argparse
from typing import get_args

from jobs.scoring_config import BUNDLE_AT_LEAST
from streamscore.cli.arg_types import finite_float
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.foundation.vocabulary import InputFormat, StateBackend, TransactionNaming


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="fraud:1.0.0", help="NAME:VERSION in the registry")
    parser.add_argument("--registry-dir", default=None)
    parser.add_argument("--job-name", default=None)
    parser.add_argument("--checkpoint-interval-ms", type=int, default=None, help="default 1000")
    parser.add_argument("--transaction-timeout-ms", type=int, default=None, help="default 600000")
    parser.add_argument("--transaction-naming", default=None, choices=get_args(TransactionNaming),
                        help="how the sinks name their Kafka transactions: pooling (default: a few ids reused, "
                             "Kafka 3.0+, READ on the output topics under ACLs) or incrementing (a new id every "
                             "checkpoint, kept by the broker for 7 days)")
    parser.add_argument("--startup-mode", default=None, choices=["group-offsets", "earliest-offset", "latest-offset"])
    parser.add_argument("--parallelism", type=int, default=None,
                        help="subtasks of the job's operators (default 1; at most the input topic's partitions "
                             "do work)")
    parser.add_argument("--input-format", default="avro", choices=get_args(InputFormat),
                        help="how the input topic carries a bound model's events: avro (Confluent wire) or json "
                             "(one JSON object a message, checked against the card's schema)")


def _add_scoring_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-topic", default=None, help="the events to score (default: the events topic)")
    parser.add_argument("--scored-topic", default=None, help="default: the scored topic")
    parser.add_argument("--dead-letter-topic", default=None, help="default: the dead-letter topic")
    parser.add_argument("--max-batch-size", type=int, default=None,
                        help="records per model call (default 2048, set by a sweep: docs/benchmarks.md)")
    parser.add_argument("--max-delay-ms", type=int, default=None,
                        help="flush a partial batch after it (Flink: up to about twice it; default 100)")
    parser.add_argument("--batches-per-bundle", type=int, default=None,
                        help="batches handed to the Python step before the JVM waits for their results "
                             f"(default 0: as few as hold {BUNDLE_AT_LEAST} records, 4 at batch 2048)")
    parser.add_argument("--cache", action="store_true",
                        help="cache predictions in Redis (one MGET per micro-batch; off by default)")
    parser.add_argument("--cache-ttl-s", type=int, default=None, help="cached prediction lifetime (3600)")
    parser.add_argument("--low-confidence-band", type=finite_float, default=None,
                        help="|score - threshold| within this counts as low confidence (0.05)")
    parser.add_argument("--follow-control", action="store_true",
                        help="follow model promotions, shadow and canary on the control topic")
    parser.add_argument("--at-least-once", action="store_true", help="weaker sinks (benchmarks only)")


def _add_drift_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input-topic", default=None, help="the scoring job's events (default: the events topic)")
    parser.add_argument("--scored-topic", default=None, help="its scored records (default: the scored topic)")
    parser.add_argument("--window-kind", default=None, choices=["count", "time"], help="count or event time")
    parser.add_argument("--window-events", type=int, default=None,
                        help="a count window closes with the micro-batch that reaches this many events (1000)")
    parser.add_argument("--window-ms", type=int, default=None, help="event-time window length (60000)")
    parser.add_argument("--state-backend", default=None, choices=get_args(StateBackend),
                        help="where the sidecar keeps its state: rocksdb (default: incremental checkpoints, for the "
                             "label join's scored records) or hashmap (the heap, a full copy every checkpoint)")
    parser.add_argument("--label-wait-ms", type=int, default=None,
                        help="how long the label join keeps a scored record for its label after its last write "
                             "(default: 10 minutes); a label later than that is read but not joined (counted in "
                             "drift_labels_read, not in drift_labels_joined)")


def _add_job_kinds(parser: argparse.ArgumentParser, handler, savepoint: bool) -> None:
    kinds = parser.add_subparsers(dest="job", required=True, metavar="JOB", parser_class=type(parser))
    for kind, flags, text in (("scoring", _add_scoring_flags, "score the events topic into scored"),
                              ("drift", _add_drift_flags, "the drift sidecar of a scoring job")):
        job = kinds.add_parser(kind, help=text)
        _add_common(job)
        flags(job)
        if savepoint:
            job.add_argument("--from-savepoint", default=None)
        job.set_defaults(handler=handler)


def register(sub) -> None:
    run = sub.add_parser("run", help="run a job on an embedded Flink MiniCluster (foreground)")
    _add_job_kinds(run, run_embedded, savepoint=False)
    submit = sub.add_parser("submit", help="submit a job to the Flink cluster (STREAMSCORE_FLINK_REST)")
    _add_job_kinds(submit, submit_job, savepoint=True)

    jobs = sub.add_parser("jobs", help="list or cancel jobs on the Flink cluster")
    jobs.add_argument("action", choices=["list", "cancel"])
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--savepoint", action="store_true", help="stop with a savepoint (cancel)")
    jobs.set_defaults(handler=list_or_cancel)


def scoring_config(settings: Settings, args: argparse.Namespace):
    from jobs.submit import scoring_config_from_settings

    return scoring_config_from_settings(
        settings, model=args.model, registry_dir=args.registry_dir, job_name=args.job_name or _job_name(args),
        events_topic=args.input_topic, scored_topic=args.scored_topic, dead_letter_topic=args.dead_letter_topic,
        max_batch_size=args.max_batch_size, max_delay_ms=args.max_delay_ms,
        batches_per_bundle=args.batches_per_bundle, checkpoint_interval_ms=args.checkpoint_interval_ms,
        transaction_timeout_ms=args.transaction_timeout_ms, transaction_naming=args.transaction_naming,
        parallelism=args.parallelism, exactly_once=False if args.at_least_once else None,
        startup_mode=args.startup_mode, low_confidence_band=args.low_confidence_band,
        cache_enabled=True if args.cache else None, cache_ttl_s=args.cache_ttl_s,
        **({"control_topic": settings.topic("control").name, "shadow_topic": settings.topic("scored_shadow").name}
           if getattr(args, "follow_control", False) else {}),
        **_input_format(args),
    )


def _input_format(args: argparse.Namespace) -> dict:
    from jobs.job_wire import RegistryWire

    return {"registry": RegistryWire(events_format=args.input_format)} if args.input_format != "avro" else {}


def _job_name(args: argparse.Namespace, base: str = "streamscore-scoring") -> str | None:
    """A model that binds its own schema gets a job named after it, so it runs beside the fraud model's;
    the others keep the default name (and with it their consumer group and transactional ids)."""
    from models.registry import load_model

    try:
        bound = load_model(args.model, root=args.registry_dir).card.event_schema is not None
    except StreamscoreError:
        return None  # submit's preflight says what is wrong with the model, in one line
    return f"{base}-{args.model.split(':', 1)[0]}" if bound else None


def drift_config(settings: Settings, args: argparse.Namespace):
    from jobs.submit import drift_config_from_settings

    return drift_config_from_settings(
        settings, model=args.model, registry_dir=args.registry_dir,
        job_name=args.job_name or _job_name(args, "streamscore-drift"),
        events_topic=args.input_topic, scored_topic=args.scored_topic,
        checkpoint_interval_ms=args.checkpoint_interval_ms, transaction_timeout_ms=args.transaction_timeout_ms,
        transaction_naming=args.transaction_naming, startup_mode=args.startup_mode, window_kind=args.window_kind,
        window_events=args.window_events, window_ms=args.window_ms, parallelism=args.parallelism,
        state_backend=args.state_backend, label_wait_ms=args.label_wait_ms, **_input_format(args))


def run_embedded(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.submit import run_embedded as run

    config = scoring_config(settings, args) if args.job == "scoring" else drift_config(settings, args)
    return run(settings, config)


def submit_job(args: argparse.Namespace, settings: Settings) -> int:
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


def list_or_cancel(args: argparse.Namespace, settings: Settings) -> int:
    from jobs.flink_cluster import cancel_job, list_jobs
    from jobs.flink_home import FlinkHome

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
