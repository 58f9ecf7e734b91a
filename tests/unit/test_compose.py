"""Unit tests of docker-compose.yml and deploy/: the compose stack stays in step with the local stack.

Pure and fast: the files are parsed with yaml (no Docker engine needed). The one test that runs
``docker compose config`` skips where the compose plugin is missing.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import StreamscoreError

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
SERVICES = ("kafka", "kafka-init", "jobmanager", "taskmanager", "redis", "registry", "prometheus", "grafana")
FLINK_SERVICES = ("jobmanager", "taskmanager")
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

# Kafka server.properties keys whose value depends on where the broker runs (hosts, listeners,
# data directory): the compose file sets them for the container, not to the local stack's values.
KAFKA_NODE_SPECIFIC = {
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "listener.security.protocol.map",
    "log.dirs",
}
# Flink config.yaml keys the compose file sets to container values (addresses, paths) ...
FLINK_CONTAINER_VALUED = {
    "jobmanager.rpc.address",
    "state.checkpoints.dir",
    "state.savepoints.dir",
    "execution.checkpointing.dir",
    "execution.checkpointing.savepoint-dir",
    "python.executable",
    "python.client.executable",
}
# ... and those it leaves to the official image (bind to the container's interfaces, its JVM flags).
FLINK_IMAGE_DEFAULTS = {
    "env.java.opts.all",
    "jobmanager.bind-host",
    "taskmanager.bind-host",
    "taskmanager.host",
    "rest.address",
    "rest.bind-address",
    "state.backend.rocksdb.localdir",  # RocksDB's working files: the container's own tmp dirs
}


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        "docker-compose.yml must be a mapping with a 'services' mapping"
    )
    return data


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def settings():
    return load_settings({})


def _service(services: dict, name: str) -> dict:
    assert name in services, f"service {name!r} is missing from docker-compose.yml"
    return services[name] or {}


def _env(service: dict) -> dict[str, str]:
    """A service's environment as a dict, from either the mapping or the list syntax."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def _published_ports(service: dict) -> list[tuple[int | None, int]]:
    """(host port or None when Docker picks one, container port) for each published port."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            out.append((int(published) if published not in (None, "") else None, int(entry["target"])))
            continue
        spec = str(entry).split("/", 1)[0]
        parts = spec.rsplit(":", 2)
        if len(parts) == 1:
            out.append((None, int(parts[0])))
        else:
            out.append((int(parts[-2]) if parts[-2] else None, int(parts[-1])))
    return out


def _mounts(service: dict) -> list[tuple[str, str, str]]:
    """(kind, source, target) for each volume entry; kind is 'bind', 'volume' or 'anonymous'."""
    out = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = entry.get("source"), entry["target"]
            kind = entry.get("type", "volume")
            if kind == "volume" and not source:
                kind = "anonymous"
            out.append((kind, source or "", target))
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            out.append(("anonymous", "", parts[0]))
            continue
        source, target = parts[0], parts[1]
        kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
        out.append((kind, source, target))
    return out


def _mount_target(service: dict, source: str) -> str:
    for kind, src, target in _mounts(service):
        if kind == "bind" and src.rstrip("/") == source.rstrip("/"):
            return target
    raise AssertionError(f"no bind mount of {source} in {service.get('image') or 'service'}")


def _depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _command_text(service: dict) -> str:
    command = service.get("command") or ""
    return "\n".join(command) if isinstance(command, list) else str(command)


def _kafka_property(env_name: str) -> str:
    """The apache/kafka image's env-to-property rule: KAFKA_ dropped, _ -> ., __ -> _, ___ -> -."""
    key = env_name[len("KAFKA_") :]
    key = re.sub(r"(?<!_)_(?!_)", ".", key)
    return key.replace("___", "-").replace("__", "_").lower()


def _kafka_properties(service: dict) -> dict[str, str]:
    return {_kafka_property(k): v for k, v in _env(service).items() if k.startswith("KAFKA_")}


