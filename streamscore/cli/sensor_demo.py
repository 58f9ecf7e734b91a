"""The demo's second model: ``sensor:1.0.0`` on its own schema and topics, beside the fraud model.

Machine readings (``io.example.sensors.Reading``, ``models/sensor_demo.py``) go to ``readings`` in
the Confluent wire format with the id the Schema Registry gave their schema; the sensor job (named
``streamscore-scoring-sensor``) scores them onto ``readings-scored`` / ``readings-dead-letter``,
which any Kafka tool reads through the registry. Its topics and job stay, as the fraud job's do.
"""

from __future__ import annotations

import time
import uuid

from streamscore.foundation.config import Settings, TopicSpec

MODEL = "sensor:1.0.0"
TOPICS = {"events": "readings", "scored": "readings-scored", "dead_letter": "readings-dead-letter"}
JOB_NAME = "streamscore-scoring-sensor"


def show_sensor_model(settings: Settings, count: int = 5000) -> bool:
    """Submit the sensor job (if not running), produce ``count`` readings and read them back scored."""
    from connectors.kafka_clients import create_topics
    from connectors.schema_registry import SchemaRegistry
    from models.registry import load_model
    from models.sensor_demo import generate_readings, live_start_ms
    from schemas.confluent import RegisteredReader
    from streamscore.cli.produce import ProduceLimits, model_wire, produce_events

    create_topics(settings, [TopicSpec(role, name, 2) for role, name in TOPICS.items()])
    card = load_model(MODEL).card
    print(f"  model {card.ref}: events {card.event_schema.name}, features {', '.join(card.contract.names)}; "
          f"held-out AUC {card.training.test_auc:.3f}")
    _ensure_job(settings)
    prefix = f"demo-rd-{uuid.uuid4().hex[:8]}-"
    readings = [{k: v for k, v in r.items() if k != "is_anomaly"}
                for r in generate_readings(count, seed=int(time.time()) % 1000, prefix=prefix,
                                          start_ms=live_start_ms(count))]
    wire = model_wire(settings, MODEL, TOPICS["events"])
    began = time.monotonic()
    produce_events(settings, TOPICS["events"], readings, ProduceLimits(rate=2000.0, transaction_size=250), wire=wire)
    scored, dead, copies = _read_outcomes(settings, RegisteredReader(SchemaRegistry(settings.schema_registry)),
                                          prefix, count)
    flagged = sorted((r for r in scored.values() if r["label"]), key=lambda r: -r["score"])
    print(f"  produced {count} readings to {TOPICS['events']} (Confluent wire, schema id {wire.schema_id}): "
          f"scored {len(scored)}, dead-lettered {len(dead)} in {time.monotonic() - began:.1f}s, "
          f"duplicates {copies - len(scored) - len(dead)}, {len(flagged)} flagged as anomalies")
    for record in flagged[:3]:
        print(f"    {record['event_id']}: anomaly score {record['score']:.3f}")
    for event_id, record in list(dead.items())[:3]:  # a reading outside the training ranges, say
        print(f"    dead letter {event_id}: {record['stage']} {record['reason']}")
    print(f"  read them with any Kafka tool through the registry, or: streamscore consume {TOPICS['scored']} "
          f"--from-beginning --max 3")
    return len(scored) + len(dead) == count == copies and not scored.keys() & dead.keys()


def _ensure_job(settings: Settings) -> None:
    """The sensor scoring job. Its drift sidecar is one command away; the demo leaves it out, so the stack's
    four slots hold the fraud job, its sidecar, this job and the lifecycle step's job."""
    from jobs.flink_cluster import list_jobs
    from jobs.submit import scoring_config_from_settings, submit_scoring

    if any(j.name == JOB_NAME and j.state == "RUNNING" for j in list_jobs(settings)):
        print(f"  sensor job already running ({JOB_NAME})")
    else:
        config = scoring_config_from_settings(settings, model=MODEL, job_name=JOB_NAME, events_topic=TOPICS["events"],
                                              scored_topic=TOPICS["scored"], dead_letter_topic=TOPICS["dead_letter"])
        print(f"  submitted {JOB_NAME}: {submit_scoring(settings, config)} (schemas registered: "
              f"{', '.join(f'{t}-value' for t in TOPICS.values())})")
    print(f"  its drift sidecar (its own reference profile): streamscore submit drift --model {MODEL} "
          f"--input-topic {TOPICS['events']} --scored-topic {TOPICS['scored']}")


def _read_outcomes(settings: Settings, reader, prefix: str, count: int,
                   timeout_s: float = 120) -> tuple[dict[str, dict], dict[str, dict], int]:
    """This run's scored records and dead letters by id, and how many records carried them (more: a
    duplicate). Every reading is one or the other: a reading the contract refuses (a value outside the
    training sample's ranges: about one seed in twenty draws one in 5,000) is a dead letter, not a loss."""
    from connectors.kafka_reads import read_topic

    deadline = time.monotonic() + timeout_s
    while True:
        found: dict[str, dict[str, dict]] = {TOPICS["scored"]: {}, TOPICS["dead_letter"]: {}}
        copies = 0
        for topic, records in found.items():
            for record in read_topic(settings, topic, idle_timeout_s=2):
                value = reader.decode(record.value)[1]
                if (value.get("event_id") or "").startswith(prefix):
                    records[value["event_id"]] = value
                    copies += 1
        scored, dead = found[TOPICS["scored"]], found[TOPICS["dead_letter"]]
        if len(scored.keys() | dead.keys()) >= count or time.monotonic() > deadline:
            return scored, dead, copies
        time.sleep(1)
