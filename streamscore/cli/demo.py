"""``streamscore demo``: the whole product on the local stack, end to end, in one command."""

from __future__ import annotations

import argparse
import collections
import json
import time
import uuid

from streamscore.foundation.config import Settings

WARM_UP_EVENTS = 200


def register(sub) -> None:
    demo = sub.add_parser("demo", help="stack up, topics, events produced and read back end to end")
    demo.add_argument("--count", type=int, default=5000)
    demo.add_argument("--keep-running", action="store_true", help="leave the stack up afterwards (default)")
    demo.set_defaults(handler=lambda args, settings: run_demo(settings, args))


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    from streamscore.cli.lifecycle_demo import show_lifecycle
    from streamscore.cli.sensor_demo import show_sensor_model
    from streamscore.harness.traffic import TrafficPlan, run_traffic

    began = time.monotonic()
    _start_stack_and_topics(settings)
    _submit_scoring_job(settings)
    _start_drift_sidecar(settings)
    _warm_up(settings)

    _step(f"producing {args.count} events (1 in 100 malformed on purpose) and reading the results")
    traffic = run_traffic(settings, TrafficPlan(args.count, f"demo-{uuid.uuid4().hex[:8]}-", rate=2000.0))
    _print_outcome(traffic)
    traffic_ok = _accounted_by_identity(settings, traffic)
    _step("a second model on its own schema: sensor:1.0.0 (machine readings -> anomaly score), Confluent wire")
    sensor_ok = show_sensor_model(settings)
    _step("drift: 6000 normal events, then 6000 with device_trust_score shifted by 1 reference std dev")
    drift_ok = _show_drift(settings)
    _step("delayed labels: 5000 events scored, then their true labels, 10 % flipped after the first 2000")
    accuracy_ok = _show_accuracy(settings)
    # -- model lifecycle (streamscore/cli/lifecycle_demo.py: its own job, topics and registry, removed after)
    _step("model lifecycle: promote fraud:1.1.0 and attach fraud:1.2.0 in shadow while events flow")
    lifecycle_ok = show_lifecycle(settings)
    print(f"\ndemo finished in {time.monotonic() - began:.0f}s; the stack keeps running "
          f"(Flink UI {settings.flink_rest_url}; stop it with: streamscore stack down)")
    return _report_checks({
        "fraud events each scored or dead-lettered once": traffic_ok,
        "sensor readings each scored or dead-lettered once": sensor_ok,
        "drift alert and trigger": drift_ok, "accuracy alert and trigger": accuracy_ok,
        "lifecycle promotion and shadow": lifecycle_ok})


def _start_stack_and_topics(settings: Settings) -> None:
    from connectors.kafka_clients import create_topics
    from streamscore.cli.topics import register_schemas
    from streamscore.stack import Stack

    _step("local stack: Kafka (KRaft), Flink session cluster, Redis, Schema Registry (Apicurio)")
    for report in Stack(settings).up():
        print(f"  {report.service:8s} {'started' if report.started else 'already up':10s} in {report.seconds:.1f}s")
    _step("topics, and their schemas in the registry (TOPIC-value subjects, BACKWARD compatibility)")
    for name, outcome in create_topics(settings).items():
        print(f"  {name:14s} {outcome}")
    for subject, schema_id in register_schemas(settings).items():
        print(f"  {subject:20s} schema id {schema_id}")


def _submit_scoring_job(settings: Settings) -> None:
    """The demo's scoring job, unless it already runs (a second ``make demo`` on a running stack)."""
    from jobs.flink_cluster import ENDED_STATES, list_jobs
    from jobs.submit import scoring_config_from_settings, submit_scoring
    from models.registry import load_model

    config = scoring_config_from_settings(settings)
    card = load_model(config.model).card
    _step(f"model {card.ref}: test AUC {card.training.test_auc:.3f}, threshold {card.outputs.threshold}")
    alive = [j for j in list_jobs(settings) if j.name == config.job_name and j.state not in ENDED_STATES]
    if alive:
        print(f"  scoring job already submitted: {alive[0].job_id} ({alive[0].state})")
        return
    job_id = submit_scoring(settings, config)
    print(f"  submitted scoring job {job_id} (batch {config.max_batch_size}, delay {config.max_delay_ms} ms, "
          f"checkpoint {config.checkpoint_interval_ms} ms, exactly-once)")


