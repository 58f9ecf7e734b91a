"""At submit: the schemas a scoring job's topics carry, registered in the Schema Registry, and their ids
handed to the job (``jobs.job_wire.RegistryWire``), so its workers write without asking the registry.

Every model scores the Confluent wire: the event schema its card binds (the demo's
``io.streamscore.v1.Event`` where it binds none) is registered under ``<events>-value`` (an
incompatible change is refused by the subject's rule, in one line), the output schemas under theirs.
"""

from __future__ import annotations

import dataclasses

from connectors.schema_registry import SchemaRegistry, register_subject, register_topic_schemas, subject_for
from jobs.job_wire import RegistryWire
from jobs.scoring_config import ScoringJobConfig
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import ConfigError


def with_registry_wire(settings: Settings, config: ScoringJobConfig, card) -> ScoringJobConfig:
    """``config`` with its ``registry`` part filled in: the Confluent wire, every model's (unless the config
    asks for the single-object framing of the demo events)."""
    if _single_object(config, card):
        return config
    ids = _scoring_schema_ids(SchemaRegistry(settings.schema_registry), config, card)
    wire = registry_wire(settings, config.registry, **ids)
    return dataclasses.replace(config, registry=wire, decoder_jar=_decoder_jar(settings, wire)).checked()


def _single_object(config, card) -> bool:
    """Whether ``config`` keeps the single-object framing: for the demo events only, Avro only, and no
    lifecycle or labels (control and labels are written on the Confluent wire, which it cannot read)."""
    if config.registry.framing != "single-object":
        return False
    if card.event_schema is not None or config.registry.events_format != "avro":
        raise ConfigError(f"single-object framing is for the demo events in Avro; {card.ref} binds "
                          f"{card.binding.name}, input format {config.registry.events_format}")
    follows = config.control_topic if isinstance(config, ScoringJobConfig) else config.labels_topic
    if follows:
        raise ConfigError(f"single-object framing reads no control or labels topic ({follows} carries the "
                          f"Confluent wire): follow control and join labels on the Confluent wire")
    return True


def with_schema_ids_at_start(config, card=None):
    """A scoring or drift config that names its registry but no schema ids (a Kubernetes manifest's,
    written before any registry gave one): the ids registered now, at the job's start, as submit would.
    Without ``card`` the model's card is loaded only when ids are missing (a submitted config has them): the
    client then loads it once where its pipeline needs it (the JVM decoder's view, a labels join), or not at
    all."""
    from jobs.job_wire import registry_settings

    wire = config.registry
    if wire.framing == "single-object":
        return config
    if not wire.confluent:
        raise ConfigError("registry.url is missing: a job reads and writes the Confluent wire (schemas in a "
                          "Schema Registry); name it, or ask for registry.framing single-object (the demo events)")
    if _has_ids(config):
        return config
    registry = SchemaRegistry(registry_settings(wire))
    if card is None:
        from models.registry import load_model

        card = load_model(config.model, root=config.registry_dir).card
    ids = _scoring_schema_ids(registry, config, card) if isinstance(config, ScoringJobConfig) \
        else _drift_schema_ids(registry, config, card)
    return dataclasses.replace(config, registry=dataclasses.replace(wire, **ids)).checked()


def _has_ids(config) -> bool:
    """Whether ``config`` already holds the id of every topic schema its job writes or reads by id."""
    wire = config.registry
    if isinstance(config, ScoringJobConfig):
        needed = [wire.scored_schema_id, wire.dead_letter_schema_id,
                  *([wire.shadow_schema_id] if config.shadow_topic else []),
                  *([wire.control_schema_id] if config.control_topic else [])]
    else:
        needed = [wire.scored_schema_id, wire.alerts_schema_id, wire.control_schema_id,
                  *([wire.labels_schema_id] if config.labels_topic else [])]
    return all(needed) and bool(wire.events_schema_id or wire.events_format == "json")


