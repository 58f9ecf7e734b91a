"""Flink SQL glue of the JVM decoder: ``decode_confluent`` (the project's Java function, ``jobs/udf``)
between the raw Kafka source and the vectorized scoring step.

The source stays raw bytes plus coordinates, so a record no format could read still reaches the
scoring step (and becomes a dead letter with its bytes) instead of failing the job. The Java
function decodes each value against the card's event schema cut to the fields the model reads
(``jobs.decoded_batch.reader_projection``), and tags records it cannot decode with a reject
code. A registry that does not answer makes it wait (bounded), never dead-letter; the id the job
registered its event schema under is handed to the function with that schema, so a task restarted
during an outage still decodes the records its own producers write.
"""

from __future__ import annotations

import json

from jobs.decoded_batch import reader_projection
from jobs.job_wire import RegistryWire
from jobs.scoring_config import ScoringJobConfig

FUNCTION_CLASS = "io.streamscore.udf.ConfluentAvroDecode"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def registry_access(wire: RegistryWire) -> dict[str, str]:
    """The registry's login and CA as the Java function reads them: a username and file paths on the
    TaskManager, never the password (the literal shows in the job's plan and the web UI)."""
    access = {"username": wire.username, "password_file": wire.password_file, "ca_file": wire.ca_file}
    return {key: value for key, value in access.items() if value}


def decode_call(wire: RegistryWire, reader: dict, known: dict) -> str:
    """The SQL call of ``decode_confluent`` on ``payload``: the reader schema, the registry as the jobs reach
    it, how long to wait for it, the writer schemas known by id, and the registry access where it needs one."""
    access = registry_access(wire)
    extra = f", {_literal(_json(access))}" if access else ""
    return (f"decode_confluent(payload, {_literal(_json(reader))}, {_literal(wire.url)}, {int(wire.wait_ms)}, "
            f"{_literal(_json(known))}{extra})")


def _json(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def decoded_scoring_view(t_env, config: ScoringJobConfig, source_table: str, score_function: str) -> str:
    """Register ``decode_confluent`` and return the SELECT of the scored view: ``score_function`` applied to
    each raw record's payload, coordinates, decode tags and decoded fields (as ``r``), with its timestamp."""
    from models.registry import load_model

    card = load_model(config.model, root=config.registry_dir).card
    t_env.execute_sql(f"CREATE TEMPORARY FUNCTION decode_confluent AS '{FUNCTION_CLASS}' LANGUAGE JAVA")
    projection = reader_projection(card)
    known = {str(config.registry.events_schema_id): card.binding.schema} if config.registry.events_schema_id \
        else {}
    fields = ", ".join(f"d.{_column(field['name'])}" for field in projection["fields"])
    return (f"SELECT {score_function}(payload, src_partition, src_offset, src_timestamp, d.ok, d.reason_code, "
            f"d.reason, {fields}) AS r, src_timestamp FROM (SELECT {decode_call(config.registry, projection, known)} "
            f"AS d, payload, src_partition, src_offset, src_timestamp FROM {source_table})")
