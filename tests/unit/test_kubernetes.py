"""Unit tests of deploy/kubernetes/: the Flink Kubernetes Operator manifests agree with the jobs' own configuration.

Nothing here needs Kubernetes: the manifests are parsed with yaml and checked against what they must
agree with: the session jobs' ``--config`` against ``ScoringJobConfig`` / ``DriftJobConfig`` and against
what the CLI would submit with the settings of deploy/kubernetes/README.md; the Flink cluster against
docker-compose.yml (image, FLINK_PROPERTIES), deploy/flink.Dockerfile (paths inside the image) and
pyproject.toml (the Flink release); Kafka and its topics against the local stack's settings.
"""

from __future__ import annotations

import re
import shlex
import tomllib
import zipfile
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from jobs.drift_config import DriftJobConfig
from jobs.scoring_config import (
    MIN_TRANSACTION_TIMEOUT_MS,
    TIMEOUT_HEADROOM,
    ScoringJobConfig,
    min_transaction_timeout_ms,
)
from jobs.submit import DRIFT_SCRIPT, SCORING_SCRIPT
from models.registry import load_model
from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "kubernetes"
README = K8S_DIR / "README.md"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "flink.Dockerfile"

PYTHON_DRIVER = "org.apache.flink.client.python.PythonDriver"
DRIVER_OPTIONS_WITH_VALUE = {"-py", "-pym", "-pyfs", "-pyreq", "-pyarch", "-pyexec", "-pyclientexec"}
JOBS = {"scoring": (SCORING_SCRIPT, ScoringJobConfig), "drift": (DRIFT_SCRIPT, DriftJobConfig)}

# FLINK_PROPERTIES keys of compose that the operator sets on Kubernetes (the JobManager's address,
# the process sizes from spec.jobManager/taskManager.resource.memory): flinkConfiguration leaves them out.
OPERATOR_OWNED = {
    "jobmanager.rpc.address",
    "jobmanager.rpc.port",
    "jobmanager.memory.process.size",
    "taskmanager.memory.process.size",
}
# ... where the state lives (checked by test_flink_state_is_on_one_volume_of_every_pod) ...
STATE_DIRS = (
    "state.checkpoints.dir",
    "state.savepoints.dir",
    "execution.checkpointing.dir",
    "execution.checkpointing.savepoint-dir",
)
# ... and the reporter's port, a range in compose (two processes on one host), one port per pod here.
REPORTER_PORT = "metrics.reporter.prom.port"

# server.properties keys of the local stack that Strimzi sets itself (listeners, node identity, data
# directories) or that follow the broker count (checked against the node pools instead of equality).
STRIMZI_OWNED = {
    "process.roles",
    "node.id",
    "controller.quorum.voters",
    "listeners",
    "advertised.listeners",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "log.dirs",
}
REPLICATION_FACTORS = {
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "share.coordinator.state.topic.replication.factor",
    "default.replication.factor",
}
MIN_ISRS = {
    "transaction.state.log.min.isr": "transaction.state.log.replication.factor",
    "share.coordinator.state.topic.min.isr": "share.coordinator.state.topic.replication.factor",
    "min.insync.replicas": "default.replication.factor",
}


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict]]:
    """Every object of deploy/kubernetes/*.yaml, by kind."""
    files = sorted(K8S_DIR.glob("*.yaml"))
    assert files, f"no manifests in {K8S_DIR}"
    by_kind: dict[str, list[dict]] = {}
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            assert isinstance(doc, dict) and doc.get("apiVersion") and doc.get("kind"), (
                f"{path.name}: every document should be a Kubernetes object with apiVersion and kind, got {doc!r:.200}"
            )
            name = (doc.get("metadata") or {}).get("name")
            assert name, f"{path.name}: a {doc['kind']} without metadata.name"
            by_kind.setdefault(doc["kind"], []).append(doc | {"_file": path.name})
    return by_kind


def _only(manifests: dict, kind: str) -> dict:
    docs = manifests.get(kind, [])
    assert len(docs) == 1, f"deploy/kubernetes should hold exactly one {kind}, found {len(docs)}"
    return docs[0]


def _named(manifests: dict, kind: str, name: str) -> dict:
    docs = [d for d in manifests.get(kind, []) if d["metadata"]["name"] == name]
    have = [d["metadata"]["name"] for d in manifests.get(kind, [])]
    assert docs, f"no {kind} named {name!r} in deploy/kubernetes (have {have})"
    return docs[0]


