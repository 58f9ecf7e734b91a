"""The local services' side of the security settings: Kafka's listener and SCRAM users, Redis's AUTH.

With ``STREAMSCORE_KAFKA_SECURITY_PROTOCOL`` other than PLAINTEXT the broker's client listener
speaks that protocol (the KRaft controller listener stays PLAINTEXT, bound to 127.0.0.1 like
everything of the local stack). For SASL the broker authenticates itself on its own listener
as an internal SCRAM user whose random password is kept in ``kafka/broker-scram.secret``
(mode 0600); the configured client user is created with its SCRAM credentials when the
storage is formatted, through an arguments file (mode 0600, deleted at once), so the password
never shows in a process's argv. server.properties (mode 0600) holds the internal user's
password and the broker's private key; the client user's password is in no file of the stack.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StackError
from streamscore.foundation.security import KafkaSecurity, write_private

BROKER_USER = "streamscore-broker"
_SCRAM_UNSAFE = set(',[]="\\') | {" "}


def listener_name(security: KafkaSecurity) -> str:
    return security.protocol  # the listener is named after its protocol: SASL_SSL://host:port


def listener_properties(settings: Settings, state_dir: Path) -> dict[str, str]:
    """Properties that replace the PLAINTEXT client listener; empty for PLAINTEXT."""
    sec = settings.kafka_security
    if sec.protocol == "PLAINTEXT":
        return {}
    name, host, port = listener_name(sec), settings.kafka.host, settings.kafka.port
    props = {
        "listeners": f"{name}://{host}:{port},CONTROLLER://{host}:{settings.kafka_controller_port}",
        "advertised.listeners": f"{name}://{host}:{port}",
        "inter.broker.listener.name": name,
        "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,{name}:{sec.protocol}",
    }
    if sec.uses_sasl:
        props.update(_sasl_properties(sec, name, broker_password(state_dir)))
    if sec.uses_tls:
        props.update(_tls_properties(sec, name))
    return props


def _sasl_properties(sec: KafkaSecurity, name: str, password: str) -> dict[str, str]:
    if not sec.sasl_mechanism.startswith("SCRAM-"):
        raise StackError(f"kafka: the local broker supports SCRAM only, not {sec.sasl_mechanism} "
                         f"(use an external broker for PLAIN)")
    prefix = f"listener.name.{name.lower()}."
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{BROKER_USER}" password="{password}";')
    return {
        "sasl.enabled.mechanisms": sec.sasl_mechanism,
        "sasl.mechanism.inter.broker.protocol": sec.sasl_mechanism,
        f"{prefix}{sec.sasl_mechanism.lower()}.sasl.jaas.config": jaas,
    }


def _tls_properties(sec: KafkaSecurity, name: str) -> dict[str, str]:
    if not (sec.broker_cert_file and sec.broker_key_file and sec.ca_file):
        raise StackError("kafka: a local TLS listener needs STREAMSCORE_KAFKA_BROKER_CERT_FILE, "
                         "STREAMSCORE_KAFKA_BROKER_KEY_FILE (PEM, PKCS#8 key) and STREAMSCORE_KAFKA_SSL_CA_FILE")
    prefix = f"listener.name.{name.lower()}."
    props = {
        f"{prefix}ssl.keystore.type": "PEM",
        f"{prefix}ssl.keystore.certificate.chain": _pem_value(sec.broker_cert_file),
        f"{prefix}ssl.keystore.key": _pem_value(sec.broker_key_file),
        f"{prefix}ssl.truststore.type": "PEM",
        f"{prefix}ssl.truststore.location": str(sec.ca_file),
        # the broker's own inter-broker client trusts the same CA
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(sec.ca_file),
    }
    if not sec.uses_sasl:  # SSL alone: a client certificate is the authentication
        props[f"{prefix}ssl.client.auth"] = "required"
    return props


def _pem_value(path: Path) -> str:
    """A PEM file as one server.properties value (newlines escaped as Java properties read them)."""
    text = path.read_text(encoding="ascii").strip()
    if "-----BEGIN " not in text:
        raise StackError(f"kafka: {path} is not a PEM file")
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def broker_password(state_dir: Path) -> str:
    """The internal broker user's password: random, made once, kept 0600 beside the broker's state."""
    path = state_dir / "broker-scram.secret"
    if not path.is_file():
        state_dir.mkdir(parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(24))
    return path.read_text().strip()


def scram_format_arguments(settings: Settings, state_dir: Path) -> list[str]:
    """``--add-scram`` arguments for kafka-storage format: the broker user and the configured client user."""
    sec = settings.kafka_security
    if not sec.uses_sasl:
        return []
    password = sec.password.reveal() if sec.password else ""
    if _SCRAM_UNSAFE & set(password):
        raise StackError("kafka: the local broker cannot create a SCRAM user whose password holds spaces, "
                         "quotes, backslashes, ',', '=' or brackets; choose another password")
    users = [(BROKER_USER, broker_password(state_dir)), (sec.username, password)]
    args: list[str] = []
    for name, secret in users:
        args += ["--add-scram", f"{sec.sasl_mechanism}=[name={name},password={secret}]"]
    return args


def scram_marker(settings: Settings) -> str:
    """What the formatted storage was given: mechanism and user name (never the password)."""
    sec = settings.kafka_security
    return f"{sec.sasl_mechanism} {sec.username}\n" if sec.uses_sasl else "none\n"


def scrub(text: str, settings: Settings, state_dir: Path) -> str:
    """``text`` with the SCRAM passwords (the client user's and the broker's) replaced by ***."""
    sec = settings.kafka_security
    for secret in (sec.password.reveal() if sec.password else "", _existing_broker_password(state_dir)):
        if secret:
            text = text.replace(secret, "***")
    return text


def _existing_broker_password(state_dir: Path) -> str:
    path = state_dir / "broker-scram.secret"
    return path.read_text().strip() if path.is_file() else ""


def redis_auth_lines(settings: Settings) -> str:
    """redis.conf lines: requirepass (or an ACL user) when a Redis password is set; nothing otherwise."""
    sec = settings.redis_security
    if not sec.password:
        return ""
    if sec.username and sec.username != "default":
        return f"user default off\nuser {sec.username} on {_conf_quote('>' + sec.password.reveal())} ~* &* +@all\n"
    return f"requirepass {_conf_quote(sec.password.reveal())}\n"


def _conf_quote(value: str) -> str:
    """A redis.conf argument in double quotes (redis-server unescapes \\\\ and \\")."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
