"""The demo's model lifecycle step: a promotion and a shadow challenger in a running job (~30 s).

Self-contained and tidy: a temporary registry with ``fraud`` 1.0.0, 1.1.0 (same ONNX) and 1.2.0
(same ONNX, stricter threshold 0.5, so its labels sometimes differ), its own topics and its own
scoring job following its own control topic, all removed at the end. The shared ``control``
topic and the Redis pointer of ``fraud`` are left alone, so later jobs are not re-routed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StreamscoreError
from streamscore.foundation.vocabulary import ControlKind

DELAY_MS = 3000


def _registry() -> Path:
    from models.register import register_model
    from models.registry import DEFAULT_ROOT

    root = Path(tempfile.mkdtemp(prefix="streamscore-demo-registry-"))
    source = DEFAULT_ROOT / "fraud" / "1.0.0"
    card = json.loads((source / "model.json").read_text(encoding="utf-8"))
    for version, threshold in (("1.0.0", None), ("1.1.0", None), ("1.2.0", 0.5)):
        changed = {**card, "version": version}
        if threshold is not None:
            changed["outputs"] = {**card["outputs"], "threshold": threshold}
        (root / f"{version}.json").write_text(json.dumps(changed), encoding="utf-8")
        register_model(source / "model.onnx", root / f"{version}.json", root)
    return root


def _announce(settings: Settings, topic: str, kind: ControlKind, version: str, previous: str | None) -> int:
    from streamscore.lifecycle.control import lifecycle_message, publish

    message = publish(settings, topic, lambda now_ms: lifecycle_message(
        kind, "fraud", version, now_ms=now_ms, delay_ms=DELAY_MS, previous=previous), guard_ms=DELAY_MS // 2)
    return json.loads(message["payload_json"])["effective_from_ms"]


class _ModelChanges(threading.Thread):
    """Promotes fraud:1.1.0, then attaches fraud:1.2.0 in shadow, a second into the traffic; the event times
    they take effect from, or why they could not be published."""

    def __init__(self, settings: Settings, control_topic: str):
        super().__init__(name="lifecycle-changes", daemon=True)
        self.settings, self.control_topic = settings, control_topic
        self.effective: dict[str, int] = {}
        self.failure: StreamscoreError | None = None

    def run(self) -> None:
        time.sleep(1.0)
        try:
            self.effective["promote"] = _announce(self.settings, self.control_topic, ControlKind.MODEL_PROMOTED,
                                                  "1.1.0", "1.0.0")
            self.effective["shadow"] = _announce(self.settings, self.control_topic, ControlKind.SHADOW_ATTACHED,
                                                 "1.2.0", None)
        except StreamscoreError as exc:
            self.failure = exc


def show_lifecycle(settings: Settings) -> bool:
    from connectors.kafka_clients import create_topics, delete_topics
    from jobs.flink_cluster import cancel_job
    from jobs.submit import scoring_config_from_settings, submit_scoring
    from streamscore.foundation.config import TopicSpec

    tag = uuid.uuid4().hex[:8]
    roles = ("events", "scored", "dead", "control", "shadow")
    names = {role: f"demo-lifecycle-{role}-{tag}" for role in roles}
    create_topics(settings, [TopicSpec(role, name, 1) for role, name in names.items()])
    registry = _registry()
    job_id = None
    try:
        config = scoring_config_from_settings(
            settings, events_topic=names["events"], scored_topic=names["scored"], dead_letter_topic=names["dead"],
            control_topic=names["control"], shadow_topic=names["shadow"], registry_dir=str(registry),
            job_name=f"demo-lifecycle-{tag}", activation_delay_ms=DELAY_MS, startup_mode="earliest-offset",
            max_delay_ms=50)
        job_id = submit_scoring(settings, config)
        print(f"  submitted a scoring job following {names['control']}: {job_id} (fraud:1.0.0)")
        return _run(settings, names, job_id)
    finally:
        if job_id:
            cancel_job(settings, job_id)
        delete_topics(settings, list(names.values()))
        shutil.rmtree(registry, ignore_errors=True)


def _run(settings: Settings, names: dict[str, str], job_id: str) -> bool:
    from connectors.kafka_reads import read_topic
    from connectors.schema_registry import reader_of
    from jobs.flink_cluster import list_jobs
    from streamscore.harness.traffic import TrafficPlan, TrafficTopics, run_traffic

    changer = _ModelChanges(settings, names["control"])
    changer.start()
    plan = TrafficPlan(3000, f"lc-{uuid.uuid4().hex[:6]}-", rate=500, malformed_every=0, transaction_size=100,
                       timeout_s=120)
    traffic = run_traffic(settings, plan, TrafficTopics(names["events"], names["scored"], names["dead"]))
    changer.join(30)
    if changer.failure or changer.is_alive():
        print(f"  the lifecycle changes were not all published: {changer.failure or 'still publishing after 30 s'}")
        return False
    effective = changer.effective
    reader = reader_of(settings.schema_registry, "scored")
    shadow = [reader.decode(r.value) for r in read_topic(settings, names["shadow"], idle_timeout_s=2)]
    same_job = any(j.job_id == job_id and j.state == "RUNNING" for j in list_jobs(settings))
    records = list(traffic.scored.values())
    by_version = {v: sum(r["model_version"] == v for r in records) for v in ("1.0.0", "1.1.0")}
    on_time = all(r["model_version"] == ("1.1.0" if r["event_time"] >= effective["promote"] else "1.0.0")
                  for r in records)
    print(f"  promoted fraud:1.1.0, effective from event time {effective['promote']} (3 s after publication)")
    print(f"  {len(records)} of {traffic.produced} events scored, {traffic.scored_duplicates} duplicates: "
          f"{by_version['1.0.0']} by 1.0.0, {by_version['1.1.0']} by "
          f"1.1.0; every event after the switch by 1.1.0: {on_time}; same job, no restart: {same_job}")
    agree = sum(r["label"] == traffic.scored[r["event_id"]]["label"] for r in shadow)
    diff = max((abs(r["score"] - traffic.scored[r["event_id"]]["score"]) for r in shadow), default=0.0)
    print(f"  shadow fraud:1.2.0 (threshold 0.5) from event time {effective['shadow']}: {len(shadow)} records in "
          f"scored-shadow, label agreement {agree / max(len(shadow), 1):.1%}, max |score diff| {diff:.3g}")
    return (on_time and same_job and traffic.scored_duplicates == 0 and len(records) == traffic.produced
            and len(shadow) > 0)