def _scoring_schema_ids(registry: SchemaRegistry, config: ScoringJobConfig, card) -> dict[str, int]:
    roles = {"scored": config.scored_topic, "dead_letter": config.dead_letter_topic}
    if config.shadow_topic:
        roles["scored_shadow"] = config.shadow_topic
    if config.control_topic:
        roles["control"] = config.control_topic
    ids = register_topic_schemas(registry, roles)
    return {"events_schema_id": _events_schema_id(registry, config, card),
            "scored_schema_id": ids[subject_for(config.scored_topic)],
            "dead_letter_schema_id": ids[subject_for(config.dead_letter_topic)],
            "shadow_schema_id": ids.get(subject_for(config.shadow_topic or ""), 0),
            "control_schema_id": ids.get(subject_for(config.control_topic or ""), 0)}


def _drift_schema_ids(registry: SchemaRegistry, config, card) -> dict[str, int]:
    """The events', scored records', alerts', control's and (when joined) labels' schema ids."""
    roles = {"scored": config.scored_topic, "drift_alerts": config.alerts_topic, "control": config.control_topic,
             **({"labels": config.labels_topic} if config.labels_topic else {})}
    ids = register_topic_schemas(registry, roles)
    return {"events_schema_id": _events_schema_id(registry, config, card),
            "scored_schema_id": ids[subject_for(config.scored_topic)],
            "alerts_schema_id": ids[subject_for(config.alerts_topic)],
            "control_schema_id": ids[subject_for(config.control_topic)],
            "labels_schema_id": ids.get(subject_for(config.labels_topic or ""), 0)}


def _events_schema_id(registry: SchemaRegistry, config, card) -> int:
    """The card's schema, registered under ``<events>-value`` (0 for JSON input: that topic carries no Avro)."""
    if config.registry.events_format == "json":
        return 0
    return register_subject(registry, subject_for(config.events_topic), dict(card.binding.schema))


def cluster_decoder_jar(settings: Settings, wire: RegistryWire) -> str | None:
    """The JVM decoder's jar where the cluster's image has it (``STREAMSCORE_JOBS_DECODER_JAR``), for a job
    that decodes in the JVM: the Confluent wire in Avro, the settings not asking for the Python decoder."""
    source = settings.schema_registry
    if source.decoder != "jvm" or not wire.confluent or wire.events_format != "avro":
        return None
    return source.jobs_decoder_jar


def _decoder_jar(settings: Settings, wire: RegistryWire) -> str | None:
    """The JVM decoder's jar: the cluster's own (:func:`cluster_decoder_jar`), or one built by Maven once per
    version of ``jobs/udf`` and shipped with the job; None where the job decodes in Python (the settings ask
    for it, or the events are JSON). A registry's login and CA reach the Java function as file paths
    (``jobs.jvm_decode.registry_access``)."""
    if settings.schema_registry.decoder != "jvm" or wire.events_format != "avro":
        return None
    cluster_jar = cluster_decoder_jar(settings, wire)
    if cluster_jar:
        return cluster_jar
    from jobs.jars import udf_jar
    from streamscore.foundation.errors import StackError

    try:
        return udf_jar(settings.cache_dir).resolve().as_uri()
    except StackError as exc:
        raise ConfigError(f"{exc}\n  (or decode in Python, slower: STREAMSCORE_DECODER=python)") from exc


def registry_wire(settings: Settings, asked: RegistryWire = RegistryWire(), **schema_ids: int) -> RegistryWire:
    """The registry as the jobs reach it, its login (names and file paths only), and the schema ids."""
    source = settings.schema_registry
    if source.username and not source.password_file:
        raise ConfigError("the jobs log in to the schema registry with a password file: set "
                          "STREAMSCORE_SCHEMA_REGISTRY_PASSWORD_FILE (not _PASSWORD), on a path the TaskManagers "
                          "can read")
    return RegistryWire(url=source.url_for_jobs, username=source.username,
                        password_file=str(source.password_file) if source.password_file else None,
                        ca_file=str(source.ca_file) if source.ca_file else None, wait_ms=asked.wait_ms,
                        events_format=asked.events_format, **schema_ids)


def with_drift_registry_wire(settings: Settings, config, card):
    """A drift job config (``jobs.drift_config.DriftJobConfig``) that reads a bound model's events and scored
    records on the Confluent wire: the ids of their schemas, registered as the scoring job does."""
    if _single_object(config, card):
        return config
    wire = registry_wire(settings, config.registry,
                         **_drift_schema_ids(SchemaRegistry(settings.schema_registry), config, card))
    return dataclasses.replace(config, registry=wire).checked()