@pytest.fixture(scope="module")
def deployment(manifests) -> dict:
    return _only(manifests, "FlinkDeployment")


@pytest.fixture(scope="module")
def flink_conf(deployment) -> dict:
    conf = deployment["spec"].get("flinkConfiguration")
    assert isinstance(conf, dict) and conf, "the FlinkDeployment needs a flinkConfiguration mapping"
    return conf


@pytest.fixture(scope="module")
def session_jobs(manifests) -> dict[str, dict]:
    """The two FlinkSessionJobs, by the job they run (from their -py script)."""
    jobs = {}
    for doc in manifests.get("FlinkSessionJob", []):
        script = _driver_options(doc)[0].get("-py", "")
        kinds = [kind for kind, (path, _) in JOBS.items() if Path(script).name == path.name]
        assert kinds, f"{doc['_file']}: -py {script!r} is neither {SCORING_SCRIPT.name} nor {DRIFT_SCRIPT.name}"
        assert kinds[0] not in jobs, f"two FlinkSessionJobs run {script}"
        jobs[kinds[0]] = doc
    assert set(jobs) == set(JOBS), f"deploy/kubernetes should run both jobs as FlinkSessionJobs, runs {sorted(jobs)}"
    return jobs


def _driver_options(session_job: dict) -> tuple[dict[str, str], list[str]]:
    """PythonDriver's options (before the first job argument) and the job's own arguments."""
    args = [str(a) for a in (session_job["spec"]["job"].get("args") or [])]
    options, i = {}, 0
    while i < len(args) and args[i] in DRIVER_OPTIONS_WITH_VALUE:
        assert i + 1 < len(args), f"{session_job['_file']}: {args[i]} has no value"
        options[args[i]] = args[i + 1]
        i += 2
    return options, args[i:]


def _config_text(session_job: dict) -> str:
    _, job_args = _driver_options(session_job)
    assert job_args.count("--config") == 1 and job_args.index("--config") + 1 < len(job_args), (
        f"{session_job['_file']}: the job's arguments should be --config JSON, after PythonDriver's options; "
        f"got {[a[:40] for a in job_args]}"
    )
    return job_args[job_args.index("--config") + 1]


@pytest.fixture(scope="module")
def configs(session_jobs) -> dict:
    """Each session job's --config, read as the job reads it (from_json checks it too)."""
    return {kind: JOBS[kind][1].from_json(_config_text(job)) for kind, job in session_jobs.items()}


@pytest.fixture(scope="module")
def readme_env() -> dict[str, str]:
    """The ``export STREAMSCORE_*=`` lines of deploy/kubernetes/README.md."""
    env: dict[str, str] = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\s*export\s+(STREAMSCORE_[A-Z0-9_]+)=(\S+)\s*$", line)
        if m:
            assert m.group(1) not in env, f"README.md exports {m.group(1)} twice"
            env[m.group(1)] = m.group(2)
    assert env, "deploy/kubernetes/README.md should list the STREAMSCORE_* settings as `export NAME=value` lines"
    return env


@pytest.fixture(scope="module")
def k8s_settings(readme_env):
    return load_settings(readme_env)


@pytest.fixture(scope="module")
def local_settings():
    return load_settings({})


@pytest.fixture(scope="module")
def compose_services() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


@pytest.fixture(scope="module")
def compose_flink(compose_services) -> dict[str, str]:
    """compose's FLINK_PROPERTIES as the official image reads them (test_compose's reading)."""
    from tests.unit.test_compose import _flink_properties

    return _flink_properties(compose_services["jobmanager"])


@pytest.fixture(scope="module")
def kafka(manifests) -> dict:
    return _only(manifests, "Kafka")


@pytest.fixture(scope="module")
def brokers(manifests, kafka) -> int:
    name = kafka["metadata"]["name"]
    pools = [p for p in manifests.get("KafkaNodePool", [])
             if p["metadata"].get("labels", {}).get("strimzi.io/cluster") == name]
    assert pools, f"Kafka {name} has no KafkaNodePool labelled strimzi.io/cluster: {name}"
    return sum(int(p["spec"]["replicas"]) for p in pools if "broker" in p["spec"].get("roles", []))


