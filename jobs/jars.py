"""Java artifacts from Maven Central, resolved once with Maven into a cache, offline afterwards."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from streamscore.foundation.errors import StackError
from streamscore.foundation.locks import exclusive

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.streamscore.cache</groupId><artifactId>{artifact_id}</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""
_DEPENDENCY = (
    "    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
    "<version>{v}</version></dependency>"
)
_COMPLETE_MARKER = ".complete"

LOG4J_VERSION = "2.24.3"


def kafka_broker_artifacts(kafka_version: str) -> list[str]:
    """The broker (Scala 2.13 build, KRaft) plus a log4j2 backend for its slf4j 1.x logging."""
    return [
        f"org.apache.kafka:kafka_2.13:{kafka_version}",
        f"org.apache.logging.log4j:log4j-slf4j-impl:{LOG4J_VERSION}",
        f"org.apache.logging.log4j:log4j-core:{LOG4J_VERSION}",
    ]


def flink_kafka_connector_artifact(connector_version: str) -> str:
    return f"org.apache.flink:flink-sql-connector-kafka:{connector_version}"


def resolve(cache_dir: Path, name: str, coordinates: list[str], transitive: bool = True) -> list[Path]:
    """Jars for ``coordinates`` (group:artifact:version) in ``cache_dir/name``, fetched on first use."""
    target = cache_dir / "jars" / name
    if (target / _COMPLETE_MARKER).is_file():
        return sorted(target.glob("*.jar"))
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            f"Maven ('mvn') is not on PATH; it is needed once to fetch {name} from Maven Central "
            "(Debian: apt-get install maven)"
        )
    build = cache_dir / "jars" / f".{name}.build"
    shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    build.mkdir(parents=True)
    (build / "pom.xml").write_text(_pom(name, coordinates))
    _run_maven(mvn, build, target, transitive, name)
    jars = sorted(target.glob("*.jar"))
    if not jars:
        raise StackError(f"Maven resolved no jars for {name}; see {build / 'maven.log'}")
    (target / _COMPLETE_MARKER).write_text("\n".join(coordinates) + "\n")
    return jars


def _pom(name: str, coordinates: list[str]) -> str:
    deps = []
    for coordinate in coordinates:
        parts = coordinate.split(":")
        if len(parts) != 3:
            raise StackError(f"bad Maven coordinate {coordinate!r}; want group:artifact:version")
        deps.append(_DEPENDENCY.format(g=parts[0], a=parts[1], v=parts[2]))
    return _POM.format(artifact_id=name, dependencies="\n".join(deps))


def _run_maven(mvn: str, build: Path, target: Path, transitive: bool, name: str) -> None:
    log = build / "maven.log"
    argv = [
        mvn, "-B", "-q", "dependency:copy-dependencies",
        f"-DoutputDirectory={target}", "-DincludeScope=runtime",
        f"-DexcludeTransitive={'false' if transitive else 'true'}",
    ]
    with open(log, "wb") as out:
        proc = subprocess.run(argv, cwd=build, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        hint = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise StackError(
            f"Maven could not fetch {name} (exit {proc.returncode}); log: {log}\n  " + "\n  ".join(hint)
        )


def apicurio_registry_artifact(version: str) -> str:
    """Apicurio Registry's Quarkus app, the ``all`` tar.gz (``java -jar quarkus-run.jar``)."""
    return f"io.apicurio:apicurio-registry-app:{version}:tar.gz:all"


def fetch_archive(cache_dir: Path, name: str, coordinate: str) -> Path:
    """An archive (group:artifact:version:type:classifier) unpacked in ``cache_dir/name``, fetched on first use."""
    target = cache_dir / "archives" / name
    if (target / _COMPLETE_MARKER).is_file():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(f"Maven ('mvn') is not on PATH; it is needed once to fetch {name} from Maven Central "
                         "(Debian: apt-get install maven)")
    build = cache_dir / "archives" / f".{name}.build"
    shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    build.mkdir(parents=True)
    log = build / "maven.log"
    argv = [mvn, "-B", "-q", "dependency:copy", f"-Dartifact={coordinate}", f"-DoutputDirectory={build}"]
    with open(log, "wb") as out:
        proc = subprocess.run(argv, cwd=build, stdout=out, stderr=subprocess.STDOUT, check=False)
    archives = sorted(build.glob("*.tar.gz")) + sorted(build.glob("*.zip"))
    if proc.returncode != 0 or not archives:
        hint = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise StackError(f"Maven could not fetch {coordinate} (exit {proc.returncode}); log: {log}\n  "
                         + "\n  ".join(hint))
    unpacked = build / "unpacked"
    shutil.unpack_archive(archives[0], unpacked)
    unpacked.rename(target)
    (target / _COMPLETE_MARKER).write_text(coordinate + "\n")
    shutil.rmtree(build, ignore_errors=True)
    return target


UDF_DIR = Path(__file__).resolve().parent / "udf"  # the project's Java functions: pom.xml + src/


def udf_jar(cache_dir: Path) -> Path:
    """The project's Flink UDF jar (``jobs/udf``), built by Maven once per version of its sources; one build at a
    time (jobs submitted together, or two commands at once, would otherwise wipe each other's build folder)."""
    import hashlib

    sources = [UDF_DIR / "pom.xml", *sorted((UDF_DIR / "src" / "main").rglob("*.java"))]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    target = cache_dir / "udf" / digest / "streamscore-udf.jar"
    if target.is_file():
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven ('mvn') is not on PATH; it builds the project's Flink functions (jobs/udf) "
                         "(Debian: apt-get install maven)")
    with exclusive(target.parent / ".build.lock"):
        if not target.is_file():  # built by whoever held the lock before
            _build_udf(mvn, target)
    return target


def _build_udf(mvn: str, target: Path) -> None:
    build = target.parent / "build"
    shutil.rmtree(build, ignore_errors=True)
    shutil.copytree(UDF_DIR, build, ignore=shutil.ignore_patterns("target"))
    log = target.parent / "maven.log"
    with open(log, "wb") as out:
        proc = subprocess.run([mvn, "-B", "-q", "package"], cwd=build, stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    built = sorted((build / "target").glob("streamscore-udf-*.jar"))
    if proc.returncode != 0 or not built:
        hint = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise StackError(f"Maven could not build jobs/udf (exit {proc.returncode}); log: {log}\n  " + "\n  ".join(hint))
    built[-1].rename(target)
    shutil.rmtree(build, ignore_errors=True)
