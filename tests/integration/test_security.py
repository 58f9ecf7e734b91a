"""The security baseline for real: a second stack (own home, free ports) with Kafka on a SASL_SSL
listener (SCRAM-SHA-512, certificates made here) and Redis with a password.

Every kind of client goes through it (confluent-kafka admin/producer/consumer, the CLI, a PyFlink
job on the stack's session cluster), a wrong password fails at once with one clear line, and the
planted passwords are then looked for everywhere they must not be: every file under the stack's
home (logs, configs, checkpoints), the CLI's output, the Flink REST API, every process's argv.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from secure_stack import free_port, private_file, secure_env
from security_certs import make_tls_files
from topic_reads import read_until

from connectors.kafka_clients import create_topics, existing_topics, transactional_producer
from connectors.kafka_errors import KafkaAuthError
from connectors.kafka_reads import read_topic
from connectors.redis_client import RedisClientError, redis_client, server_info
from jobs.flink_cluster import JOBS_DIR, cancel_job, rest, submit_python_job, wait_running
from jobs.submit import scoring_config_from_settings, submit_scoring
from models.register import register_model
from models.registry import DEFAULT_ROOT
from streamscore.foundation.config import TopicSpec, load_settings
from streamscore.foundation.security import Secret
from streamscore.foundation.vocabulary import LifecycleAction
from streamscore.harness.traffic import TrafficPlan, TrafficTopics, run_traffic
from streamscore.lifecycle import control as control_protocol
from streamscore.stack import Stack

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KAFKA_SECRET = "Zebra-Planted-7781"
REDIS_SECRET = "Quokka-Redis-5513"
DELAY_MS = 6000  # promotion activation delay: its commit must land within half of it over SASL_SSL, also when busy


@dataclasses.dataclass
class SecureStack:
    settings: object
    env: dict
    root: Path


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    root = tmp_path_factory.mktemp("secure")
    tls = make_tls_files(root / "tls")
    env = secure_env(root, tls, kafka_password=KAFKA_SECRET, redis_password=REDIS_SECRET)
    settings = load_settings(env)
    stack = Stack(settings)
    try:
        stack.up(only=["kafka", "redis", "registry", "flink"])  # the CLI registers topic schemas
        yield SecureStack(settings, env, root)
    finally:
        stack.down()


def _wrong_password(settings, secret: str = "wrong-password-123"):
    return dataclasses.replace(settings, kafka_security=dataclasses.replace(
        settings.kafka_security, password=Secret(secret)))


def _cli(secure: SecureStack, *args: str, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCORE_")} | secure.env | env_changes
    return subprocess.run([sys.executable, "-m", "streamscore.cli.main", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _topic(secure: SecureStack, partitions: int = 1) -> str:
    name = f"sec-{uuid.uuid4().hex[:8]}"
    assert create_topics(secure.settings, [TopicSpec("t", name, partitions)]) == {name: "created"}
    return name


def test_confluent_clients_work_over_sasl_ssl(secure):
    topic = _topic(secure, partitions=2)
    producer = transactional_producer(secure.settings)
    producer.begin_transaction()
    for i in range(200):
        producer.produce(topic, f"v{i}".encode(), key=f"k{i}".encode())
    producer.commit_transaction(30)
    values = sorted(r.value.decode() for r in read_topic(secure.settings, topic, idle_timeout_s=10))
    assert values == sorted(f"v{i}" for i in range(200))
    assert existing_topics(secure.settings)[topic] == 2


def test_a_wrong_password_fails_at_once_with_one_clear_error(secure):
    wrong = _wrong_password(secure.settings)
    for attempt in (lambda: existing_topics(wrong), lambda: transactional_producer(wrong),
                    lambda: next(read_topic(wrong, "events"))):
        began = time.monotonic()
        with pytest.raises(KafkaAuthError) as info:
            attempt()
        assert time.monotonic() - began < 8, "a refused login must not wait for the full timeout"
        message = str(info.value)
        assert "refused the connection as user 'alice'" in message and "Authentication failed" in message
        assert "wrong-password-123" not in message and KAFKA_SECRET not in message


def test_an_untrusted_broker_certificate_is_refused(secure, tmp_path):
    other_ca = make_tls_files(tmp_path / "other").ca_cert
    untrusting = dataclasses.replace(secure.settings, kafka_security=dataclasses.replace(
        secure.settings.kafka_security, ca_file=other_ca))
    with pytest.raises(KafkaAuthError, match="certificate verify failed"):
        existing_topics(untrusting)


def test_the_cli_works_over_sasl_ssl_and_fails_in_one_line(secure):
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    created = _cli(secure, "topics", "create")
    assert created.returncode == 0, created.stderr
    create_topics(secure.settings, [TopicSpec("t", topic, 1)])
    produced = _cli(secure, "produce", "--count", "300", "--topic", topic, "--quiet", "--max-rate", "2000")
    assert produced.returncode == 0, produced.stderr
    assert "produced 300 events" in produced.stdout
    consumed = _cli(secure, "consume", topic, "--from-beginning", "--max", "300", "--idle-timeout", "10")
    assert consumed.returncode == 0, consumed.stderr
    assert len({json.loads(line)["event_id"] for line in consumed.stdout.splitlines()}) == 300
    wrong = _cli(secure, "topics", "list",
                 STREAMSCORE_KAFKA_SASL_PASSWORD_FILE=str(private_file(secure.root / "bad.pw", "nope-4242")))
    ours = [line for line in wrong.stderr.splitlines() if line.startswith("streamscore:")]
    assert wrong.returncode == 1 and len(ours) == 1 and "refused the connection as user 'alice'" in ours[0]
    assert "Traceback" not in wrong.stderr and "nope-4242" not in wrong.stderr + wrong.stdout


def test_status_and_config_show_no_secret(secure):
    status = _cli(secure, "stack", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("healthy") >= 3
    config = _cli(secure, "stack", "config")
    assert '"kafka_security": "SASL_SSL SCRAM-SHA-512 user=alice password=***' in config.stdout
    for text in (status.stdout, status.stderr, config.stdout, config.stderr, repr(secure.settings)):
        assert KAFKA_SECRET not in text and REDIS_SECRET not in text


def test_redis_needs_its_password(secure):
    client = redis_client(secure.settings)
    client.set("security-test", "ok")
    assert client.get("security-test") == b"ok"
    wrong = dataclasses.replace(secure.settings, redis_security=dataclasses.replace(
        secure.settings.redis_security, password=Secret("bad-redis-pw-99")))
    with pytest.raises(RedisClientError, match="refused user 'default'") as info:
        server_info(wrong)
    assert "bad-redis-pw-99" not in str(info.value) and REDIS_SECRET not in str(info.value)
    none = dataclasses.replace(secure.settings, redis_security=dataclasses.replace(
        secure.settings.redis_security, password=None))
    with pytest.raises(RedisClientError, match="set STREAMSCORE_REDIS_PASSWORD_FILE"):
        server_info(none)


def test_redis_over_tls_with_auth(tmp_path):
    """Debian's redis-server speaks TLS: the client's TLS settings are tried against a real one."""
    tls, port = make_tls_files(tmp_path / "tls"), free_port()
    conf = private_file(tmp_path / "redis-tls.conf", "\n".join([
        "bind 127.0.0.1", "port 0", f"tls-port {port}", f"tls-cert-file {tls.server_cert}",
        f"tls-key-file {tls.server_key}", f"tls-ca-cert-file {tls.ca_cert}", "tls-auth-clients no",
        'save ""', f'requirepass "{REDIS_SECRET}"', f"dir {tmp_path}"]))
    server = subprocess.Popen(["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        env = {"STREAMSCORE_HOME": str(tmp_path / "home"), "STREAMSCORE_REDIS": f"127.0.0.1:{port}",
               "STREAMSCORE_REDIS_MODE": "external", "STREAMSCORE_REDIS_PASSWORD": REDIS_SECRET,
               "STREAMSCORE_REDIS_TLS": "1", "STREAMSCORE_REDIS_CA_FILE": str(tls.ca_cert)}
        settings = load_settings(env)
        deadline = time.monotonic() + 10
        while True:
            try:
                assert server_info(settings)["redis_version"]
                break
            except RedisClientError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with pytest.raises(RedisClientError, match="does not answer") as info:
            server_info(load_settings(env | {"STREAMSCORE_REDIS_TLS": "0"}))  # plaintext to a TLS port
        assert REDIS_SECRET not in str(info.value)
    finally:
        server.terminate()
        server.wait(10)


def test_a_flink_job_reads_and_writes_over_sasl_ssl(secure, monkeypatch):
    source, sink = _topic(secure), _topic(secure)
    producer = transactional_producer(secure.settings)
    producer.begin_transaction()
    for i in range(500):
        producer.produce(source, f"flink-{i}".encode())
    producer.commit_transaction(30)
    # a password variable in the submitter's environment must not reach the job (Flink logs its env)
    monkeypatch.setenv("STREAMSCORE_KAFKA_SASL_PASSWORD", KAFKA_SECRET)
    job_id = submit_python_job(secure.settings, JOBS_DIR / "passthrough.py", [
        "--bootstrap", secure.settings.kafka_bootstrap, "--source-topic", source, "--sink-topic", sink,
        "--group-id", f"sec-{uuid.uuid4().hex[:8]}", "--transactional-id-prefix", f"sec-{uuid.uuid4().hex[:8]}",
        "--checkpoint-interval-ms", "1000", "--job-name", "security-passthrough"])
    try:
        wait_running(secure.settings, job_id)
        copied = read_until(secure.settings, sink, 500, bytes.decode)
        responses = _job_rest_responses(secure.settings, job_id)
        argv = _all_process_argv()
    finally:
        cancel_job(secure.settings, job_id)
    assert sorted(copied) == sorted(f"flink-{i}" for i in range(500))
    assert len(responses) >= 7
    for path, body in responses.items():
        assert KAFKA_SECRET not in body, f"the password is in Flink REST {path}"
        assert "ScramLoginModule" not in body, f"the JAAS config is in Flink REST {path}"
    assert not [cmd for cmd in argv if KAFKA_SECRET in cmd or REDIS_SECRET in cmd]
    assert not list((secure.settings.run_dir / "secrets").glob("*")), "the job's properties file was left behind"


def _job_rest_responses(settings, job_id: str) -> dict[str, str]:
    paths = [f"/jobs/{job_id}", f"/jobs/{job_id}/plan", f"/jobs/{job_id}/config",
             f"/jobs/{job_id}/jobmanager/config", f"/jobs/{job_id}/exceptions",
             f"/jobs/{job_id}/checkpoints/config", "/jobmanager/config", "/jobs/overview"]
    bodies = {path: json.dumps(rest(settings, path)) for path in paths}
    for vertex in rest(settings, f"/jobs/{job_id}")["vertices"]:
        path = f"/jobs/{job_id}/vertices/{vertex['id']}"
        bodies[path] = json.dumps(rest(settings, path))
    return bodies


def _all_process_argv() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                found.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return found


def test_a_scoring_job_follows_control_over_sasl_ssl(secure, monkeypatch, tmp_path):
    """The scoring job's control reader (confluent-kafka in the Python worker) logs in like the
    job's Java clients: a promotion published over SASL_SSL switches the version of later events."""
    for name, value in secure.env.items():  # the submitter's environment: names the password *file*
        monkeypatch.setenv(name, value)
    events, scored, dead, shadow, control = (_topic(secure) for _ in range(5))
    registry = _two_versions(tmp_path)
    config = scoring_config_from_settings(
        secure.settings, events_topic=events, scored_topic=scored, dead_letter_topic=dead, control_topic=control,
        shadow_topic=shadow, model="fraud-sec:1.0.0", registry_dir=str(registry), activation_delay_ms=DELAY_MS,
        job_name=f"sec-scoring-{uuid.uuid4().hex[:8]}", startup_mode="earliest-offset", max_delay_ms=50)
    assert config.auth.kafka_password_file and KAFKA_SECRET not in config.to_json()
    job_id = submit_scoring(secure.settings, config)
    topics = TrafficTopics(events, scored, dead)
    try:
        before = run_traffic(secure.settings, TrafficPlan(1000, "sec-a-", malformed_every=0, timeout_s=120), topics)
        control_protocol.apply_change(secure.settings, control_protocol.LifecycleChange(
            LifecycleAction.PROMOTE, "fraud-sec:1.1.0", registry_dir=str(registry), control_topic=control,
            activation_delay_ms=DELAY_MS))
        time.sleep(DELAY_MS / 1000 + 0.5)
        after = run_traffic(secure.settings, TrafficPlan(1000, "sec-b-", malformed_every=0, timeout_s=60), topics)
    finally:
        cancel_job(secure.settings, job_id)
    assert sorted(before.scored) == sorted(before.valid_ids) and sorted(after.scored) == sorted(after.valid_ids)
    assert {r["model_version"] for r in before.scored.values()} == {"1.0.0"}
    assert {r["model_version"] for r in after.scored.values()} == {"1.1.0"}


