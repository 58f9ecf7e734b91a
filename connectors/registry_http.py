"""The registry client's HTTP: one JSON request and its answer, every failure one typed error with one line.

A redirect is followed only within the registry's own origin (scheme, host and port): urllib's default handler
would carry the request's headers, the ``Authorization`` of basic auth among them, to whatever host a 30x names,
from https down to http too. A registry behind a proxy that redirects elsewhere is refused in one line that says
where to point ``STREAMSCORE_SCHEMA_REGISTRY_URL`` instead.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from streamscore.foundation.errors import (
    IncompatibleSchema,
    RegistryError,
    RegistryRefused,
    RegistryUnavailable,
    SchemaNotFound,
)

_NOT_FOUND_CODES = range(40400, 40500)  # the registry's own "no such subject / version / schema" answers


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if _origin(newurl) != _origin(req.full_url):
            raise RegistryRefused(f"schema registry: {req.get_method()} {req.full_url} -> {code} redirected to "
                                  f"another origin ({newurl}); not followed: set STREAMSCORE_SCHEMA_REGISTRY_URL "
                                  "to the address that answers")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class RegistryHttp:
    """Requests to one registry ``url`` with fixed ``headers`` (content type, basic auth) and TLS context."""

    def __init__(self, url: str, headers: dict[str, str], tls: ssl.SSLContext | None, timeout_s: float):
        self.url, self.timeout_s, self._headers = url, timeout_s, headers
        handlers: list[Any] = [_SameOriginRedirects()]
        if tls is not None:
            handlers.append(urllib.request.HTTPSHandler(context=tls))
        self._opener = urllib.request.build_opener(*handlers)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=self._headers)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise http_error(exc, method, self.url + path) from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):  # a certificate problem: waiting will not mend it
                raise RegistryRefused(f"schema registry {self.url}: TLS failed for {method} {path}: "
                                      f"{exc.reason}") from exc
            raise RegistryUnavailable(f"schema registry {self.url} did not answer {method} {path}: "
                                      f"{exc.reason}") from exc
        except (OSError, http.client.HTTPException) as exc:  # reset, timed out, cut mid-body, not HTTP at all
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
            raise RegistryUnavailable(f"schema registry {self.url} did not answer {method} {path}: {reason}") from exc
        except ValueError as exc:  # not JSON: not a registry
            raise RegistryRefused(f"schema registry {self.url} answered {method} {path} with no JSON") from exc


def http_error(exc: urllib.error.HTTPError, method: str, url: str) -> RegistryError:
    """The typed error of a registry's HTTP refusal, with its own message."""
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = " ".join(str(body.get("message", "")).split())[:400] or exc.reason
    line = f"schema registry: {method} {url} -> {exc.code}: {message}"
    if exc.code == 404 and body.get("error_code") in _NOT_FOUND_CODES:
        return SchemaNotFound(line)
    if exc.code == 409:
        return IncompatibleSchema(line)
    if exc.code >= 500 or exc.code in (408, 429):
        return RegistryUnavailable(line)
    return RegistryRefused(line)  # a 404 without the registry's own code: a wrong URL, not a missing schema