def _report_checks(checks: dict[str, bool]) -> int:
    failed = [name for name, ok in checks.items() if not ok]
    print(f"demo checks: {len(checks) - len(failed)} of {len(checks)} passed"
          + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def _warm_up(settings: Settings, count: int = WARM_UP_EVENTS) -> None:
    """A few events scored before the measured traffic, so its latency line is the job's steady state;
    the time they took (job and Python worker start-up included) is reported on its own."""
    from streamscore.harness.traffic import TrafficPlan, run_traffic

    began = time.monotonic()
    warm = run_traffic(settings, TrafficPlan(count, f"demo-warmup-{uuid.uuid4().hex[:8]}-", malformed_every=0,
                                             timeout_s=180))
    print(f"  warm-up: {len(warm.scored)} of {warm.produced} events scored {time.monotonic() - began:.1f} s after "
          f"producing began (the job's start-up included; the latency below excludes it)")


def _start_drift_sidecar(settings: Settings) -> None:
    from jobs.flink_cluster import list_jobs, wait_running
    from jobs.submit import drift_config_from_settings, submit_drift

    config = drift_config_from_settings(settings)
    if any(j.name == config.job_name and j.state == "RUNNING" for j in list_jobs(settings)):
        print(f"  drift sidecar already running ({config.window_kind} windows of {config.window_events}+ events)")
        return
    job_id = submit_drift(settings, config)
    print(f"  submitted drift sidecar {job_id} ({config.window_kind} windows of {config.window_events}+ events, "
          f"alpha {config.alpha}, triggers on {config.confirm_k} of {config.confirm_m} windows)")
    wait_running(settings, job_id, timeout_s=120)  # its start-up is not charged to the traffic's latency


def _show_drift(settings: Settings) -> bool:
    from connectors.kafka_reads import read_topic
    from connectors.schema_registry import reader_of
    from streamscore.cli.produce import ProduceLimits, live_demo_events, parse_drift, produce_events

    drift = [parse_drift("device_trust_score:shift=1.0", 6000)]
    events = list(live_demo_events(12_000, 31, f"drift-{uuid.uuid4().hex[:8]}-", drift))
    produce_events(settings, settings.topic("events").name, events, ProduceLimits(rate=4000.0, transaction_size=250))
    drift_start_ms = events[6000]["event_time"]
    registry = settings.schema_registry
    alerts, triggers = reader_of(registry, "drift_alert"), reader_of(registry, "control")
    deadline, found_alerts, found_triggers = time.monotonic() + 90, [], []
    while time.monotonic() < deadline and not (found_alerts and found_triggers):
        time.sleep(2)
        found_alerts = [a for a in (alerts.decode(r.value) for r in read_topic(
            settings, settings.topic("drift_alerts").name, idle_timeout_s=2)) if a["window_end"] > drift_start_ms]
        found_triggers = [t for t in (triggers.decode(r.value) for r in read_topic(
            settings, settings.topic("control").name, idle_timeout_s=2)) if t["emitted_time"] > drift_start_ms]
    for a in found_alerts:
        print(f"  ALERT   {a['feature']:20s} tier {a['tier']:8s} PSI {a['value']:.3f} "
              f"(threshold {a['threshold']:.3f}), p {a['p_value']:.1e}, window of {a['window_size']} events")
    return _show_triggers(found_alerts, found_triggers, "drift")


def _show_triggers(alerts: list[dict], triggers: list[dict], kind: str) -> bool:
    """Print the retraining triggers found, or that the ``kind`` alert and trigger did not both come; True when
    they did."""
    for t in triggers:
        print(f"  TRIGGER {t['tier']:8s} -> {t['action']}: {'; '.join(t['reasons'])}")
    if not (alerts and triggers):
        print(f"  no {kind} alert and trigger within 90 s (see: streamscore stack logs flink)")
    return bool(alerts and triggers)


def _show_accuracy(settings: Settings) -> bool:
    """Concept drift only labels reveal: features unchanged, the truth flips for 10 % of events."""
    from models.demo_data import generate_labelled
    from models.demo_labels import LabelPlan, label_records
    from streamscore.cli.produce import ProduceLimits, produce_events
    from streamscore.harness.labels import produce_labels

    prefix = f"labelled-{uuid.uuid4().hex[:8]}-"
    events, truth = generate_labelled(5000, seed=41, id_prefix=prefix)
    now = int(time.time() * 1000)
    for i, event in enumerate(events):
        event["event_time"] = now + i
    produce_events(settings, settings.topic("events").name, events, ProduceLimits(transaction_size=500))
    _wait_until_scored(settings, prefix, len(events))  # labels come later than their events
    produce_labels(settings, label_records(events, truth, LabelPlan(delay_ms=30_000, flip_rate=0.10, flip_after=2000)))
    found_alerts, found_triggers = _wait_for_accuracy_findings(settings, since_ms=now)
    for a in found_alerts:
        print(f"  ALERT   accuracy {a['value']:.3f} vs reference {a['threshold']:.3f}: tier {a['tier']}, "
              f"p {a['p_value']:.1e}, window of {a['window_size']} labelled events")
    return _show_triggers(found_alerts, found_triggers, "accuracy")


def _wait_until_scored(settings: Settings, prefix: str, count: int, timeout_s: float = 60) -> None:
    from connectors.kafka_reads import read_topic
    from connectors.schema_registry import reader_of

    scored, deadline = reader_of(settings.schema_registry, "scored"), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = read_topic(settings, settings.topic("scored").name, idle_timeout_s=1)
        if sum(scored.decode(r.value)["event_id"].startswith(prefix) for r in records) >= count:
            return
        time.sleep(1)


def _wait_for_accuracy_findings(settings: Settings, since_ms: int, timeout_s: float = 90) -> tuple[list, list]:
    """Accuracy alerts on ``drift-alerts`` and accuracy triggers on ``control`` emitted after ``since_ms``."""
    from connectors.kafka_reads import read_topic
    from connectors.schema_registry import reader_of

    alerts, control = reader_of(settings.schema_registry, "drift_alert"), reader_of(settings.schema_registry, "control")
    deadline, found, triggers = time.monotonic() + timeout_s, [], []
    while time.monotonic() < deadline and not (found and triggers):
        time.sleep(2)
        found = [a for a in (alerts.decode(r.value) for r in read_topic(
            settings, settings.topic("drift_alerts").name, idle_timeout_s=2))
            if a["statistic"] == "ACCURACY" and a["emitted_time"] > since_ms]
        triggers = [t for t in (control.decode(r.value) for r in read_topic(
            settings, settings.topic("control").name, idle_timeout_s=2))
            if t["emitted_time"] > since_ms and t["reasons"] and t["reasons"][0].startswith("accuracy")]
    return found, triggers


def _accounted_by_identity(settings: Settings, traffic) -> bool:
    """Each produced event found once, scored or dead-lettered (a dead letter by its source partition and
    offset), never both: counts alone would let a lost record and a twice-written dead letter cancel out."""
    from streamscore.harness.accounting import account, read_identities

    identities = read_identities(settings, settings.topic("events").name,
                                 [*traffic.valid_ids, *traffic.malformed_keys], traffic.malformed_keys)
    found = account(identities, traffic.scored, traffic.scored_duplicates, traffic.dead_letters)
    print(f"  by identity: {found.scored} scored, {found.dead_lettered} dead-lettered, missing {found.missing}, "
          f"duplicates {found.duplicates}, in both {found.in_both}, misrouted {found.misrouted}, "
          f"unidentified {found.unidentified}")
    return found.clean and found.produced == traffic.produced


def _print_outcome(traffic) -> None:
    lat = traffic.latency_percentiles()
    print(f"  produced {traffic.produced}: scored {len(traffic.scored)}, dead-lettered {len(traffic.dead_letters)}, "
          f"duplicates {traffic.scored_duplicates} (missing: by identity, below)")
    if lat:
        print(f"  end-to-end latency (event time -> visible to a read_committed consumer): "
              f"p50 {lat['p50']:.0f} ms, p95 {lat['p95']:.0f} ms, p99 {lat['p99']:.0f} ms")
    print("  sample scored records:")
    for record in list(traffic.scored.values())[:3]:
        print("   ", json.dumps({k: record[k] for k in ("event_id", "model_version", "score", "label", "batch_id")}))
    reasons = collections.Counter(f"{d['stage']}: {':'.join(d['reason'].split(':')[:2])}" for d in traffic.dead_letters)
    print("  dead letters by stage and reason:")
    for reason, count in sorted(reasons.items()):
        print(f"    {count:4d}  {reason}")