def _two_versions(tmp_path: Path) -> Path:
    """A registry holding fraud-sec 1.0.0 and 1.1.0 (copies of the demo model under another name)."""
    source = DEFAULT_ROOT / "fraud" / "1.0.0"
    card = json.loads((source / "model.json").read_text())
    for version in ("1.0.0", "1.1.0"):
        (tmp_path / f"card-{version}.json").write_text(json.dumps({**card, "name": "fraud-sec", "version": version}))
        register_model(source / "model.onnx", tmp_path / f"card-{version}.json", tmp_path / "registry")
    return tmp_path / "registry"


def test_zz_no_secret_in_any_file_of_the_stack(secure):
    """Last in the module: after every client above has run, grep the whole stack home."""
    home = secure.settings.home
    files = [p for p in home.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.suffix == ".log" for p in files) and len(files) > 20
    kafka_hits = [p for p in files if KAFKA_SECRET.encode() in p.read_bytes()]
    redis_hits = [p for p in files if REDIS_SECRET.encode() in p.read_bytes()]
    assert kafka_hits == [], f"the Kafka password is in {kafka_hits}"
    assert redis_hits == [home / "redis" / "redis.conf"]  # requirepass, and nowhere else
    assert (redis_hits[0].stat().st_mode & 0o077) == 0
    assert ((home / "kafka" / "server.properties").stat().st_mode & 0o077) == 0
