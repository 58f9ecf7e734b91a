"""The registry client's HTTP against small local servers: redirects followed only within the registry's origin
(basic auth never travels to another host), and answers cut short or not HTTP at all as one typed error."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.registry_http import RegistryHttp
from streamscore.foundation.errors import RegistryRefused, RegistryUnavailable

AUTH = {"Authorization": "Basic c3ZjOnMzY3JldA=="}


class _Server:
    """A local HTTP server whose handler answers by path; it keeps the headers of every request it got."""

    def __init__(self, routes: dict):
        self.seen: list[tuple[str, dict]] = []
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server_self.seen.append((self.path, dict(self.headers)))
                routes[self.path](self)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _json(handler, value):
    body = json.dumps(value).encode()
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _redirect(to):
    def answer(handler):
        handler.send_response(302)
        handler.send_header("Location", to)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return answer


@pytest.fixture
def servers():
    made = []
    yield lambda routes: made.append(_Server(routes)) or made[-1]
    for server in made:
        server.close()


def test_a_redirect_within_the_registry_is_followed_with_its_auth(servers):
    server = servers({"/subjects": _redirect("/v2/subjects"), "/v2/subjects": lambda h: _json(h, ["a-value"])})
    assert RegistryHttp(server.url, AUTH, None, 5).call("GET", "/subjects") == ["a-value"]
    assert [(path, headers.get("Authorization")) for path, headers in server.seen] == [
        ("/subjects", AUTH["Authorization"]), ("/v2/subjects", AUTH["Authorization"])]


def test_a_redirect_to_another_origin_is_refused_and_the_credentials_stay(servers):
    elsewhere = servers({"/subjects": lambda h: _json(h, ["stolen"])})
    server = servers({"/subjects": _redirect(elsewhere.url + "/subjects")})
    with pytest.raises(RegistryRefused, match=r"redirected to another origin.*STREAMSCORE_SCHEMA_REGISTRY_URL"):
        RegistryHttp(server.url, AUTH, None, 5).call("GET", "/subjects")
    assert elsewhere.seen == []


def test_an_answer_cut_mid_body_is_unavailable(servers):
    def cut(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        handler.wfile.write(b'{"id": ')
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)

    server = servers({"/schemas/ids/1": cut})
    with pytest.raises(RegistryUnavailable, match="did not answer GET /schemas/ids/1: IncompleteRead"):
        RegistryHttp(server.url, {}, None, 5).call("GET", "/schemas/ids/1")


def test_a_port_that_does_not_speak_http_is_unavailable():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def babble():
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    threading.Thread(target=babble, daemon=True).start()
    try:
        with pytest.raises(RegistryUnavailable, match="did not answer GET /subjects"):
            RegistryHttp(f"http://127.0.0.1:{listener.getsockname()[1]}", {}, None, 5).call("GET", "/subjects")
    finally:
        listener.close()


def test_an_id_the_registry_does_not_know_is_asked_again_only_after_a_while(servers, monkeypatch):
    """A producer of garbage ids (or ids of another registry) must not cost a registry request a record."""
    from connectors import schema_registry
    from connectors.schema_registry import SchemaNotFound, SchemaRegistry
    from streamscore.foundation.registry_settings import RegistrySettings

    def not_found(handler):
        body = json.dumps({"error_code": 40403, "message": "Schema 77 not found."}).encode()
        handler.send_response(404)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    server = servers({"/schemas/ids/77": not_found})
    registry = SchemaRegistry(RegistrySettings(url=server.url, mode="external"))
    for _ in range(3):
        with pytest.raises(SchemaNotFound, match="Schema 77 not found"):
            registry.schema(77)
    assert len(server.seen) == 1
    monkeypatch.setattr(schema_registry, "MISSING_ID_RETRY_S", 0.0)
    registry._missing.clear()
    for _ in range(2):
        with pytest.raises(SchemaNotFound):
            registry.schema(77)
    assert len(server.seen) == 3  # remembered for no time at all: asked each time
