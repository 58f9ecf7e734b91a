"""The settings of a second, secured stack for the security tests: free ports, own home,
Kafka on SASL_SSL (SCRAM-SHA-512) with a test CA, Redis with a password."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def free_port(pair: bool = False) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not pair or bindable(port + 1):
            return port


def bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def private_file(path: Path, text: str) -> Path:
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def secure_env(root: Path, tls, *, kafka_password: str, redis_password: str) -> dict[str, str]:
    """``STREAMSCORE_*`` variables of the secured stack under ``root`` (``tls``: security_certs.TlsFiles)."""
    return {
        "STREAMSCORE_HOME": str(root / "home"),
        "STREAMSCORE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "STREAMSCORE_KAFKA_CONTROLLER_PORT": str(free_port()), "STREAMSCORE_KAFKA_HEAP": "512m",
        "STREAMSCORE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMSCORE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "STREAMSCORE_KAFKA_SASL_USERNAME": "alice",
        "STREAMSCORE_KAFKA_SASL_PASSWORD_FILE": str(private_file(root / "kafka.pw", kafka_password)),
        "STREAMSCORE_KAFKA_SSL_CA_FILE": str(tls.ca_cert),
        "STREAMSCORE_KAFKA_BROKER_CERT_FILE": str(tls.server_cert),
        "STREAMSCORE_KAFKA_BROKER_KEY_FILE": str(tls.server_key),
        "STREAMSCORE_REDIS": f"127.0.0.1:{free_port()}",
        "STREAMSCORE_REDIS_PASSWORD_FILE": str(private_file(root / "redis.pw", redis_password)),
        "STREAMSCORE_FLINK_REST": f"127.0.0.1:{free_port()}", "STREAMSCORE_FLINK_RPC_PORT": str(free_port()),
        "STREAMSCORE_FLINK_METRICS_PORT": str(free_port(pair=True)), "STREAMSCORE_FLINK_SLOTS": "1",
        "STREAMSCORE_FLINK_TASKMANAGER_MEMORY": "1536m",
        "STREAMSCORE_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{free_port(pair=True)}/apis/ccompat/v7",
        # as the suite's other stacks: its jobs' secrets-file path then travels through the warm submitter
        "STREAMSCORE_FLINK_SUBMITTER": os.environ.get("STREAMSCORE_FLINK_SUBMITTER", "cli"),
    }