def _pyproject_flink_version() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1].strip() for d in deps if re.match(r"apache-flink\s*==", d)]
    assert len(pins) == 1, f"pyproject.toml should pin apache-flink exactly once, found {pins}"
    return pins[0]


def _image_parts(image: str) -> tuple[str, str]:
    """(repository name without registry or path, tag)."""
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "latest")
    return name.rsplit("/", 1)[-1], tag


def _mebibytes(size: str) -> float:
    """A Flink (1024m, 2g) or Kubernetes (1Gi, 512Mi) memory size in MiB."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?)?\s*", str(size), re.IGNORECASE)
    assert m, f"unreadable memory size {size!r}"
    unit = (m.group(2) or "b").lower()[0]
    return float(m.group(1)) * {"b": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024, "t": 2**20}[unit]


def _pod_templates(deployment: dict, role: str) -> list[dict]:
    """The pod templates that apply to the JobManager or TaskManager pods (the shared one, then the role's)."""
    spec = deployment["spec"]
    return [t for t in (spec.get("podTemplate"), (spec.get(role) or {}).get("podTemplate")) if t]


def _flink_mounts(deployment: dict, role: str) -> dict[str, str]:
    """mountPath -> PVC claim name, for the Flink container of a role's pods."""
    claims, mounts = {}, {}
    for template in _pod_templates(deployment, role):
        for volume in template.get("spec", {}).get("volumes") or []:
            if "persistentVolumeClaim" in volume:
                claims[volume["name"]] = volume["persistentVolumeClaim"]["claimName"]
        for container in template.get("spec", {}).get("containers") or []:
            if container.get("name") == "flink-main-container":
                for mount in container.get("volumeMounts") or []:
                    mounts[mount["mountPath"]] = mount["name"]
    return {path: claims[name] for path, name in mounts.items() if name in claims}


def _image_project_dir() -> str:
    """Where deploy/flink.Dockerfile copies the repository (COPY . DEST)."""
    copies = re.findall(r"^COPY\s+\.\s+(\S+)\s*$", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(copies) == 1, f"deploy/flink.Dockerfile should COPY the repository once, found {copies}"
    return copies[0].rstrip("/")


def _docker_ignored(relative: str) -> bool:
    """Whether deploy/flink.Dockerfile.dockerignore keeps ``relative`` (or a folder above it) out of the image."""
    ignore = DOCKERFILE.with_name(DOCKERFILE.name + ".dockerignore")
    patterns = [p.strip().rstrip("/") for p in ignore.read_text().splitlines()
                if p.strip() and not p.strip().startswith(("#", "!"))]
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif any(fnmatch(prefix, pattern) for prefix in prefixes):
            return True
    return False


def _kafka_config_str(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _topics_of(kind: str, config) -> dict[str, str]:
    """role -> topic a job config reads or writes."""
    if kind == "scoring":
        topics = {"events": config.events_topic, "scored": config.scored_topic, "dead_letter": config.dead_letter_topic}
        if config.control_topic:
            topics |= {"control": config.control_topic, "scored_shadow": config.shadow_topic}
        return topics
    topics = {"events": config.events_topic, "scored": config.scored_topic, "drift_alerts": config.alerts_topic,
              "control": config.control_topic}
    return topics | ({"labels": config.labels_topic} if config.labels_topic else {})


def _identities(kind: str, config) -> tuple[set[str], set[str]]:
    """(consumer groups, transactional-id prefixes) of a job, named as jobs/scoring_job.py and
    jobs/drift_job.py name them."""
    if kind == "scoring":
        suffixes = ["scored", "dead-letter"] + (["shadow"] if config.control_topic else [])
        return {config.consumer_group}, {f"{config.transactional_prefix}-{s}" for s in suffixes}
    tables = ["events_in", "scored_in"] + (["labels_in"] if config.labels_topic else [])
    return {f"{config.job_name}-{t}" for t in tables}, {f"{config.job_name}-{s}" for s in ("alerts", "control")}


# ---------------------------------------------------------------- the Flink cluster


def test_object_names_are_unique_per_kind(manifests):
    for kind, docs in manifests.items():
        names = [d["metadata"]["name"] for d in docs]
        assert len(names) == len(set(names)), f"two {kind}s share a name: {sorted(names)}"


def test_image_is_the_one_compose_builds(deployment, compose_services):
    compose_image = compose_services["jobmanager"]["image"]
    assert compose_services["jobmanager"]["build"]["dockerfile"] == "deploy/flink.Dockerfile"
    name, tag = _image_parts(deployment["spec"]["image"])
    compose_name, compose_tag = _image_parts(compose_image)
    assert name == compose_name, (
        f"the FlinkDeployment runs image {deployment['spec']['image']!r}; compose builds deploy/flink.Dockerfile "
        f"as {compose_image!r}: use the same name (a registry prefix is fine)")
    assert tag == compose_tag or tag.startswith(compose_tag + "-"), (
        f"the FlinkDeployment's image tag {tag!r} should be compose's {compose_tag!r} or {compose_tag}-<build>")
    pinned = _pyproject_flink_version()
    assert tag.split("-", 1)[0] == pinned, (
        f"the image tag {tag!r} should start with the Flink release pyproject.toml pins (apache-flink=={pinned})")


def test_flink_version_is_the_pinned_flink_line(deployment):
    major, minor = _pyproject_flink_version().split(".")[:2]
    assert deployment["spec"].get("flinkVersion") == f"v{major}_{minor}", (
        f"flinkVersion is {deployment['spec'].get('flinkVersion')!r}; pyproject.toml pins apache-flink "
        f"{_pyproject_flink_version()}, the operator's enum for it is v{major}_{minor}")


def test_deployment_is_a_session_cluster(deployment):
    assert deployment["apiVersion"] == "flink.apache.org/v1beta1"
    assert "job" not in deployment["spec"], "the FlinkDeployment must be a session cluster (no spec.job)"
    assert deployment["spec"].get("mode", "native") in ("native", "standalone")


def test_flink_configuration_values_are_strings(flink_conf):
    bad = {k: v for k, v in flink_conf.items() if not isinstance(v, str)}
    assert not bad, f"flinkConfiguration values should be quoted strings (map[string]string in older CRDs): {bad}"


def test_flink_configuration_mirrors_compose(flink_conf, compose_flink):
    for key, value in compose_flink.items():
        if key in OPERATOR_OWNED:
            assert key not in flink_conf, f"flinkConfiguration should leave {key} to the operator"
            continue
        if key in STATE_DIRS:
            continue
        assert key in flink_conf, f"flinkConfiguration should set {key} (compose's FLINK_PROPERTIES: {key}: {value})"
        if key == REPORTER_PORT:
            assert flink_conf[key].split("-")[0] == value.split("-")[0], (
                f"{key} {flink_conf[key]!r} should start where compose's does ({value}): dashboards scrape that port")
            continue
        assert flink_conf[key] == value, f"flinkConfiguration {key} is {flink_conf[key]!r}; compose sets {value!r}"


def test_process_sizes_are_not_below_compose(deployment, compose_flink):
    for role, key in (("jobManager", "jobmanager.memory.process.size"),
                      ("taskManager", "taskmanager.memory.process.size")):
        memory = ((deployment["spec"].get(role) or {}).get("resource") or {}).get("memory")
        assert memory, f"spec.{role}.resource.memory should be set (the operator derives {key} from it)"
        assert _mebibytes(memory) >= _mebibytes(compose_flink[key]), (
            f"spec.{role}.resource.memory {memory} is below compose's {key} {compose_flink[key]}")


def test_flink_state_is_on_one_volume_of_every_pod(manifests, deployment, flink_conf):
    keys = [*STATE_DIRS, "high-availability.storageDir"]
    for key in keys:
        assert flink_conf.get(key), f"flinkConfiguration should set {key}"
    for key in keys:
        url = urlparse(flink_conf[key])
        if url.scheme != "file":
            continue  # object storage: reachable from every pod
        claims = set()
        for role in ("jobManager", "taskManager"):
            owners = [claim for path, claim in _flink_mounts(deployment, role).items()
                      if (url.path + "/").startswith(path.rstrip("/") + "/")]
            assert owners, f"{key} {url.path} is on no volume mounted in the {role} pods' flink-main-container"
            claims.add(owners[0])
        assert len(claims) == 1, f"{key}: JobManager and TaskManagers must share one volume, got {claims}"
        claim = _named(manifests, "PersistentVolumeClaim", claims.pop())
        assert "ReadWriteMany" in claim["spec"].get("accessModes", []), (
            f"PVC {claim['metadata']['name']} holds {key} for pods on different nodes: it needs ReadWriteMany")


def test_python_executable_is_the_image_virtualenv(flink_conf, compose_flink, k8s_settings):
    python = flink_conf.get("python.executable")
    assert python == compose_flink["python.executable"], (
        f"python.executable {python!r} should be compose's {compose_flink['python.executable']!r} (the same image)")
    assert flink_conf.get("python.client.executable") == python, "python.client.executable should be the same Python"
    venv = str(Path(python).parent.parent)
    assert re.search(rf"-m\s+venv\s+{re.escape(venv)}\b", DOCKERFILE.read_text()), (
        f"python.executable {python!r} should be in the virtualenv deploy/flink.Dockerfile creates")
    assert k8s_settings.cluster_python == python, (
        f"README.md's STREAMSCORE_FLINK_PYTHON gives {k8s_settings.cluster_python!r}; the cluster's is {python!r}")


def test_flink_rest_setting_is_the_operator_rest_service(deployment, flink_conf, k8s_settings):
    expected = f"{deployment['metadata']['name']}-rest:{flink_conf.get('rest.port', '8081')}"
    assert str(k8s_settings.flink_rest) == expected, (
        f"README.md's STREAMSCORE_FLINK_REST is {k8s_settings.flink_rest}; the operator serves the REST API "
        f"of {deployment['metadata']['name']} at {expected}")


# ---------------------------------------------------------------- the session jobs


def test_session_jobs_reference_the_deployment(session_jobs, deployment):
    for kind, job in session_jobs.items():
        assert job["apiVersion"] == "flink.apache.org/v1beta1"
        assert job["spec"].get("deploymentName") == deployment["metadata"]["name"], (
            f"the {kind} session job runs on {job['spec'].get('deploymentName')!r}, the session cluster is "
            f"{deployment['metadata']['name']!r}")


def test_session_jobs_run_the_python_driver_of_the_pinned_flink(session_jobs):
    pinned = _pyproject_flink_version()
    jar = f"flink-python-{pinned}.jar"
    for kind, job in session_jobs.items():
        spec = job["spec"]["job"]
        assert spec.get("entryClass") == PYTHON_DRIVER, f"the {kind} session job should run {PYTHON_DRIVER}"
        uri = urlparse(spec.get("jarURI", ""))
        assert uri.scheme == "https", (
            f"the {kind} session job's jarURI {spec.get('jarURI')!r}: the operator fetches https only by default")
        assert uri.path.endswith(f"/org/apache/flink/flink-python/{pinned}/{jar}"), (
            f"the {kind} session job's jarURI should be flink-python {pinned} (the image's Flink), "
            f"got {spec.get('jarURI')!r}")
    try:
        from jobs.flink_home import pyflink_dir

        wheel_jar = pyflink_dir() / "opt" / jar
    except Exception as exc:  # noqa: BLE001 - the wheel is optional for this check
        pytest.skip(f"apache-flink wheel unavailable: {exc}")
    assert wheel_jar.is_file(), f"the apache-flink wheel has no opt/{jar}"
    with zipfile.ZipFile(wheel_jar) as archive:
        assert PYTHON_DRIVER.replace(".", "/") + ".class" in archive.namelist(), f"{jar} lacks {PYTHON_DRIVER}"


def test_entry_points_are_the_jobs_scripts_inside_the_image(session_jobs, flink_conf):
    project = _image_project_dir()
    for kind, job in session_jobs.items():
        options, _ = _driver_options(job)
        script = options.get("-py", "")
        assert script.startswith(project + "/"), (
            f"the {kind} session job runs {script!r}, outside {project} (deploy/flink.Dockerfile: COPY . {project})")
        relative = script[len(project) + 1:]
        assert (ROOT / relative).is_file(), f"the {kind} session job runs {relative}, which is not in the repository"
        assert ROOT / relative == JOBS[kind][0], (
            f"the {kind} session job runs {relative}; `streamscore submit {kind}` runs "
            f"{JOBS[kind][0].relative_to(ROOT)}")
        assert not _docker_ignored(relative), f"{relative} is kept out of the image by the .dockerignore"
        for option, key in (("-pyexec", "python.executable"), ("-pyclientexec", "python.client.executable")):
            if option in options:
                assert options[option] == flink_conf.get(key), (
                    f"the {kind} session job's {option} {options[option]!r} differs from {key} {flink_conf.get(key)!r}")


def test_configs_parse_and_pass_their_own_checks(session_jobs):
    for kind, job in session_jobs.items():
        try:
            JOBS[kind][1].from_json(_config_text(job)).checked()
        except ConfigError as exc:
            pytest.fail(f"the {kind} session job's --config is refused as the job would refuse it: {exc}")


def test_configs_are_what_the_cli_submits(configs, k8s_settings):
    from streamscore.cli.jobs import drift_config, scoring_config
    from streamscore.cli.main import build_parser

    commands = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\s*(streamscore submit (scoring|drift)\b[^#]*)", line)
        if m:
            commands[m.group(2)] = shlex.split(m.group(1))[1:]
    assert set(commands) == set(JOBS), (
        f"README.md should name the `streamscore submit scoring|drift ...` command each session job stands for, "
        f"names {sorted(commands)}")
    parser = build_parser()
    for kind, build in (("scoring", scoring_config), ("drift", drift_config)):
        expected = build(k8s_settings, parser.parse_args(commands[kind]))
        actual = configs[kind]
        differ = {f: (getattr(actual, f), getattr(expected, f)) for f in expected.__dataclass_fields__
                  if getattr(actual, f) != getattr(expected, f)}
        assert not differ, (
            f"the {kind} session job's --config differs from `{' '.join(commands[kind])}` with README.md's "
            f"settings (field: (manifest, CLI)): {differ}")


def test_session_job_names_and_parallelism_follow_the_configs(session_jobs, configs):
    parallelism = {kind: configs[kind].parallelism for kind in ("scoring", "drift")}
    for kind, job in session_jobs.items():
        assert job["metadata"]["name"] == configs[kind].job_name, (
            f"FlinkSessionJob {job['metadata']['name']!r} should be named as its job ({configs[kind].job_name!r})")
        assert job["spec"]["job"].get("parallelism") == parallelism[kind], (
            f"the {kind} session job's parallelism {job['spec']['job'].get('parallelism')} should be the job's "
            f"{parallelism[kind]}")


def test_jobs_keep_state_across_upgrades(session_jobs, flink_conf):
    for kind, job in session_jobs.items():
        mode = job["spec"]["job"].get("upgradeMode")
        assert mode in ("savepoint", "last-state"), (
            f"the {kind} session job's upgradeMode is {mode!r}: a stateless upgrade drops its offsets, windows "
            f"and open transactions")
        assert job["spec"]["job"].get("state", "running") == "running"
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir"):
        assert flink_conf.get(key), f"savepoint upgrades need {key} in the FlinkDeployment's flinkConfiguration"


def test_jobs_do_not_share_groups_or_transactional_ids(configs):
    names = [c.job_name for c in configs.values()]
    assert len(set(names)) == len(names), f"the jobs share a name: {names}"
    groups, prefixes = {}, {}
    for kind, config in configs.items():
        groups[kind], prefixes[kind] = _identities(kind, config)
    assert not groups["scoring"] & groups["drift"], f"the jobs share consumer groups {groups}"
    everything = sorted(prefixes["scoring"] | prefixes["drift"])
    assert len(everything) == len(prefixes["scoring"]) + len(prefixes["drift"]), f"shared prefixes: {prefixes}"
    for a in everything:
        for b in everything:
            assert a == b or not b.startswith(a + "-"), (
                f"transactional-id prefix {a!r} is a prefix of {b!r}: one job could abort the other's transactions")


def test_transaction_timeouts_fit_checkpoints_and_the_broker(configs, kafka, local_settings):
    broker_max = int(kafka["spec"]["kafka"]["config"]["transaction.max.timeout.ms"])
    assert broker_max == local_settings.transaction_max_timeout_ms, (
        f"kafka.yaml's transaction.max.timeout.ms {broker_max} should be the local stack's "
        f"{local_settings.transaction_max_timeout_ms} (STREAMSCORE_TRANSACTION_MAX_TIMEOUT_MS, compose)")
    needed = {"scoring": min_transaction_timeout_ms(configs["scoring"]),
              "drift": max(MIN_TRANSACTION_TIMEOUT_MS, TIMEOUT_HEADROOM * configs["drift"].checkpoint_interval_ms)}
    for kind, config in configs.items():
        assert config.transaction_timeout_ms >= needed[kind], (
            f"the {kind} job's transaction_timeout_ms {config.transaction_timeout_ms} should be >= {needed[kind]} "
            f"(checkpoint interval {config.checkpoint_interval_ms} ms): transactions would expire uncommitted")
        assert config.transaction_timeout_ms <= broker_max, (
            f"the {kind} job's transaction_timeout_ms {config.transaction_timeout_ms} exceeds the broker's "
            f"transaction.max.timeout.ms {broker_max}: its sinks could not start a transaction")
    assert configs["scoring"].exactly_once, "the scoring job on Kubernetes should write exactly once"


def test_models_ship_in_the_image(configs):
    for kind, config in configs.items():
        model = load_model(config.model, root=config.registry_dir)  # checks the ONNX file against its card
        assert config.registry_dir is None, (
            f"the {kind} job reads models from {config.registry_dir}: the image has them in the models package")
        if kind == "drift":
            assert model.card.drift_profile, f"model {config.model} has no drift profile for the sidecar"


def test_registry_wire_matches_the_model_and_the_registry(manifests, configs, k8s_settings):
    service = _named(manifests, "Service", urlparse(k8s_settings.schema_registry.url).hostname)
    assert k8s_settings.schema_registry.port in [p["port"] for p in service["spec"]["ports"]], (
        f"README.md's STREAMSCORE_SCHEMA_REGISTRY_URL uses port {k8s_settings.schema_registry.port}, "
        f"Service {service['metadata']['name']} serves {service['spec']['ports']}")
    for kind, config in configs.items():  # every model's jobs are on the Confluent wire; ids come at their start
        assert config.registry.framing == "confluent" and not config.registry.scored_schema_id, config.registry
        want = k8s_settings.schema_registry.url_for_jobs
        assert config.registry.url == want, f"the {kind} job's registry.url {config.registry.url!r} should be {want}"


# ---------------------------------------------------------------- Kafka, Redis, the registry


def test_kafka_mirrors_the_local_server_properties(kafka, brokers, local_settings):
    from streamscore.stack.services import KafkaService

    version = kafka["spec"]["kafka"].get("version")
    assert version == local_settings.kafka_version, (
        f"kafka.yaml runs Kafka {version}; the local stack {local_settings.kafka_version}")
    config = {k: _kafka_config_str(v) for k, v in kafka["spec"]["kafka"]["config"].items()}
    local = dict(line.split("=", 1) for line in KafkaService(local_settings).server_properties().splitlines() if line)
    for key, value in local.items():
        if key in STRIMZI_OWNED:
            assert key not in config, f"kafka.yaml should leave {key} to Strimzi"
        elif key in REPLICATION_FACTORS or key in MIN_ISRS:
            assert key in config, f"kafka.yaml should set {key} (the local stack: {value})"
        else:
            assert config.get(key) == value, f"kafka.yaml sets {key}={config.get(key)!r}; the local stack {value!r}"
    for key in REPLICATION_FACTORS & set(config):
        assert 1 <= int(config[key]) <= brokers, f"{key} {config[key]} with {brokers} broker(s)"
    for isr, factor in MIN_ISRS.items():
        if isr in config:
            assert int(config[isr]) <= int(config.get(factor, brokers)), f"{isr} {config[isr]} exceeds {factor}"


def test_topics_exist_with_the_default_partitions(manifests, kafka, brokers, configs, local_settings):
    cluster = kafka["metadata"]["name"]
    topics = {}
    for doc in manifests.get("KafkaTopic", []):
        assert doc["metadata"].get("labels", {}).get("strimzi.io/cluster") == cluster, (
            f"KafkaTopic {doc['metadata']['name']} should be labelled strimzi.io/cluster: {cluster}")
        assert 1 <= int(doc["spec"].get("replicas", 1)) <= brokers, (
            f"KafkaTopic {doc['metadata']['name']} has {doc['spec'].get('replicas')} replicas, {brokers} broker(s)")
        topics[doc["spec"].get("topicName") or doc["metadata"]["name"]] = int(doc["spec"]["partitions"])
    expected = {spec.name: spec.partitions for spec in local_settings.topics}
    assert topics == expected, f"the KafkaTopics are {topics}; `streamscore topics create` makes {expected}"
    for kind, config in configs.items():
        for role, topic in _topics_of(kind, config).items():
            assert topics.get(topic) == local_settings.topic(role).partitions, (
                f"the {kind} job's {role} topic {topic!r} is not a KafkaTopic with "
                f"{local_settings.topic(role).partitions} partitions")


def test_bootstrap_is_the_strimzi_bootstrap_service(kafka, configs, k8s_settings):
    name = kafka["metadata"]["name"]
    plain = [f"{name}-kafka-bootstrap:{listener['port']}" for listener in kafka["spec"]["kafka"]["listeners"]
             if not listener.get("tls") and listener.get("type") == "internal"]
    assert plain, "kafka.yaml should have an internal listener without TLS (the jobs log in with PLAINTEXT)"
    for kind, config in configs.items():
        assert config.bootstrap in plain, f"the {kind} job's bootstrap {config.bootstrap!r} is none of {plain}"
        assert config.bootstrap == k8s_settings.jobs_kafka_bootstrap, (
            f"the {kind} job's bootstrap {config.bootstrap!r}; README.md's settings give "
            f"{k8s_settings.jobs_kafka_bootstrap!r}")
    assert configs["scoring"].auth.kafka_protocol == "PLAINTEXT", "the scoring job's workers should use PLAINTEXT"


def _container(manifests: dict, deployment_name: str) -> dict:
    pod = _named(manifests, "Deployment", deployment_name)["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1, f"Deployment {deployment_name} should run one container"
    return pod["containers"][0]


def test_redis_runs_as_compose_runs_it(manifests, configs, compose_services, k8s_settings):
    url = urlparse(configs["scoring"].redis_url)
    service = _named(manifests, "Service", url.hostname)
    assert url.port in [p["port"] for p in service["spec"]["ports"]], f"Service {url.hostname} lacks port {url.port}"
    assert configs["scoring"].redis_url == k8s_settings.redis_url, (
        f"the scoring job's redis_url {configs['scoring'].redis_url}; README.md's settings give "
        f"{k8s_settings.redis_url}")
    container = _container(manifests, url.hostname)
    compose = compose_services["redis"]
    assert container["image"] == compose["image"], f"Redis image {container['image']}; compose runs {compose['image']}"
    argv = [*(container.get("command") or []), *(container.get("args") or [])]
    assert argv == compose["command"], f"Redis runs {argv}; compose runs {compose['command']}"


def test_registry_runs_as_compose_runs_it(manifests, compose_services, k8s_settings):
    host = urlparse(k8s_settings.schema_registry.url).hostname
    container = _container(manifests, host)
    compose = compose_services["registry"]
    version = k8s_settings.schema_registry.version
    assert container["image"] == compose["image"] == f"apicurio/apicurio-registry:{version}", (
        f"the registry runs {container['image']}; compose {compose['image']}, the local stack Apicurio {version}")
    env = {e["name"]: str(e["value"]) for e in container.get("env") or []}
    assert env == {k: str(v) for k, v in compose["environment"].items()}, (
        f"the registry's env {env} should be compose's {compose['environment']}")
    target = env["APICURIO_DATASOURCE_URL"].removeprefix("jdbc:h2:file:").rsplit("/", 1)[0]
    pod = _named(manifests, "Deployment", host)["spec"]["template"]["spec"]
    claims = {v["name"] for v in pod.get("volumes") or [] if "persistentVolumeClaim" in v}
    assert any(m["mountPath"] == target and m["name"] in claims for m in container.get("volumeMounts") or []), (
        f"the registry's H2 file is under {target}, which is not on a volume: schemas would not survive a restart")


def test_the_image_carries_the_jvm_decoder_where_the_scoring_job_looks_for_it(readme_env, configs, k8s_settings):
    text = DOCKERFILE.read_text()
    stage = re.search(r"^FROM\s+maven:\S+\s+AS\s+(\w+)\s*$", text, re.MULTILINE)
    assert stage, "deploy/flink.Dockerfile should build jobs/udf in a Maven stage"
    assert re.search(r"^COPY\s+jobs/udf\s+(\S+)", text, re.MULTILINE), "the Maven stage should copy jobs/udf"
    copied = re.search(rf"^COPY\s+--from={stage.group(1)}\s+(?:--chown=\S+\s+)?\S+\s+(\S+\.jar)\s*$", text,
                       re.MULTILINE)
    assert copied, "the Flink stage should copy the decoder's jar out of the Maven stage"
    jar = "file://" + copied.group(1)
    assert readme_env["STREAMSCORE_JOBS_DECODER_JAR"] == k8s_settings.schema_registry.jobs_decoder_jar == jar
    assert configs["scoring"].decoder_jar == jar  # the session job decodes in the JVM, with the image's jar
