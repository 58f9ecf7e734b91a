"""The three services of the local stack: Kafka (KRaft), a Flink session cluster, Redis."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from jobs import jars
from jobs.flink_home import FlinkHome, connector_jars
from streamscore.foundation.config import Address, Settings
from streamscore.foundation.errors import StackError
from streamscore.foundation.security import write_private
from streamscore.stack import security_conf
from streamscore.stack.java import require_java17
from streamscore.stack.process import ProcessSpec, port_open

KAFKA_MAIN = "kafka.Kafka"
KAFKA_STORAGE_TOOL = "kafka.tools.StorageTool"


@dataclass(frozen=True)
class Health:
    service: str
    address: str
    mode: str
    running: bool
    healthy: bool
    detail: str
    pids: tuple[int, ...] = ()


def new_cluster_id(random_bytes=lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id (URL-safe base64 of 16 random bytes) that never starts with '-'.

    Kafka's own tool avoids a leading '-' too: an id like "-abc" reads as an option to its argument parser.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService:
    """One Kafka broker in combined KRaft mode (broker + controller), transactions on one node."""

    name = "kafka"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.home / "kafka"
        self.log_file = settings.log_dir / "kafka.log"

    @property
    def address(self) -> Address:
        return self.settings.kafka

    def ports(self) -> list[int]:
        return [self.address.port, self.settings.kafka_controller_port]

    def server_properties(self) -> str:
        s = self.settings
        host, port, ctrl = s.kafka.host, s.kafka.port, s.kafka_controller_port
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{ctrl}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctrl}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            # Transactions on a single node: the state log must accept one replica.
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            # The longest transaction a producer may ask for (Flink's sink uses up to this).
            "transaction.max.timeout.ms": str(s.transaction_max_timeout_ms),
            "group.initial.rebalance.delay.ms": "0",
            # Retention by size, not time: Kafka's time retention reads the record timestamps, which
            # here are event times (demo data, replays and tests carry times days or years old), so a
            # 24 h limit deleted such records at the next retention check (every 5 minutes), under a
            # running job or a reading test. 1 GiB a partition bounds the disk instead.
            "log.retention.ms": "-1",
            "log.retention.bytes": str(1 << 30),
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
        }
        props.update(security_conf.listener_properties(s, self.dir))  # none for PLAINTEXT
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def prepare(self) -> list[ProcessSpec]:
        require_java17()
        classpath = ":".join(str(p) for p in jars.resolve(
            self.settings.cache_dir, f"kafka-{self.settings.kafka_version}",
            jars.kafka_broker_artifacts(self.settings.kafka_version)))
        self.dir.mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        write_private(props, self.server_properties())  # may hold keys: 0600
        (self.dir / "log4j2.yaml").write_text(_KAFKA_LOG4J2)
        if not (self.dir / "data" / "meta.properties").is_file():
            self._format_storage(classpath, props)
        self._check_scram_users()
        java_opts = [f"-Xms{self.settings.kafka_heap}", f"-Xmx{self.settings.kafka_heap}",
                     f"-Dlog4j2.configurationFile={self.dir / 'log4j2.yaml'}",
                     f"-Dkafka.logs.dir={self.settings.log_dir}"]
        argv = ["java", *java_opts, "-cp", classpath, KAFKA_MAIN, str(props)]
        return [ProcessSpec(self.name, argv, self.log_file, self.settings.run_dir / "kafka.pid")]

    def _format_storage(self, classpath: str, props: Path) -> None:
        argv = ["java", "-cp", classpath, KAFKA_STORAGE_TOOL, "format",
                f"--cluster-id={new_cluster_id()}", f"--config={props}"]
        scram = security_conf.scram_format_arguments(self.settings, self.dir)
        args_file = self.dir / "format.args"  # SCRAM passwords go through a 0600 file, never argv
        if scram:
            write_private(args_file, "\n".join(scram) + "\n")
            argv.append(f"@{args_file}")
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        finally:
            args_file.unlink(missing_ok=True)
        if proc.returncode != 0:
            cause = security_conf.scrub(proc.stderr.strip()[-400:], self.settings, self.dir)
            raise StackError(f"kafka: formatting storage in {self.dir / 'data'} failed: {cause}")
        (self.dir / "scram-users").write_text(security_conf.scram_marker(self.settings))

    def _check_scram_users(self) -> None:
        """SCRAM users exist only if the storage was formatted with them: say so instead of failing logins."""
        marker = self.dir / "scram-users"
        had = marker.read_text() if marker.is_file() else "none\n"
        wanted = security_conf.scram_marker(self.settings)
        if wanted != "none\n" and had != wanted:
            raise StackError(f"kafka: the storage in {self.dir / 'data'} was formatted without the SCRAM user "
                             f"{wanted.strip()!r} (it has: {had.strip()}); stop the stack and remove "
                             f"{self.dir} to format it again with the user")

    def probe(self) -> tuple[bool, str]:
        if not port_open(self.address.host, self.address.port):
            return False, "port closed"
        from confluent_kafka.admin import AdminClient  # glue only; the probe needs a real client

        from connectors.kafka_clients import client_config  # with the security settings

        admin = AdminClient(client_config(self.settings) | {"bootstrap.servers": str(self.address),
                                                            "socket.timeout.ms": 3000})
        meta = admin.list_topics(timeout=3)
        return bool(meta.brokers), f"{len(meta.brokers)} broker(s), {len(meta.topics)} topic(s)"


class FlinkService:
    """A Flink session cluster (JobManager + one TaskManager) from the apache-flink wheel."""

    name = "flink"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.home = FlinkHome(settings)
        self.log_file = settings.log_dir / "flink-jobmanager.log"

    @property
    def address(self) -> Address:
        return self.settings.flink_rest

    def ports(self) -> list[int]:
        return [self.address.port, self.settings.flink_rpc_port]

    def prepare(self) -> list[ProcessSpec]:
        require_java17()
        self.home.build(extra_jars=connector_jars(self.settings))
        return [self.process_spec("jobmanager"),
                *(self.process_spec("taskmanager", n) for n in range(1, self.settings.flink_taskmanagers + 1))]

    def process_specs(self) -> list[ProcessSpec]:
        """The JobManager and every TaskManager: those the settings ask for, and any other one whose pid
        file says it was started (with more TaskManagers asked for then), so that ``down`` stops it too."""
        started = [int(p.stem.rsplit("-", 1)[1]) for p in self.settings.run_dir.glob("flink-taskmanager-*.pid")
                   if p.stem.rsplit("-", 1)[1].isdigit()]
        last = max([self.settings.flink_taskmanagers, *started])
        return [self.process_spec("jobmanager"), *(self.process_spec("taskmanager", n) for n in range(1, last + 1))]

    def process_spec(self, role: str, number: int = 1) -> ProcessSpec:
        """The JobManager, or TaskManager ``number`` (the first is plain ``flink-taskmanager``)."""
        script = {"jobmanager": "jobmanager.sh", "taskmanager": "taskmanager.sh"}[role]
        name = f"flink-{role}" if number == 1 else f"flink-{role}-{number}"
        return ProcessSpec(
            name=name,
            argv=["bash", str(self.home.dist / "bin" / script), "start-foreground"],
            log_file=self.settings.log_dir / f"{name}.log",
            pid_file=self.settings.run_dir / f"{name}.pid",
            env=self.home.env() | {"FLINK_PID_DIR": str(self.settings.run_dir)},
        )

    def probe(self) -> tuple[bool, str]:
        if not port_open(self.address.host, self.address.port):
            return False, "port closed"
        with urllib.request.urlopen(f"{self.settings.flink_rest_url}/overview", timeout=3) as resp:
            overview = json.load(resp)
        tms, slots = overview.get("taskmanagers", 0), overview.get("slots-total", 0)
        port, wanted = self.settings.flink_metrics_port, self.settings.flink_taskmanagers
        detail = (f"{tms} of {wanted} taskmanager(s), {slots} slot(s), {overview.get('jobs-running', 0)} running "
                  f"job(s); Prometheus metrics on :{port}-{port + wanted}")
        return tms >= wanted and slots >= 1, detail


class RedisService:
    """Redis from Debian's redis-server, no persistence (a cache, not a store)."""

    name = "redis"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.dir = settings.home / "redis"
        self.log_file = settings.log_dir / "redis.log"

    @property
    def address(self) -> Address:
        return self.settings.redis

    def ports(self) -> list[int]:
        return [self.address.port]

    def prepare(self) -> list[ProcessSpec]:
        server = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)
        if server is None:
            raise StackError("redis: no 'redis-server' on PATH (Debian: apt-get install redis-server)")
        if self.settings.redis_security.tls:
            raise StackError("redis: the local stack serves Redis without TLS; for TLS point "
                             "STREAMSCORE_REDIS at a TLS Redis with STREAMSCORE_REDIS_MODE=external")
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = _REDIS_CONF.format(host=self.address.host, port=self.address.port, dir=self.dir)
        # with a password set the file holds it: 0600
        write_private(self.config_file, conf + security_conf.redis_auth_lines(self.settings))
        return [ProcessSpec(self.name, [server, str(self.config_file)], self.log_file,
                            self.settings.run_dir / "redis.pid")]

    @property
    def config_file(self) -> Path:
        return self.dir / "redis.conf"

    def probe(self) -> tuple[bool, str]:
        if not port_open(self.address.host, self.address.port):
            return False, "port closed"
        from connectors.redis_client import RedisClientError, server_info  # AUTH and TLS from the settings

        try:
            info = server_info(self.settings)
        except RedisClientError as exc:
            return False, str(exc)
        return True, f"redis {info.get('redis_version', '?')}"


_REDIS_CONF = """bind {host}
port {port}
dir {dir}
save ""
appendonly no
daemonize no
protected-mode yes
maxmemory 512mb
# evict only keys with a TTL (the prediction cache's), never the model pointers streamscore:model:<name>:current
maxmemory-policy volatile-lru
"""

_KAFKA_LOG4J2 = """Configuration:
  name: streamscore-kafka
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
      - name: kafka.server.KafkaServer
        level: INFO
      - name: kafka.server.BrokerServer
        level: INFO
"""