def _listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    out = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, _, address = item.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def _flink_properties(service: dict) -> dict[str, str]:
    """FLINK_PROPERTIES as the official image's entrypoint reads it: a line each, whitespace
    removed, split at the first ':'."""
    raw = _env(service).get("FLINK_PROPERTIES")
    assert raw, "FLINK_PROPERTIES is not set"
    props = {}
    for line in raw.splitlines():
        line = re.sub(r"\s", "", line)
        if line:
            key, _, value = line.partition(":")
            props[key] = value
    return props


def _build(service: dict) -> tuple[Path, Path] | None:
    """(context dir, Dockerfile) of a service's build section, or None."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = (ROOT / build.get("context", ".")).resolve()
    return context, context / build.get("dockerfile", "Dockerfile")


def _dockerfile_args(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE)}


def _expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), value)


def _expand_dockerfile(text: str) -> str:
    """The Dockerfile with its ARG defaults and its RUN steps' simple ``name="value"`` shell
    assignments substituted (enough to read the URLs and paths it uses)."""
    names = _dockerfile_args(text)
    for _ in range(3):
        for m in re.finditer(r"\b(\w+)=\"([^\"$]*(?:\$\{?\w+\}?[^\"$]*)*)\"", text):
            names.setdefault(m.group(1), _expand(m.group(2), names))
        names = {k: _expand(v, names) for k, v in names.items()}
    return _expand(text, names)


def _flink_dockerfile(services: dict) -> Path:
    build = _build(_service(services, "jobmanager"))
    assert build is not None, "jobmanager must be built from deploy/flink.Dockerfile"
    return build[1]


def _pyproject_flink_version() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1].strip() for d in deps if re.match(r"apache-flink\s*==", d)]
    assert len(pins) == 1, f"pyproject.toml should pin apache-flink exactly once, found {pins}"
    return pins[0]


# ---------------------------------------------------------------- structure


def test_compose_spec_has_no_version_key(compose):
    assert "version" not in compose, "drop the top-level 'version:' key (obsolete in the Compose spec)"


def test_all_services_exist(services):
    missing = [name for name in SERVICES if name not in services]
    assert not missing, f"docker-compose.yml lacks the services {missing}"


def test_every_service_has_an_image_or_a_build_with_an_existing_dockerfile(services):
    for name, service in services.items():
        build = _build(service or {})
        if build is None:
            assert (service or {}).get("image"), f"service {name!r} has neither 'image' nor 'build'"
            continue
        context, dockerfile = build
        assert context.is_dir(), f"service {name!r}: build context {context} does not exist"
        assert dockerfile.is_file(), f"service {name!r}: Dockerfile {dockerfile} does not exist"


def test_named_volumes_are_declared_and_used(compose, services):
    declared = set((compose.get("volumes") or {}).keys())
    used = {}
    for name, service in services.items():
        for kind, source, _ in _mounts(service or {}):
            if kind == "volume":
                used.setdefault(source, []).append(name)
    undeclared = {v: s for v, s in used.items() if v not in declared}
    assert not undeclared, f"named volumes used but not declared under top-level 'volumes:': {undeclared}"
    unused = declared - set(used)
    assert not unused, f"top-level volumes declared but used by no service: {sorted(unused)}"


def test_bind_mounted_host_paths_exist(services):
    for name, service in services.items():
        for kind, source, target in _mounts(service or {}):
            if kind != "bind":
                continue
            assert source.startswith("./"), (
                f"service {name!r}: bind mount {source}:{target} should be a relative ./ path of the repo"
            )
            assert (ROOT / source).exists(), (
                f"service {name!r}: bind-mounted host path {source} does not exist in the repo"
            )


def test_depends_on_targets_exist(services):
    for name, service in services.items():
        for target, condition in _depends_on(service or {}).items():
            assert target in set(services), f"service {name!r} depends on unknown service {target!r}"
            assert condition in DEPENDS_CONDITIONS, (
                f"service {name!r}: depends_on {target!r} has unknown condition {condition!r}"
            )
            if condition == "service_healthy":
                assert (services[target] or {}).get("healthcheck"), (
                    f"service {name!r} waits for {target!r} to be healthy, but {target!r} has no healthcheck"
                )


def test_header_explains_usage():
    header = "".join(
        line for line in COMPOSE_FILE.read_text().splitlines(keepends=True) if line.startswith("#")
    )
    for needle in (
        "docker compose up -d",
        "STREAMSCORE_KAFKA_MODE=external",
        "STREAMSCORE_FLINK_MODE=external",
        "STREAMSCORE_REDIS_MODE=external",
        "STREAMSCORE_SCHEMA_REGISTRY_MODE=external",
        "STREAMSCORE_JOBS_SCHEMA_REGISTRY_URL=http://registry:8080/apis/ccompat/v7",
    ):
        assert needle in header, f"the header comment of docker-compose.yml should mention {needle!r}"


# ---------------------------------------------------------------- ports


@pytest.mark.parametrize(
    "name, setting",
    [
        ("kafka", "kafka"),
        ("jobmanager", "flink_rest"),
        ("redis", "redis"),
        ("registry", "registry"),
    ],
)
def test_client_ports_equal_the_local_defaults(services, settings, name, setting):
    expected = getattr(settings, setting).port
    ports = _published_ports(_service(services, name))
    assert ports, f"service {name!r} publishes no port; clients expect {expected} (settings.{setting}.port)"
    for host_port, container_port in ports:
        assert host_port == expected, (
            f"service {name!r} publishes host port {host_port} (-> {container_port}); the local stack's "
            f"default is {expected} (settings.{setting}.port), and the streamscore commands use that one"
        )


def test_kafka_host_listener_is_advertised_on_the_published_port(services, settings):
    kafka = _service(services, "kafka")
    props = _kafka_properties(kafka)
    listeners = _listeners(props.get("listeners", ""))
    advertised = _listeners(props.get("advertised.listeners", ""))
    host_names = [name for name, (host, _) in advertised.items() if host in ("localhost", "127.0.0.1")]
    assert len(host_names) == 1, (
        f"one advertised listener should be for the host (localhost), got {advertised}"
    )
    host_listener = host_names[0]
    assert advertised[host_listener][1] == settings.kafka.port, (
        f"listener {host_listener} is advertised on {advertised[host_listener]}, "
        f"expected port {settings.kafka.port}"
    )
    published = {c: h for h, c in _published_ports(kafka)}
    bound = listeners[host_listener][1]
    assert published.get(bound) == settings.kafka.port, (
        f"listener {host_listener} binds container port {bound}, "
        f"but that port is published as {published.get(bound)}"
    )
    internal = [n for n, (host, _) in advertised.items() if host == "kafka"]
    assert internal, f"one advertised listener should be kafka:<port> for other containers, got {advertised}"


def test_flink_rest_port_matches_published_port(services, settings):
    props = _flink_properties(_service(services, "jobmanager"))
    rest_port = int(props.get("rest.port", 8081))
    published = {c: h for h, c in _published_ports(services["jobmanager"])}
    assert published.get(rest_port) == settings.flink_rest.port, (
        f"jobmanager's rest.port {rest_port} should be published on {settings.flink_rest.port}, "
        f"got {published}"
    )


# ---------------------------------------------------------------- registry


def test_registry_image_matches_the_local_apicurio_version(services, settings):
    image = _service(services, "registry").get("image", "")
    assert image == f"apicurio/apicurio-registry:{settings.schema_registry.version}", (
        f"service 'registry' uses {image!r}; the local stack runs Apicurio {settings.schema_registry.version}")


def test_registry_keeps_its_schemas_on_a_named_volume(services):
    registry = _service(services, "registry")
    env = _env(registry)
    assert env["APICURIO_STORAGE_KIND"] == "sql" and env["APICURIO_STORAGE_SQL_KIND"] == "h2"
    target = env["APICURIO_DATASOURCE_URL"].removeprefix("jdbc:h2:file:").rsplit("/", 1)[0]
    assert any(kind == "volume" and mount == target for kind, _, mount in _mounts(registry)), (
        f"the registry's H2 file is under {target}, which is not a named volume: schemas would not survive")


# ---------------------------------------------------------------- kafka


def test_kafka_image_matches_the_local_kafka_version(services, settings):
    for name in ("kafka", "kafka-init"):
        image = _service(services, name).get("image", "")
        assert image == f"apache/kafka:{settings.kafka_version}", (
            f"service {name!r} uses {image!r}; the local stack runs Kafka {settings.kafka_version}"
        )


def test_kafka_transaction_max_timeout_matches_settings(services, settings):
    env = _env(_service(services, "kafka"))
    value = env.get("KAFKA_TRANSACTION_MAX_TIMEOUT_MS")
    assert value == str(settings.transaction_max_timeout_ms), (
        f"kafka's KAFKA_TRANSACTION_MAX_TIMEOUT_MS is {value!r}; "
        f"settings.transaction_max_timeout_ms is {settings.transaction_max_timeout_ms}"
    )


def test_kafka_env_mirrors_the_local_server_properties(services, settings):
    from streamscore.stack.services import KafkaService

    local = dict(
        line.split("=", 1) for line in KafkaService(settings).server_properties().splitlines() if line
    )
    container = _kafka_properties(_service(services, "kafka"))
    for key, value in local.items():
        if key in KAFKA_NODE_SPECIFIC:
            assert key in container, f"kafka's environment should set {key} (for the container)"
            continue
        env_name = "KAFKA_" + key.replace("_", "__").replace("-", "___").replace(".", "_").upper()
        assert container.get(key) == value, (
            f"the local stack sets {key}={value}; docker-compose.yml's kafka should set "
            f"{env_name}={value!r}, has {container.get(key)!r}"
        )


def test_kafka_is_kraft_single_node_with_data_on_a_named_volume(services, settings):
    kafka = _service(services, "kafka")
    props = _kafka_properties(kafka)
    env = _env(kafka)
    assert env.get("CLUSTER_ID"), "kafka needs a fixed CLUSTER_ID (KRaft storage is formatted with it)"
    assert props.get("process.roles") == "broker,controller", "kafka should be one KRaft broker+controller"
    voters = props.get("controller.quorum.voters", "")
    assert voters.endswith(f":{settings.kafka_controller_port}"), (
        f"the KRaft controller should listen on {settings.kafka_controller_port}, voters are {voters!r}"
    )
    volumes = {target: (kind, source) for kind, source, target in _mounts(kafka)}
    assert volumes.get(props.get("log.dirs"), ("", ""))[0] == "volume", (
        f"kafka's log.dirs {props.get('log.dirs')!r} should be a named volume, mounts are {volumes}"
    )
    assert kafka.get("healthcheck"), "kafka needs a healthcheck (kafka-init and Flink wait for it)"


def test_kafka_init_creates_every_topic_with_its_partitions(services, settings):
    init = _service(services, "kafka-init")
    created = {}
    bootstraps = set()
    for line in _command_text(init).splitlines():
        if "kafka-topics.sh" not in line or "--create" not in line:
            continue
        argv = shlex.split(line)
        args = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
        assert "--topic" in args and "--partitions" in args, (
            f"kafka-init: incomplete create line: {line.strip()}"
        )
        assert args.get("--replication-factor") == "1", (
            f"kafka-init: single broker, want RF 1: {line.strip()}"
        )
        created[args["--topic"]] = int(args["--partitions"])
        bootstraps.add(args.get("--bootstrap-server"))
    expected = {spec.name: spec.partitions for spec in settings.topics}
    assert created == expected, f"kafka-init creates {created}; the local stack's topics are {expected}"
    advertised = _listeners(_kafka_properties(services["kafka"]).get("advertised.listeners", ""))
    internal = {f"{host}:{port}" for host, port in advertised.values() if host == "kafka"}
    assert bootstraps <= internal, (
        f"kafka-init should use the internal listener {internal}, uses {bootstraps}"
    )
    assert _depends_on(init).get("kafka") == "service_healthy", (
        "kafka-init should wait for kafka to be healthy"
    )
    assert str(init.get("restart", "no")) == "no", "kafka-init is a one-shot: restart 'no'"


# ---------------------------------------------------------------- flink


def test_flink_services_share_one_image_build(services):
    dockerfiles = {name: _build(_service(services, name)) for name in FLINK_SERVICES}
    for name, build in dockerfiles.items():
        assert build is not None, f"{name} should be built from deploy/flink.Dockerfile"
        assert build[1] == ROOT / "deploy" / "flink.Dockerfile", f"{name} builds {build[1]}"
    commands = {name: _command_text(services[name]).strip() for name in FLINK_SERVICES}
    assert commands == {"jobmanager": "jobmanager", "taskmanager": "taskmanager"}, (
        f"the Flink services should run the image's entrypoint as jobmanager/taskmanager: {commands}"
    )


def test_flink_build_context_leaves_local_state_out(services):
    dockerfile = _flink_dockerfile(services)
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.is_file(), f"{ignore.relative_to(ROOT)} should keep local state out of the build context"
    patterns = {line.strip().rstrip("/") for line in ignore.read_text().splitlines()}
    missing = {".git", ".venv", ".streamscore", ".streamscore-*"} - patterns
    assert not missing, f"{ignore.relative_to(ROOT)} should exclude {sorted(missing)}"


def test_flink_image_pins_the_pyproject_flink_version(services):
    pinned = _pyproject_flink_version()
    text = _flink_dockerfile(services).read_text()
    args = _dockerfile_args(text)
    froms = [_expand(m.group(1), args) for m in re.finditer(r"^FROM\s+(\S+)", text, re.MULTILINE)]
    assert froms, "deploy/flink.Dockerfile has no FROM line"
    assert re.fullmatch(rf"flink:{re.escape(pinned)}(-java\d+)?", froms[-1]), (
        f"the Flink image should be the official flink:{pinned}[-javaNN] "
        f"(pyproject.toml pins apache-flink=={pinned}), got {froms[-1]}"
    )
    installs = [_expand(m.group(1), args) for m in re.finditer(r"apache-flink==([^\s\"']+)", text)]
    assert installs and set(installs) == {pinned}, (
        f"deploy/flink.Dockerfile should pip install apache-flink=={pinned} (as pyproject.toml), "
        f"found {installs}"
    )
    assert "/opt/flink/lib" in text and re.search(
        r"mv\s+/opt/flink/opt/flink-python\S*\.jar\s+/opt/flink/lib", text
    ), "deploy/flink.Dockerfile should move /opt/flink/opt/flink-python*.jar into /opt/flink/lib"
    assert "metrics-prometheus" in text, (
        "deploy/flink.Dockerfile should enable the Prometheus reporter plugin"
    )


def test_flink_image_python_matches_requires_python(services):
    text = _flink_dockerfile(services).read_text()
    version = _dockerfile_args(text).get("PYTHON_VERSION")
    assert version, "deploy/flink.Dockerfile should set ARG PYTHON_VERSION"
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.match(r">=\s*(\d+)\.(\d+)", requires)
    assert minimum, f"unexpected requires-python {requires!r}"
    have = tuple(int(p) for p in version.split(".")[:2])
    assert have >= (int(minimum.group(1)), int(minimum.group(2))), (
        f"the image's Python {version} does not satisfy requires-python {requires!r}"
    )


def test_flink_kafka_connector_matches_settings(services, settings):
    text = _flink_dockerfile(services).read_text()
    args = _dockerfile_args(text)
    version = args.get("KAFKA_CONNECTOR_VERSION")
    assert version == settings.flink_connector_version, (
        f"deploy/flink.Dockerfile's KAFKA_CONNECTOR_VERSION is {version!r}; "
        f"settings.flink_connector_version is {settings.flink_connector_version!r}"
    )
    expanded = _expand_dockerfile(text)
    jar = f"flink-sql-connector-kafka-{version}.jar"
    assert f"org/apache/flink/flink-sql-connector-kafka/{version}/{jar}" in expanded, (
        f"deploy/flink.Dockerfile should download {jar} from Maven Central"
    )
    assert f"/opt/flink/lib/{jar}" in expanded, f"{jar} should land in /opt/flink/lib"


def test_flink_properties_match_settings(services, settings):
    for name in FLINK_SERVICES:
        props = _flink_properties(_service(services, name))
        assert props.get("taskmanager.numberOfTaskSlots") == str(settings.flink_slots), (
            f"{name}: FLINK_PROPERTIES taskmanager.numberOfTaskSlots is "
            f"{props.get('taskmanager.numberOfTaskSlots')!r}; settings.flink_slots is {settings.flink_slots}"
        )
        assert props.get("jobmanager.rpc.address") == "jobmanager", (
            f"{name}: jobmanager.rpc.address should be the jobmanager service"
        )
        assert props.get("jobmanager.rpc.port", "6123") == str(settings.flink_rpc_port), (
            f"{name}: jobmanager.rpc.port should be settings.flink_rpc_port {settings.flink_rpc_port}"
        )
        assert (
            props.get("metrics.reporter.prom.factory.class")
            == "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
        ), f"{name}: the Prometheus reporter is not configured in FLINK_PROPERTIES"
        assert str(props.get("metrics.reporter.prom.port")).split("-")[0] == "9249", (
            f"{name}: metrics.reporter.prom.port should start at 9249 (prometheus.yml scrapes it; "
            f"each container takes the first free port of the range)"
        )
        assert "9249" in [str(p) for p in services[name].get("expose") or []], (
            f"{name}: should expose 9249 for Prometheus"
        )


def test_flink_python_executable_is_the_image_virtualenv(services):
    text = _flink_dockerfile(services).read_text()
    for name in FLINK_SERVICES:
        python = _flink_properties(services[name]).get("python.executable", "")
        venv = str(Path(python).parent.parent)
        assert python and re.search(rf"-m\s+venv\s+{re.escape(venv)}\b", text), (
            f"{name}: python.executable {python!r} should be the virtualenv deploy/flink.Dockerfile creates"
        )


def test_flink_checkpoints_on_a_named_volume_shared_by_both(services):
    mounts = {}
    for name in FLINK_SERVICES:
        props = _flink_properties(services[name])
        for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
            url = urlparse(props.get(key, ""))
            assert url.scheme == "file", f"{name}: {key} should be a file:// URI, got {props.get(key)!r}"
            owners = [
                (source, target)
                for kind, source, target in _mounts(services[name])
                if kind == "volume" and (url.path + "/").startswith(target.rstrip("/") + "/")
            ]
            assert owners, f"{name}: {key} {url.path} is not on a named volume"
            mounts.setdefault(key, set()).add(owners[0])
    for key, owners in mounts.items():
        assert len(owners) == 1, f"{key}: jobmanager and taskmanager must share one volume, got {owners}"


def test_flink_properties_mirror_the_local_flink_config(services, settings):
    try:
        from jobs.flink_home import FlinkHome

        local = FlinkHome(settings).config()
    except (ImportError, StreamscoreError) as exc:  # it needs the apache-flink wheel
        pytest.skip(f"local Flink config unavailable: {exc}")
    props = _flink_properties(services["jobmanager"])
    for key, value in local.items():
        if key in FLINK_IMAGE_DEFAULTS:
            continue
        assert key in props, f"FLINK_PROPERTIES should set {key} (the local stack sets {key}: {value})"
        if key in FLINK_CONTAINER_VALUED:
            continue
        want = str(value).lower() if isinstance(value, bool) else str(value)
        assert props[key] == want, f"FLINK_PROPERTIES {key} is {props[key]!r}; the local stack uses {want!r}"


# ---------------------------------------------------------------- redis, prometheus, grafana


def test_redis_has_no_persistence(services):
    command = _service(services, "redis").get("command")
    argv = command if isinstance(command, list) else shlex.split(str(command or ""))
    pairs = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if str(argv[i]).startswith("--")}
    assert pairs.get("--save") == "", f'redis should run with --save "" (no snapshots), command is {argv}'
    assert pairs.get("--appendonly") == "no", f"redis should run with --appendonly no, command is {argv}"


def test_prometheus_scrapes_both_flink_reporters(services):
    prometheus = _service(services, "prometheus")
    config_target = _mount_target(prometheus, "./deploy/prometheus/prometheus.yml")
    command = prometheus.get("command") or []
    flags = [c for c in command if str(c).startswith("--config.file=")]
    assert not flags or flags[0].split("=", 1)[1] == config_target, (
        f"--config.file {flags} should be where prometheus.yml is mounted ({config_target})"
    )
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t
        for job in config.get("scrape_configs", [])
        for sc in job.get("static_configs", [])
        for t in sc.get("targets", [])
    }
    port = str(_flink_properties(services["jobmanager"]).get("metrics.reporter.prom.port")).split("-")[0]
    for name in FLINK_SERVICES:
        assert f"{name}:{port}" in targets, (
            f"prometheus.yml should scrape {name}:{port}, scrapes {sorted(targets)}"
        )
    rules_target = _mount_target(prometheus, "./deploy/prometheus/rules")
    rule_files = config.get("rule_files") or []
    assert any(str(Path(f).parent) == rules_target.rstrip("/") for f in rule_files), (
        f"prometheus.yml rule_files {rule_files} should load {rules_target}/*.yml"
    )
    for path in sorted((ROOT / "deploy/prometheus/rules").glob("*.yml")):
        rules = yaml.safe_load(path.read_text())
        assert isinstance(rules, dict) and isinstance(rules.get("groups"), list), (
            f"{path.relative_to(ROOT)} should be a Prometheus rules file with a 'groups' list"
        )


def test_grafana_provisioning(services):
    grafana = _service(services, "grafana")
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uids = set()
    for ds in datasources.get("datasources", []):
        url = urlparse(ds["url"])
        assert url.hostname in services, (
            f"Grafana datasource {ds['name']} points at unknown host {url.hostname}"
        )
        targets = {c for _, c in _published_ports(services[url.hostname])} | {
            int(p) for p in services[url.hostname].get("expose") or []
        }
        assert url.port in targets, (
            f"Grafana datasource {ds['name']}: {url.hostname} does not serve port {url.port}"
        )
        uids.add(ds.get("uid"))
    assert "prometheus" in {urlparse(ds["url"]).hostname for ds in datasources["datasources"]}, (
        "Grafana should have the prometheus service as a datasource"
    )
    providers = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/streamscore.yml").read_text())
    dashboards_target = _mount_target(grafana, "./deploy/grafana/dashboards")
    paths = [p["options"]["path"] for p in providers.get("providers", [])]
    assert dashboards_target in paths, (
        f"the dashboard provider should read {dashboards_target} "
        f"(where deploy/grafana/dashboards is mounted), reads {paths}"
    )
    for sub in ("datasources", "dashboards"):
        _mount_target(grafana, f"./deploy/grafana/provisioning/{sub}")
    files = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
    assert files, "deploy/grafana/dashboards/ should hold at least one dashboard JSON"
    for path in files:
        board = json.loads(path.read_text())
        assert board.get("uid") and board.get("title"), f"{path.name}: a dashboard needs a uid and a title"
        assert board.get("panels"), f"{path.name}: the dashboard has no panels"
        for panel in board["panels"]:
            ds = (panel.get("datasource") or {}).get("uid")
            assert ds in uids, (
                f"{path.name}: panel {panel.get('title')!r} uses datasource {ds!r}, provisioned: {uids}"
            )


# ---------------------------------------------------------------- docker compose itself


def _compose_plugin() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [docker, "compose"] if probe.returncode == 0 else None


def test_docker_compose_config_accepts_the_file():
    compose_cmd = _compose_plugin()
    if compose_cmd is None:
        pytest.skip("the docker compose plugin is not installed")
    proc = subprocess.run(
        [*compose_cmd, "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"docker compose config rejects docker-compose.yml: {proc.stderr.strip()}"
