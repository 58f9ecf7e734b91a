"""A Flink home (lib/, conf/) for the session cluster and the ``flink`` client, from the apache-flink wheel.

The wheel (``pyflink/``) carries bin/, lib/, opt/, plugins/ and conf/. We keep its bin/ and
plugins/, and give the cluster its own lib/ (the wheel's jars, flink-python and the Kafka
connector, as symlinks), conf/ (our config.yaml) and log/ under the stack's home.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from jobs import jars
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StackError

JOBMANAGER_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"


def pyflink_dir() -> Path:
    try:
        import pyflink
    except ImportError as exc:
        raise StackError("apache-flink is not installed in this Python environment") from exc
    return Path(pyflink.__file__).resolve().parent


class FlinkHome:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.root = settings.home / "flink"
        self.dist = pyflink_dir()

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def savepoint_dir(self) -> Path:
        return self.root / "savepoints"

    def env(self) -> dict[str, str]:
        """What the wheel's bin/ scripts read: its FLINK_HOME, our conf/ and lib/, the log folder, our Python."""
        return {
            "FLINK_HOME": str(self.dist),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LIB_DIR": str(self.lib_dir),
            "FLINK_LOG_DIR": str(self.settings.log_dir),
            "_FLINK_HOME_DETERMINED": "1",
            "PATH": os.path.dirname(self.settings.python_executable) + os.pathsep + os.environ.get("PATH", ""),
        }

    def build(self, extra_jars: list[Path]) -> None:
        """Lay out lib/ and conf/ (idempotent; rebuilt each time so settings changes apply)."""
        self.lib_dir.mkdir(parents=True, exist_ok=True)
        for old in self.lib_dir.glob("*.jar"):
            old.unlink()
        jars = sorted((self.dist / "lib").glob("*.jar")) + sorted((self.dist / "opt").glob("flink-python-*.jar"))
        for jar in [*jars, *extra_jars]:
            (self.lib_dir / jar.name).symlink_to(jar)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties"):
            src = self.dist / "conf" / name
            if src.is_file():
                (self.conf_dir / name).write_text(src.read_text())
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(self.config(), sort_keys=True))
        for folder in (self.checkpoint_dir, self.savepoint_dir, self.settings.log_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def config(self) -> dict:
        """The cluster's config.yaml (flattened keys)."""
        s = self.settings
        host = s.flink_rest.host
        return {
            "env.java.opts.all": _wheel_java_opts(self.dist),
            "jobmanager.bind-host": host,
            "jobmanager.rpc.address": host,
            "jobmanager.rpc.port": s.flink_rpc_port,
            "jobmanager.memory.process.size": "1024m",
            "jobmanager.execution.failover-strategy": "region",
            "taskmanager.bind-host": host,
            "taskmanager.host": host,
            "taskmanager.numberOfTaskSlots": s.flink_slots,
            "taskmanager.memory.process.size": s.flink_taskmanager_memory,
            "taskmanager.memory.managed.fraction": 0.25,
            "rest.address": host,
            "rest.bind-address": host,
            "rest.port": s.flink_rest.port,
            "parallelism.default": 1,
            "state.checkpoints.dir": self.checkpoint_dir.as_uri(),
            "state.savepoints.dir": self.savepoint_dir.as_uri(),
            "execution.checkpointing.dir": self.checkpoint_dir.as_uri(),
            "execution.checkpointing.savepoint-dir": self.savepoint_dir.as_uri(),
            # the working files of a job on RocksDB (the drift sidecar) stay in the stack home, not /tmp
            "state.backend.rocksdb.localdir": str(self.root / "rocksdb"),
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": "1s",
            "restart-strategy.exponential-delay.max-backoff": "10s",
            # a killed TaskManager is noticed in seconds, not the default 50 s
            "heartbeat.interval": 2000,
            "heartbeat.timeout": 10000,
            "python.executable": s.python_executable,
            "python.client.executable": s.python_executable,
            # the client JVM (`flink run`) lives for one submission, too short for the C2 compiler to pay off:
            # C1 only: a scoring job planned and submitted in 6.4 s against 7.6 s (medians of 4, interleaved, 2 cores)
            "env.java.opts.client": "-XX:TieredStopAtLevel=1",
            # Prometheus reporter (bundled plugin): the JobManager and each TaskManager take a port of the range
            "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
            "metrics.reporter.prom.port": f"{s.flink_metrics_port}-{s.flink_metrics_port + s.flink_taskmanagers}",
            # a job's slots spread over the TaskManagers instead of filling the first one
            "taskmanager.load-balance.mode": "SLOTS",
            "web.submit.enable": True,
            "web.cancel.enable": True,
        }


def connector_jars(settings: Settings) -> list[Path]:
    """The Flink Kafka connector (cached from Maven Central on first use)."""
    version = settings.flink_connector_version
    return jars.resolve(settings.cache_dir, f"flink-kafka-connector-{version}",
                        [jars.flink_kafka_connector_artifact(version)], transitive=False)


AVRO_CONFLUENT_FORMAT = "org.apache.flink:flink-sql-avro-confluent-registry:2.2.0"


def avro_confluent_format_jar(settings: Settings) -> Path:
    """Flink SQL's ``avro-confluent`` format (Confluent client shaded inside), for Flink SQL tables that read or
    write streamscore's Confluent-wire topics (cached from Maven Central on first use)."""
    return jars.resolve(settings.cache_dir, "flink-sql-avro-confluent-registry-2.2.0", [AVRO_CONFLUENT_FORMAT],
                        transitive=False)[0]


def client_home(settings: Settings) -> FlinkHome:
    """lib/ and conf/ for the ``flink`` client (also when the cluster is external)."""
    home = FlinkHome(settings)
    if not (home.conf_dir / "config.yaml").is_file() or not any(home.lib_dir.glob("*kafka*.jar")):
        home.build(extra_jars=connector_jars(settings))
    return home


def _wheel_java_opts(dist: Path) -> str:
    """The JVM flags the wheel's own config.yaml passes (module opens Flink needs on Java 17)."""
    try:
        data = yaml.safe_load((dist / "conf" / "config.yaml").read_text()) or {}
        return str(data["env"]["java"]["opts"]["all"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return ""
