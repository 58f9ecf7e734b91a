"""The Kafka security settings rendered for each kind of client: librdkafka (confluent-kafka) and Java (Flink).

Both renderings come from the one :class:`~streamscore.foundation.security.KafkaSecurity` of the settings.
Their output holds the password in clear: hand it to a client, never print or log it.
"""

from __future__ import annotations

from pathlib import Path

from streamscore.foundation.errors import ConfigError
from streamscore.foundation.security import KafkaSecurity

# flink-sql-connector-kafka relocates the Kafka client under this prefix, so a JAAS login module
# must be named with it (the unshaded name fails with "No LoginModule found").
FLINK_SHADED_KAFKA_PREFIX = "org.apache.flink.kafka.shaded."
_LOGIN_MODULES = {
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
}


def librdkafka_properties(security: KafkaSecurity) -> dict[str, str]:
    """security.protocol, SASL and TLS settings for confluent-kafka; empty for PLAINTEXT."""
    if security.protocol == "PLAINTEXT":
        return {}
    props = {"security.protocol": security.protocol}
    if security.uses_sasl:
        props.update({"sasl.mechanism": security.sasl_mechanism, "sasl.username": security.username or "",
                      "sasl.password": security.password.reveal() if security.password else ""})
    if security.uses_tls:
        props["ssl.endpoint.identification.algorithm"] = "https" if security.endpoint_identification else "none"
        if security.ca_file:
            props["ssl.ca.location"] = str(security.ca_file)
        if security.cert_file and security.key_file:
            props.update({"ssl.certificate.location": str(security.cert_file),
                          "ssl.key.location": str(security.key_file)})
    return props


def jaas_config(security: KafkaSecurity, module_prefix: str = "") -> str:
    """``sasl.jaas.config`` for the Java client, values quoted and escaped."""
    module = module_prefix + _LOGIN_MODULES[security.sasl_mechanism]
    password = security.password.reveal() if security.password else ""
    return f'{module} required username="{_jaas_escape(security.username or "")}" password="{_jaas_escape(password)}";'


def _jaas_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def java_client_properties(security: KafkaSecurity, module_prefix: str = FLINK_SHADED_KAFKA_PREFIX) -> dict[str, str]:
    """The same settings for Kafka's Java client (the Flink source and sinks); empty for PLAINTEXT.

    Certificates travel inline (``ssl.truststore.certificates``, ``ssl.keystore.key``), PEM,
    so the TaskManagers need no file of ours wherever they run.
    """
    if security.protocol == "PLAINTEXT":
        return {}
    props = {"security.protocol": security.protocol}
    if security.uses_sasl:
        props.update({"sasl.mechanism": security.sasl_mechanism,
                      "sasl.jaas.config": jaas_config(security, module_prefix)})
    if security.uses_tls:
        props["ssl.endpoint.identification.algorithm"] = "https" if security.endpoint_identification else ""
        if security.ca_file:
            props.update({"ssl.truststore.type": "PEM",
                          "ssl.truststore.certificates": _read_pem(security.ca_file, "KAFKA_SSL_CA_FILE")})
        if security.cert_file and security.key_file:
            props.update({"ssl.keystore.type": "PEM",
                          "ssl.keystore.certificate.chain": _read_pem(security.cert_file, "KAFKA_SSL_CERT_FILE"),
                          "ssl.keystore.key": _read_pem(security.key_file, "KAFKA_SSL_KEY_FILE")})
    return props


def _read_pem(path: Path, setting: str) -> str:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"STREAMSCORE_{setting}: cannot read {path}: {type(exc).__name__}") from exc
    if "-----BEGIN " not in text:
        raise ConfigError(f"STREAMSCORE_{setting}: {path} is not PEM")
    return text.strip()
