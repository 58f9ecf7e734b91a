"""``streamscore demo``: the whole product on the local stack, end to end, in one command."""

from __future__ import annotations

import argparse
import collections
import json
import time
import uuid

from streamscore.config import Settings


def _step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    from connectors.kafka_clients import create_topics
    from jobs.flink_cluster import list_jobs
    from jobs.submit import scoring_config_from_settings, submit_scoring
    from models.registry import load_model
    from streamscore.stack import Stack
    from streamscore.traffic import run_traffic

    began = time.monotonic()
    _step("local stack: Kafka (KRaft), Flink session cluster, Redis")
    for report in Stack(settings).up():
        print(f"  {report.service:6s} {'started' if report.started else 'already up':10s} in {report.seconds:.1f}s")
    _step("topics")
    for name, outcome in create_topics(settings).items():
        print(f"  {name:14s} {outcome}")

    config = scoring_config_from_settings(settings)
    card = load_model(config.model).card
    _step(f"model {card.ref}: test AUC {card.training.test_auc:.3f}, threshold {card.outputs.threshold}")
    running = [j for j in list_jobs(settings) if j.name == config.job_name and j.state == "RUNNING"]
    if running:
        print(f"  scoring job already running: {running[0].job_id}")
    else:
        job_id = submit_scoring(settings, config)
        print(f"  submitted scoring job {job_id} (batch {config.max_batch_size}, delay {config.max_delay_ms} ms, "
              f"checkpoint {config.checkpoint_interval_ms} ms, exactly-once)")

    _start_drift_sidecar(settings)

    _step(f"producing {args.count} events (1 in 100 malformed on purpose) and reading the results")
    prefix = f"demo-{uuid.uuid4().hex[:8]}-"
    traffic = run_traffic(settings, args.count, id_prefix=prefix, rate=2000.0)
    _print_outcome(traffic)

    _step("drift: 6000 normal events, then 6000 with device_trust_score shifted by 1 reference std dev")
    drift_ok = _show_drift(settings)
    print(f"\ndemo finished in {time.monotonic() - began:.0f}s; the stack keeps running "
          f"(Flink UI {settings.flink_rest_url}; stop it with: streamscore stack down)")
    ok = traffic.accounted == traffic.produced and traffic.scored_duplicates == 0 and drift_ok
    return 0 if ok else 1


def _start_drift_sidecar(settings: Settings) -> None:
    from jobs.flink_cluster import list_jobs
    from jobs.submit import drift_config_from_settings, submit_drift

    config = drift_config_from_settings(settings)
    if any(j.name == config.job_name and j.state == "RUNNING" for j in list_jobs(settings)):
        print(f"  drift sidecar already running ({config.window_kind} windows of {config.window_events} events)")
        return
    job_id = submit_drift(settings, config)
    print(f"  submitted drift sidecar {job_id} ({config.window_kind} windows of {config.window_events} events, "
          f"alpha {config.alpha}, triggers on {config.confirm_k} of {config.confirm_m} windows)")


def _show_drift(settings: Settings) -> bool:
    from connectors.kafka_clients import read_topic
    from schemas import serde_for
    from streamscore.commands import _live_demo_events, parse_drift, produce_events

    drift = [parse_drift("device_trust_score:shift=1.0", 6000)]
    events = list(_live_demo_events(12_000, 31, f"drift-{uuid.uuid4().hex[:8]}-", drift))
    produce_events(settings, settings.topic("events").name, events, rate=4000.0, transaction_size=250)
    drift_start_ms = events[6000]["event_time"]
    alerts, triggers = serde_for("drift_alert"), serde_for("control")
    deadline, found_alerts, found_triggers = time.monotonic() + 90, [], []
    while time.monotonic() < deadline and not (found_alerts and found_triggers):
        time.sleep(2)
        found_alerts = [a for a in (alerts.decode(r.value) for r in read_topic(
            settings, settings.topic("drift_alerts").name, idle_timeout_s=2)) if a["window_end"] > drift_start_ms]
        found_triggers = [t for t in (triggers.decode(r.value) for r in read_topic(
            settings, settings.topic("control").name, idle_timeout_s=2)) if t["emitted_time"] > drift_start_ms]
    for a in found_alerts:
        print(f"  ALERT   {a['feature']:20s} tier {a['tier']:8s} PSI {a['value']:.3f} (threshold {a['threshold']:.3f}), "
              f"p {a['p_value']:.1e}, window of {a['window_size']} events")
    for t in found_triggers:
        print(f"  TRIGGER {t['tier']:8s} -> {t['action']}: {'; '.join(t['reasons'])}")
    if not (found_alerts and found_triggers):
        print("  no drift alert and trigger within 90 s (see: streamscore stack logs flink)")
    return bool(found_alerts and found_triggers)


def _print_outcome(traffic) -> None:
    lat = traffic.latency_percentiles()
    print(f"  produced {traffic.produced}: scored {len(traffic.scored)}, dead-lettered {len(traffic.dead_letters)}, "
          f"duplicates {traffic.scored_duplicates}, missing {traffic.produced - traffic.accounted}")
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
