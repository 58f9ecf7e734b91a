"""Kafka and Redis security settings: parsed once, never printable, rendered for every kind of client."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from connectors.kafka_clients import client_config
from connectors.kafka_security import FLINK_SHADED_KAFKA_PREFIX, java_client_properties, librdkafka_properties
from connectors.redis_client import redis_kwargs
from jobs import kafka_tables
from jobs.job_secrets import ENV_VAR, job_kafka_properties, job_secrets_env, without_secrets
from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import ConfigError, StackError
from streamscore.foundation.security import Secret
from streamscore.stack import security_conf
from streamscore.stack.services import KafkaService, RedisService

PLANTED = 'Pl@nted-"pw"\\-4711'  # quotes and a backslash: escaping must hold too
FAKE_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
FAKE_KEY = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def pem_files(tmp_path):
    files = {}
    for name, text in (("ca.pem", FAKE_PEM), ("broker.pem", FAKE_PEM), ("broker.key", FAKE_KEY)):
        files[name] = tmp_path / name
        files[name].write_text(text)
    return files


def sasl_env(tmp_path: Path, pem_files, **extra) -> dict[str, str]:
    secret = tmp_path / "kafka-password"
    secret.write_text(PLANTED + "\n")
    env = {"STREAMSCORE_HOME": str(tmp_path / "home"), "STREAMSCORE_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
           "STREAMSCORE_KAFKA_SASL_USERNAME": "alice", "STREAMSCORE_KAFKA_SASL_PASSWORD_FILE": str(secret),
           "STREAMSCORE_KAFKA_SSL_CA_FILE": str(pem_files["ca.pem"]),
           "STREAMSCORE_KAFKA_BROKER_CERT_FILE": str(pem_files["broker.pem"]),
           "STREAMSCORE_KAFKA_BROKER_KEY_FILE": str(pem_files["broker.key"])}
    return env | extra


def test_defaults_are_plaintext_and_change_no_client_config():
    settings = load_settings({})
    assert settings.kafka_security.protocol == "PLAINTEXT" and settings.redis_security.password is None
    assert client_config(settings) == {"bootstrap.servers": "127.0.0.1:9092", "log_level": 4}
    assert java_client_properties(settings.kafka_security) == {}
    assert redis_kwargs(settings) == {"host": "127.0.0.1", "port": 6379, "socket_timeout": 2.0,
                                      "socket_connect_timeout": 2.0}
    assert security_conf.listener_properties(settings, Path("/nonexistent")) == {}
    assert security_conf.redis_auth_lines(settings) == ""


def test_a_secret_never_prints():
    secret = Secret(PLANTED)
    assert repr(secret) == str(secret) == f"{secret}" == "***"
    assert secret.reveal() == PLANTED
    with pytest.raises(TypeError):
        json.dumps(secret)


def test_the_password_is_in_no_printable_view_of_the_settings(tmp_path, pem_files):
    settings = load_settings(sasl_env(tmp_path, pem_files, STREAMSCORE_REDIS_PASSWORD=PLANTED))
    assert settings.kafka_security.password.reveal() == PLANTED  # first line of the file
    assert settings.redis_security.password.reveal() == PLANTED
    for text in (repr(settings), str(settings), json.dumps(settings.describe())):
        assert PLANTED not in text and "4711" not in text
    assert "SASL_SSL SCRAM-SHA-512 user=alice password=***" in settings.describe()["kafka_security"]


@pytest.mark.parametrize("extra, message", [
    ({"STREAMSCORE_KAFKA_SASL_USERNAME": ""}, "needs STREAMSCORE_KAFKA_SASL_USERNAME"),
    ({"STREAMSCORE_KAFKA_SASL_PASSWORD": "x"}, "not both"),
    ({"STREAMSCORE_KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of PLAINTEXT, SSL, SASL_SSL, SASL_PLAINTEXT"),
    ({"STREAMSCORE_KAFKA_SASL_MECHANISM": "GSSAPI"}, "SCRAM-SHA-512, SCRAM-SHA-256, PLAIN"),
    ({"STREAMSCORE_KAFKA_SSL_CA_FILE": "/nonexistent/ca.pem"}, "no such file"),
    ({"STREAMSCORE_KAFKA_SSL_CERT_FILE": "{ca}"}, "go together"),
    ({"STREAMSCORE_KAFKA_SSL_ENDPOINT_IDENTIFICATION": "maybe"}, "https or none"),
    ({"STREAMSCORE_REDIS_USERNAME": "bob"}, "needs STREAMSCORE_REDIS_PASSWORD"),
    ({"STREAMSCORE_REDIS_TLS": "perhaps"}, "1/0"),
    ({"STREAMSCORE_REDIS_USERNAME": "bob smith", "STREAMSCORE_REDIS_PASSWORD": "x"}, "letters, digits"),
])
def test_bad_security_settings_give_one_clear_error(tmp_path, pem_files, extra, message):
    extra = {k: v.format(ca=pem_files["ca.pem"]) for k, v in extra.items()}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        load_settings(sasl_env(tmp_path, pem_files, **extra))
    assert PLANTED not in str(info.value)


def test_an_unreadable_password_file_is_named_not_shown(tmp_path, pem_files):
    env = sasl_env(tmp_path, pem_files, STREAMSCORE_KAFKA_SASL_PASSWORD_FILE=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"KAFKA_SASL_PASSWORD_FILE: cannot read .*missing"):
        load_settings(env)


def test_librdkafka_gets_protocol_sasl_and_tls(tmp_path, pem_files):
    settings = load_settings(sasl_env(tmp_path, pem_files, STREAMSCORE_KAFKA_SSL_ENDPOINT_IDENTIFICATION="none"))
    conf = client_config(settings)
    assert {k: conf[k] for k in ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password",
                                 "ssl.ca.location", "ssl.endpoint.identification.algorithm")} == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
        "sasl.password": PLANTED, "ssl.ca.location": str(pem_files["ca.pem"].resolve()),
        "ssl.endpoint.identification.algorithm": "none"}
    assert callable(conf["error_cb"])  # a refused login fails at once
    plain = librdkafka_properties(load_settings({"STREAMSCORE_KAFKA_SECURITY_PROTOCOL": "SSL"}).kafka_security)
    assert plain == {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "https"}


def test_java_clients_get_a_shaded_escaped_jaas_config_and_inline_pem(tmp_path, pem_files):
    props = java_client_properties(load_settings(sasl_env(tmp_path, pem_files)).kafka_security)
    assert props["security.protocol"] == "SASL_SSL" and props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["sasl.jaas.config"] == (
        f'{FLINK_SHADED_KAFKA_PREFIX}org.apache.kafka.common.security.scram.ScramLoginModule required '
        'username="alice" password="Pl@nted-\\"pw\\"\\\\-4711";')
    assert props["ssl.truststore.type"] == "PEM"
    assert props["ssl.truststore.certificates"] == FAKE_PEM.strip()
    assert props["ssl.endpoint.identification.algorithm"] == "https"


def test_a_job_gets_its_properties_from_a_private_file_that_is_gone_afterwards(tmp_path, pem_files, monkeypatch):
    settings = load_settings(sasl_env(tmp_path, pem_files))
    with job_secrets_env(settings) as env:
        path = Path(env[ENV_VAR])
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert job_kafka_properties(env) == java_client_properties(settings.kafka_security)
        monkeypatch.setenv(ENV_VAR, str(path))
        ddl = kafka_tables.source_ddl(kafka_tables.KafkaTableSpec("t", "events", "127.0.0.1:9092"), "g")
        sink = kafka_tables.sink_ddl(kafka_tables.KafkaTableSpec("s", "scored", "127.0.0.1:9092"),
                                      kafka_tables.SinkDelivery("p", 60000))
    assert not path.exists()
    for text in (ddl, sink):
        assert "'properties.security.protocol' = 'SASL_SSL'" in text
        assert "'properties.sasl.jaas.config'" in text and "'properties.ssl.truststore.type' = 'PEM'" in text
    with job_secrets_env(load_settings({})) as env:
        assert env == {}


def test_plaintext_ddl_is_unchanged(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    ddl = kafka_tables.source_ddl(kafka_tables.KafkaTableSpec("t", "events", "127.0.0.1:9092"), "g")
    assert "security" not in ddl and "sasl" not in ddl


def test_job_processes_get_no_password_variables():
    env = {"PATH": "/bin", "STREAMSCORE_KAFKA_SASL_PASSWORD": PLANTED, "STREAMSCORE_REDIS_PASSWORD_FILE": "/x",
           "STREAMSCORE_KAFKA_SASL_USERNAME": "alice"}
    assert without_secrets(env) == {"PATH": "/bin", "STREAMSCORE_KAFKA_SASL_USERNAME": "alice"}


def test_the_local_broker_renders_a_sasl_ssl_listener(tmp_path, pem_files):
    settings = load_settings(sasl_env(tmp_path, pem_files, STREAMSCORE_KAFKA_BOOTSTRAP="127.0.0.1:19500"))
    service = KafkaService(settings)
    props = dict(line.split("=", 1) for line in service.server_properties().splitlines())
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19500,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19500"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["listener.name.sasl_ssl.ssl.keystore.key"] == FAKE_KEY.strip().replace("\n", "\\n")
    assert 'username="streamscore-broker"' in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert PLANTED not in service.server_properties()  # the client user's password is in no broker file
    assert stat.S_IMODE((service.dir / "broker-scram.secret").stat().st_mode) == 0o600
    with pytest.raises(StackError, match="cannot create a SCRAM user") as info:  # quotes: the format tool's syntax
        security_conf.scram_format_arguments(settings, service.dir)
    assert PLANTED not in str(info.value)
    (tmp_path / "plain-password").write_text("Plain-4711")
    args = security_conf.scram_format_arguments(load_settings(sasl_env(tmp_path, pem_files) | {
        "STREAMSCORE_KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "plain-password")}), service.dir)
    broker_password = (service.dir / "broker-scram.secret").read_text()
    assert args == ["--add-scram", f"SCRAM-SHA-512=[name=streamscore-broker,password={broker_password}]",
                    "--add-scram", "SCRAM-SHA-512=[name=alice,password=Plain-4711]"]


def test_the_local_broker_refuses_what_it_cannot_serve(tmp_path, pem_files):
    plain = load_settings(sasl_env(tmp_path, pem_files, STREAMSCORE_KAFKA_SASL_MECHANISM="PLAIN"))
    with pytest.raises(StackError, match="SCRAM only"):
        KafkaService(plain).server_properties()
    env = sasl_env(tmp_path, pem_files)
    del env["STREAMSCORE_KAFKA_BROKER_CERT_FILE"], env["STREAMSCORE_KAFKA_BROKER_KEY_FILE"]
    with pytest.raises(StackError, match="KAFKA_BROKER_CERT_FILE"):
        KafkaService(load_settings(env)).server_properties()


def test_redis_auth_and_tls_reach_the_client_and_the_local_server(tmp_path, pem_files):
    env = {"STREAMSCORE_HOME": str(tmp_path / "home"), "STREAMSCORE_REDIS_PASSWORD": PLANTED}
    settings = load_settings(env)
    assert redis_kwargs(settings)["password"] == PLANTED and "username" not in redis_kwargs(settings)
    assert security_conf.redis_auth_lines(settings) == 'requirepass "Pl@nted-\\"pw\\"\\\\-4711"\n'
    acl = load_settings(env | {"STREAMSCORE_REDIS_USERNAME": "svc"})
    assert redis_kwargs(acl)["username"] == "svc"
    assert security_conf.redis_auth_lines(acl).startswith("user default off\nuser svc on \">Pl@nted-")
    tls = load_settings(env | {"STREAMSCORE_REDIS_TLS": "1", "STREAMSCORE_REDIS_CA_FILE": str(pem_files["ca.pem"])})
    assert {k: redis_kwargs(tls)[k] for k in ("ssl", "ssl_ca_certs", "ssl_cert_reqs", "ssl_check_hostname")} == {
        "ssl": True, "ssl_ca_certs": str(pem_files["ca.pem"].resolve()), "ssl_cert_reqs": "required",
        "ssl_check_hostname": True}  # redis-py 5 checks no hostname unless told
    assert tls.redis_url.startswith("rediss://") and settings.redis_url.startswith("redis://")
    with pytest.raises(StackError, match="without TLS"):
        RedisService(tls).prepare()


def test_the_local_redis_config_holds_the_password_only_privately(tmp_path):
    if not (os.path.exists("/usr/bin/redis-server") or __import__("shutil").which("redis-server")):
        pytest.skip("no redis-server")
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path / "home"), "STREAMSCORE_REDIS_PASSWORD": PLANTED})
    service = RedisService(settings)
    spec = service.prepare()[0]
    assert spec.argv[1:] == [str(service.config_file)] and PLANTED not in " ".join(spec.argv)
    assert "requirepass" in service.config_file.read_text()
    assert stat.S_IMODE(service.config_file.stat().st_mode) == 0o600


def test_a_job_is_told_where_the_password_file_is_without_reading_the_environment(tmp_path, pem_files, monkeypatch):
    from jobs.submit import scoring_config_from_settings

    settings = load_settings(sasl_env(tmp_path, pem_files))
    for name in list(os.environ):  # the settings were read once: the submitter needs no variable now
        if name.startswith("STREAMSCORE_"):
            monkeypatch.delenv(name)
    config = scoring_config_from_settings(settings)
    assert config.auth.kafka_password_file == str(settings.kafka_security.password_file)
    assert Path(config.auth.kafka_password_file).is_file() and Path(config.auth.kafka_password_file).is_absolute()
    direct = load_settings({**sasl_env(tmp_path, pem_files, STREAMSCORE_KAFKA_SASL_PASSWORD_FILE=""),
                            "STREAMSCORE_KAFKA_SASL_PASSWORD": "direct-secret"})
    assert direct.kafka_security.password_file is None


def test_a_confluent_table_has_typed_columns_from_the_schema_and_the_id_as_its_key():
    from models.sensor_demo import READING_SCHEMA

    table = kafka_tables.ConfluentTable(kafka_tables.KafkaTableSpec("t", "readings", "127.0.0.1:9092"),
                                        READING_SCHEMA, "http://127.0.0.1:8085/apis/ccompat/v7", "reading_id")
    columns = kafka_tables.confluent_columns(READING_SCHEMA)
    assert "`machine_type` STRING NOT NULL" in columns and "`ts` TIMESTAMP(3) NOT NULL" in columns
    assert "`rpm` INT NOT NULL" in columns and "`firmware` STRING," not in columns and columns.endswith(
        "`firmware` STRING")
    source = kafka_tables.confluent_source_ddl(table, "g")
    assert "'format' = 'avro-confluent'" in source and "'avro-confluent.schema'" in source
    sink = kafka_tables.confluent_sink_ddl(table, kafka_tables.SinkDelivery("p", 60000))
    assert "'key.fields' = 'reading_id'" in sink and "'sink.delivery-guarantee' = 'exactly-once'" in sink
    assert "'sink.transaction-naming-strategy' = 'POOLING'" in sink  # the broker keeps a few ids, not one a checkpoint
    assert "'sink.transaction-naming-strategy' = 'INCREMENTING'" in kafka_tables.confluent_sink_ddl(
        table, kafka_tables.SinkDelivery("p", 60000, naming="incrementing"))
    assert "transaction-naming" not in kafka_tables.confluent_sink_ddl(
        table, kafka_tables.SinkDelivery("p", 60000, exactly_once=False))  # no transactions to name
    with pytest.raises(ConfigError, match="unions"):
        kafka_tables.confluent_columns({"fields": [{"name": "x", "type": ["null", "int", "string"]}]})


def test_a_private_file_that_existed_loosely_is_narrowed_before_the_secret_goes_in(tmp_path):
    from streamscore.foundation.security import write_private

    path = tmp_path / "redis.conf"
    path.write_text("old\n")
    path.chmod(0o644)
    write_private(path, "requirepass x\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "requirepass x\n"
    link = tmp_path / "link.conf"
    link.symlink_to(path)
    with pytest.raises(OSError):  # never written through a symlink
        write_private(link, "y\n")


def test_the_cache_refuses_a_redis_password_no_job_can_read(tmp_path):
    from jobs.scoring_config import ScoringJobConfig
    from jobs.submit import preflight

    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path), "STREAMSCORE_REDIS_PASSWORD": PLANTED,
                              "STREAMSCORE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    config = ScoringJobConfig(bootstrap="b", cache_enabled=True, redis_url="redis://127.0.0.1:6379/0").checked()
    with pytest.raises(ConfigError, match="set STREAMSCORE_REDIS_PASSWORD_FILE"):
        preflight(settings, config)  # before any Kafka call (nothing listens on port 1)


def test_the_jvm_decoder_reaches_a_registry_with_a_login_through_file_paths_only():
    from jobs.job_wire import RegistryWire
    from jobs.jvm_decode import decode_call, registry_access
    from jobs.scoring_config import ScoringJobConfig

    wire = RegistryWire(url="https://sr.example/apis/ccompat/v7", username="svc", password_file="/run/pw",
                        ca_file="/run/ca.pem", events_schema_id=1, scored_schema_id=2, dead_letter_schema_id=3)
    ScoringJobConfig(bootstrap="b", registry=wire, decoder_jar="/tmp/udf.jar").checked()  # no longer refused
    assert registry_access(wire) == {"username": "svc", "password_file": "/run/pw", "ca_file": "/run/ca.pem"}
    assert decode_call(wire, {"type": "record"}, {}).endswith(
        """'{}', '{"username":"svc","password_file":"/run/pw","ca_file":"/run/ca.pem"}')""")
    plain = RegistryWire(url="http://127.0.0.1:8081/apis/ccompat/v7", wait_ms=1000)
    assert registry_access(plain) == {}
    assert decode_call(plain, {"type": "record"}, {"7": {}}) == (  # the 5-argument call, as before
        """decode_confluent(payload, '{"type":"record"}', 'http://127.0.0.1:8081/apis/ccompat/v7', 1000, '{"7":{}}')""")
