"""A schema registry that needs a login and has its own CA, as many are run: the stack's real Apicurio
behind an HTTPS reverse proxy (a test CA's certificate) that asks for basic auth, as nginx in front of
a registry would. Both decoders reach it with the job's settings (a username, a password file and a CA
file): the JVM decoder (``decode_confluent``'s registry access) in an embedded Flink job, and the Python
client the scoring step uses for JSON input and STREAMSCORE_DECODER=python."""

from __future__ import annotations

import base64
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from secure_stack import private_file
from security_certs import make_tls_files

from connectors.schema_registry import SchemaRegistry
from jobs.jars import udf_jar
from jobs.job_wire import RegistryWire, registry_settings
from jobs.jvm_decode import decode_call
from schemas.confluent import RegistryAvroSerde

pytestmark = pytest.mark.integration

USER, PASSWORD = "svc-scoring", "s3cret-" + uuid.uuid4().hex[:6]
SCHEMA = {"type": "record", "name": "Reading", "namespace": "io.streamscore.test", "fields": [
    {"name": "sensor_id", "type": "string"}, {"name": "temperature", "type": "double"}]}
RECORD = {"sensor_id": "s-42", "temperature": 21.5}


class _LoginProxy(BaseHTTPRequestHandler):
    """GETs forwarded to the registry when they carry the login; 401 otherwise."""

    upstream = ""
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    logins: ClassVar[list[bool]] = []

    def do_GET(self):
        allowed = self.headers.get("Authorization") == self.expected
        self.logins.append(allowed)
        status, body = 401, b'{"error_code": 401, "message": "Unauthorized"}'
        if allowed:
            try:
                with urllib.request.urlopen(self.upstream + self.path, timeout=5) as answer:
                    status, body = answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                status, body = exc.code, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def proxy(settings, stack, tmp_path_factory):
    """(https URL of the proxied registry API, TLS files, password file)."""
    folder = tmp_path_factory.mktemp("registry-login")
    tls = make_tls_files(folder / "tls")
    upstream = settings.schema_registry.url.split("/apis/")[0]
    handler = type("Proxy", (_LoginProxy,), {"upstream": upstream, "logins": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.server_cert, tls.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/apis/ccompat/v7"
    yield url, tls, private_file(folder / "registry.pw", PASSWORD), handler
    server.shutdown()


@pytest.fixture(scope="module")
def framed(settings, stack):
    """A record on the Confluent wire, its schema registered in the stack's registry."""
    registry = SchemaRegistry(settings.schema_registry)
    schema_id = registry.register(f"login-{uuid.uuid4().hex[:8]}-value", SCHEMA)
    return RegistryAvroSerde(SCHEMA, schema_id, registry).encode(RECORD), schema_id


def _decoding_env(settings, payload: bytes):
    """An embedded Flink table environment with the UDF jar, ``decode_confluent`` and one payload as ``src``."""
    from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    t_env.get_config().set("pipeline.jars", udf_jar(settings.cache_dir).as_uri())
    t_env.get_config().set("parallelism.default", "1")
    t_env.create_temporary_view("src", t_env.from_elements(
        [(bytearray(payload),)], DataTypes.ROW([DataTypes.FIELD("payload", DataTypes.BYTES())])))
    t_env.execute_sql("CREATE TEMPORARY FUNCTION decode_confluent AS 'io.streamscore.udf.ConfluentAvroDecode' "
                      "LANGUAGE JAVA")
    return t_env


def test_the_proxy_refuses_a_request_without_the_login(proxy, framed):
    url, tls, _, _ = proxy
    context = ssl.create_default_context(cafile=str(tls.ca_cert))
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{url}/schemas/ids/{framed[1]}", context=context, timeout=5)
    assert refused.value.code == 401


def test_the_jvm_decoder_reads_through_the_login_and_the_ca(settings, proxy, framed):
    url, tls, password_file, handler = proxy
    payload, _ = framed
    t_env = _decoding_env(settings, payload)
    wire = RegistryWire(url=url, username=USER, password_file=str(password_file), ca_file=str(tls.ca_cert),
                        wait_ms=20_000)
    before = handler.logins.count(True)
    query = (f"SELECT d.ok, d.reason, d.sensor_id, d.temperature FROM "
             f"(SELECT {decode_call(wire, SCHEMA, {})} AS d FROM src)")  # the call the scoring job makes
    assert PASSWORD not in query  # the plan names the file, never the password
    with t_env.sql_query(query).execute().collect() as results:
        rows = [tuple(row) for row in results]
    assert rows == [(True, None, "s-42", 21.5)]
    assert handler.logins.count(True) > before  # the schema came through the proxy, logged in


def test_a_refused_login_fails_the_jvm_decoders_task_at_once(settings, proxy, framed, tmp_path):
    """A wrong password is no outage: the task fails naming the refusal, long before the 120 s it would
    wait for a registry that does not answer, and the record is not dead-lettered."""
    import time

    from py4j.protocol import Py4JJavaError

    url, tls, _, _ = proxy
    wrong = private_file(tmp_path / "wrong.pw", "not-" + PASSWORD)
    wire = RegistryWire(url=url, username=USER, password_file=str(wrong), ca_file=str(tls.ca_cert),
                        wait_ms=120_000)
    t_env = _decoding_env(settings, framed[0])
    started = time.monotonic()
    query = t_env.sql_query(f"SELECT d.ok FROM (SELECT {decode_call(wire, SCHEMA, {})} AS d FROM src)")
    with pytest.raises(Py4JJavaError) as failed, query.execute().collect() as results:
        list(results)
    assert time.monotonic() - started < 60
    assert "refused the login (HTTP 401)" in str(failed.value)


def test_the_python_decoder_reads_through_the_login_and_the_ca(proxy, framed):
    url, tls, password_file, _ = proxy
    payload, _ = framed
    login = registry_settings(RegistryWire(url=url, username=USER, password_file=str(password_file),
                                           ca_file=str(tls.ca_cert)))  # as the scoring step reads them
    assert RegistryAvroSerde(SCHEMA, None, SchemaRegistry(login)).decode(payload) == RECORD
