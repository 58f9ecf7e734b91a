# syntax=docker/dockerfile:1
#
# The PyFlink image of the compose stack (docker-compose.yml: jobmanager, taskmanager).
# Build context: the repository root (`docker compose build`, or
# `docker build -f deploy/flink.Dockerfile .`); deploy/flink.Dockerfile.dockerignore keeps
# .venv, .git, .streamscore and other local state out of the context.
#
# On top of the official Flink image it adds:
#   - Python 3.11 in a virtualenv at /opt/venv (pip, apache-flink, the streamscore project);
#     Flink's python.executable points at /opt/venv/bin/python (see FLINK_PROPERTIES);
#   - the Kafka SQL connector jar from Maven Central in /opt/flink/lib (checked against its .sha1);
#   - flink-python moved from /opt/flink/opt to /opt/flink/lib;
#   - the JVM decoder's jar (jobs/udf) at /opt/streamscore-udf/streamscore-udf.jar;
#   - the Prometheus metrics reporter plugin (plugins/metrics-prometheus);
#   - /flink-data/{checkpoints,savepoints} owned by flink, so the named volume mounted there
#     starts out writable by the flink user.
#
# Versions: Flink and PyFlink must be the same release (pyproject.toml pins apache-flink), and
# the connector must be built for that Flink line (streamscore/foundation/config.py's
# flink_connector_version). tests/unit/test_compose.py checks both.

ARG FLINK_VERSION=2.2.1
ARG JAVA_VERSION=17

# The JVM decoder (jobs/udf: decode_confluent), built by Maven in a stage of its own; the image keeps
# only its jar, at the path STREAMSCORE_JOBS_DECODER_JAR names (deploy/kubernetes/README.md), so the
# jobs decode in the JVM without Maven where they are submitted.
FROM maven:3.9-eclipse-temurin-${JAVA_VERSION} AS udf
COPY jobs/udf /build/udf
RUN set -eux; \
    mvn -B -q -f /build/udf/pom.xml package; \
    cp /build/udf/target/streamscore-udf-*.jar /build/streamscore-udf.jar

FROM flink:${FLINK_VERSION}-java${JAVA_VERSION}

ARG PYFLINK_VERSION=2.2.1
ARG PYTHON_VERSION=3.11
ARG KAFKA_CONNECTOR_VERSION=5.0.0-2.2
ARG MAVEN_REPOSITORY=https://repo1.maven.org/maven2

USER root
ENV DEBIAN_FRONTEND=noninteractive

# Python 3.11: the base image is Ubuntu 24.04 (Python 3.12 only), so it comes from the deadsnakes
# PPA. The -dev headers and a compiler are there for the platforms that PyPI has no apache-flink
# wheel for (linux/arm64 builds it from source).
RUN set -eux; \
    apt-get update; \
    apt-get install -y software-properties-common; \
    add-apt-repository -y ppa:deadsnakes/ppa; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        "python${PYTHON_VERSION}" "python${PYTHON_VERSION}-venv" "python${PYTHON_VERSION}-dev" \
        build-essential ca-certificates wget; \
    rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN set -eux; \
    "python${PYTHON_VERSION}" -m venv /opt/venv; \
    /opt/venv/bin/python -m pip install --no-cache-dir --upgrade pip setuptools wheel; \
    /opt/venv/bin/python -m pip install --no-cache-dir "apache-flink==${PYFLINK_VERSION}"

# Jars and plugins: the Kafka connector, flink-python, the Prometheus reporter; checkpoint folders.
RUN set -eux; \
    jar="flink-sql-connector-kafka-${KAFKA_CONNECTOR_VERSION}.jar"; \
    url="${MAVEN_REPOSITORY}/org/apache/flink/flink-sql-connector-kafka/${KAFKA_CONNECTOR_VERSION}/${jar}"; \
    wget -nv -O "/opt/flink/lib/${jar}" "${url}"; \
    wget -nv -O /tmp/connector.jar.sha1 "${url}.sha1"; \
    echo "$(cut -c1-40 /tmp/connector.jar.sha1)  /opt/flink/lib/${jar}" | sha1sum -c -; \
    rm /tmp/connector.jar.sha1; \
    mv /opt/flink/opt/flink-python*.jar /opt/flink/lib/; \
    if ! ls /opt/flink/plugins/metrics-prometheus/flink-metrics-prometheus-*.jar > /dev/null 2>&1; then \
        mkdir -p /opt/flink/plugins/metrics-prometheus; \
        cp /opt/flink/opt/flink-metrics-prometheus-*.jar /opt/flink/plugins/metrics-prometheus/; \
    fi; \
    mkdir -p /flink-data/checkpoints /flink-data/savepoints; \
    chown -R flink:flink /opt/flink/lib /opt/flink/plugins /flink-data

COPY --from=udf --chown=flink:flink /build/streamscore-udf.jar /opt/streamscore-udf/streamscore-udf.jar

# The project last: a code change rebuilds only this layer.
COPY . /opt/streamscore
RUN /opt/venv/bin/python -m pip install --no-cache-dir /opt/streamscore

USER flink
EXPOSE 6123 8081 9249
# ENTRYPOINT (/docker-entrypoint.sh) and its FLINK_PROPERTIES handling come from the base image;
# docker-compose.yml runs it with `jobmanager` or `taskmanager`.
