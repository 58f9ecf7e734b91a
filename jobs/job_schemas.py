"""At submit: the schemas a scoring job's topics carry, registered in the Schema Registry, and their ids
handed to the job (``jobs.job_wire.RegistryWire``), so its workers write without asking the registry.

A model whose card binds an event schema scores the Confluent wire: its schema is registered
under ``<events>-value`` (an incompatible change is refused by the subject's rule, in one line),
the output schemas under theirs. The demo's fraud model keeps the single-object wire.
"""

from __future__ import annotations

import dataclasses

from connectors.schema_registry import SchemaRegistry, register_subject, register_topic_schemas, subject_for
from jobs.job_wire import RegistryWire
from jobs.scoring_config import ScoringJobConfig
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import ConfigError


def with_registry_wire(settings: Settings, config: ScoringJobConfig, card) -> ScoringJobConfig:
    """``config`` with its ``registry`` part filled in (Confluent wire), or unchanged (single-object)."""
    if _unbound(config, card):
        return config
    registry = SchemaRegistry(settings.schema_registry)
    roles = {"scored": config.scored_topic, "dead_letter": config.dead_letter_topic}
    if config.shadow_topic:
        roles["scored_shadow"] = config.shadow_topic
    ids = register_topic_schemas(registry, roles)
    wire = _wire(settings, config.registry, events_schema_id=_events_schema_id(registry, config, card),
                 scored_schema_id=ids[subject_for(config.scored_topic)],
                 dead_letter_schema_id=ids[subject_for(config.dead_letter_topic)],
                 shadow_schema_id=ids.get(subject_for(config.shadow_topic or ""), 0))
    return dataclasses.replace(config, registry=wire, decoder_jar=_decoder_jar(settings, wire)).checked()


def _unbound(config, card) -> bool:
    """Whether ``card`` binds no event schema (its jobs keep the single-object wire); JSON input needs one."""
    if card.event_schema is None and config.registry.events_format != "avro":
        raise ConfigError(f"--input-format {config.registry.events_format} needs a model whose card binds its event "
                          f"schema (models register --schema); {card.ref} binds none")
    return card.event_schema is None


def _events_schema_id(registry: SchemaRegistry, config, card) -> int:
    """The card's schema, registered under ``<events>-value`` (0 for JSON input: that topic carries no Avro)."""
    if config.registry.events_format == "json":
        return 0
    return register_subject(registry, subject_for(config.events_topic), dict(card.event_schema.schema))


def _decoder_jar(settings: Settings, wire: RegistryWire) -> str | None:
    """The JVM decoder's jar (built by Maven once per version of ``jobs/udf``), unless the settings ask for
    the Python decoder, or the registry needs a login or its own CA (the JVM decoder speaks plain or
    publicly trusted HTTPS without credentials; the Python decoder does the rest)."""
    if settings.schema_registry.decoder != "jvm" or wire.username or wire.ca_file or wire.events_format != "avro":
        return None
    from jobs.jars import udf_jar
    from streamscore.foundation.errors import StackError

    try:
        return udf_jar(settings.cache_dir).resolve().as_uri()
    except StackError as exc:
        raise ConfigError(f"{exc}\n  (or decode in Python, slower: STREAMSCORE_DECODER=python)") from exc


def _wire(settings: Settings, asked: RegistryWire, **schema_ids: int) -> RegistryWire:
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
    if _unbound(config, card):
        return config
    registry = SchemaRegistry(settings.schema_registry)
    scored_id = register_topic_schemas(registry, {"scored": config.scored_topic})[subject_for(config.scored_topic)]
    wire = _wire(settings, config.registry, events_schema_id=_events_schema_id(registry, config, card),
                 scored_schema_id=scored_id)
    return dataclasses.replace(config, registry=wire).checked()
