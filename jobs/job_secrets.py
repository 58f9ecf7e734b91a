"""How a Flink job gets the Kafka security settings without a password in its argv or config JSON.

Job configs travel as JSON on the ``flink run`` command line, which any user of the machine can
read in the process list and which Flink's client logs. So the submitter writes the Kafka client
security properties (the Java rendering of the settings: protocol, SASL JAAS config, inline
CA certificates) to a file of its own (mode 0600, in a 0700 folder under the stack's run dir),
names that file in the environment of the job's driver process, and deletes it as soon as the
job is submitted (or, for an embedded run, has ended). The driver reads it while it builds its
Kafka DDL (:func:`job_kafka_properties`), so the properties end up only in the job graph's
serialized Kafka clients, which Flink's REST API and logs do not show (Flink masks ``*jaas*`` and
``*password*`` options). One exception: when a Kafka table cannot be created, Flink's error lists its
options, and ``properties.ssl.keystore.key`` (an mTLS client's inline private key) is not among the
keys it masks; docs/security.md says so.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.kafka_security import java_client_properties
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import ConfigError
from streamscore.foundation.security import write_private

ENV_VAR = "STREAMSCORE_JOB_KAFKA_PROPERTIES_FILE"


@contextmanager
def job_secrets_env(settings: Settings) -> Iterator[dict[str, str]]:
    """Environment entries for a job's driver process: {} for PLAINTEXT, else the path of a 0600 file."""
    props = java_client_properties(settings.kafka_security)
    if not props:
        yield {}
        return
    folder = settings.run_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / f"kafka-{uuid.uuid4().hex}.json"
    write_private(path, json.dumps(props))
    try:
        yield {ENV_VAR: str(path)}
    finally:
        path.unlink(missing_ok=True)


def without_secrets(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` less the STREAMSCORE_*PASSWORD* variables: a job needs none of them (it reads
    its properties file), and Flink's client logs the whole environment of a job's driver."""
    return {k: v for k, v in environ.items() if not (k.startswith("STREAMSCORE_") and "PASSWORD" in k)}


def job_kafka_properties(environ: dict[str, str] | None = None) -> dict[str, str]:
    """In the job's driver: the Kafka client properties the submitter left for it ({} when none)."""
    raw = (os.environ if environ is None else environ).get(ENV_VAR)
    if not raw:
        return {}
    try:
        props = json.loads(Path(raw).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{ENV_VAR}: cannot read the Kafka properties file {raw}: {type(exc).__name__}") from exc
    if not isinstance(props, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in props.items()):
        raise ConfigError(f"{ENV_VAR}: {raw} must hold a JSON object of strings")
    return props
