"""A Redis cache of predictions, consulted once per micro-batch, that never stops scoring.

Key: ``<namespace><model name>:<version>:<blake2b-128 of the row's float32 feature bytes>``,
so a cached score is the same model version's score of the same contract inputs. One ``MGET``
per micro-batch finds the hits; only the misses go to the model; one pipelined ``SET .. EX``
writes them back with a TTL. Values are 8-byte little-endian float64.

Redis down, slow or refusing: the cache *bypasses* itself (every row is a miss, nothing is
written) for ``retry_after_s``, counts the error, logs one line when the outage starts and one
when Redis answers again, and scoring goes on. Replays after a failure may hit scores written
before it: they are the same model's scores of the same inputs, so outputs do not change.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_SCORE = struct.Struct("<d")


def redis_factory(url: str, *, username: str | None = None, password_file: str | None = None,
                  ca_file: str | None = None, timeout_s: float = 0.5) -> Callable[[], object]:
    """A client factory for the cache. The password is read from a file when the client is built
    (on the TaskManager), so it never travels in a job's configuration."""

    def build():
        import redis

        from streamscore.foundation.security import read_secret

        kwargs: dict = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        if username:
            kwargs["username"] = username
        if password_file:  # as the CLI reads it (its first line), so one file works for both
            secret = read_secret({"STREAMSCORE_REDIS_PASSWORD_FILE": password_file}, "REDIS_PASSWORD")
            kwargs["password"] = secret.reveal()
        if ca_file:
            kwargs["ssl_ca_certs"] = ca_file
        if url.startswith("rediss://"):
            kwargs["ssl_check_hostname"] = True  # redis-py 5 does not check it by default
        return redis.Redis.from_url(url, **kwargs)

    return build


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bypassed_rows: int = 0  # rows looked up while the cache was bypassed (counted as misses too)


def model_key(card) -> str:
    """The model's part of a cache key (``card``: a ``models.card.ModelCard``): its ref and the first 16 hex
    digits of its ONNX file's sha256, so a model replaced under the same version (``models optimize --force``)
    never reads the scores its predecessor cached."""
    return f"{card.ref}:{card.onnx_sha256[:16]}"


class PredictionCache:
    def __init__(self, client_factory: Callable[[], object], *, model_ref: str, ttl_s: int = 3600,
                 namespace: str = "streamscore:pred:", retry_after_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, log=None):
        if ttl_s < 1:
            raise ValueError(f"cache ttl_s must be >= 1, got {ttl_s}")
        self._client_factory, self._client = client_factory, None
        self.prefix = f"{namespace}{model_ref}:".encode()
        self.ttl_s, self.retry_after_s, self._clock, self._log = ttl_s, retry_after_s, clock, log
        self._bypass_until: float | None = None
        self.stats = CacheStats()

    @property
    def bypassed(self) -> bool:
        return self._bypass_until is not None and self._clock() < self._bypass_until

    def keys(self, matrix: np.ndarray) -> list[bytes]:
        rows = np.ascontiguousarray(matrix, dtype=np.float32)
        return [self.prefix + hashlib.blake2b(row.tobytes(), digest_size=16).hexdigest().encode() for row in rows]

    def lookup(self, keys: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(scores with NaN for misses, hit mask); all misses while bypassed or on any Redis error."""
        scores, hit = np.full(len(keys), np.nan), np.zeros(len(keys), dtype=bool)
        if not keys:
            return scores, hit
        values = self._call(lambda client: client.mget(list(keys)), rows=len(keys))
        if values is not None:
            for i, value in enumerate(values):
                if value is not None and len(value) == _SCORE.size:
                    scores[i], hit[i] = _SCORE.unpack(value)[0], True
        self.stats.hits += int(hit.sum())
        self.stats.misses += len(keys) - int(hit.sum())
        return scores, hit

    def store(self, keys: Sequence[bytes], scores: Sequence[float]) -> None:
        if not keys or self.bypassed:
            return

        def write(client):
            pipe = client.pipeline(transaction=False)
            for key, score in zip(keys, scores):
                pipe.set(key, _SCORE.pack(float(score)), ex=self.ttl_s)
            return pipe.execute()

        self._call(write, rows=0)

    def _call(self, action, rows: int):
        if self.bypassed:
            self.stats.bypassed_rows += rows
            return None
        try:
            if self._client is None:
                self._client = self._client_factory()
            result = action(self._client)
        except Exception as exc:  # noqa: BLE001 - any Redis failure means: score without the cache
            self._fail(exc, rows)
            return None
        if self._bypass_until is not None:
            self._bypass_until = None
            if self._log is not None:
                self._log.info("prediction_cache_recovered")
        return result

    def _fail(self, exc: Exception, rows: int) -> None:
        self.stats.errors += 1
        self.stats.bypassed_rows += rows
        starting = self._bypass_until is None
        self._bypass_until = self._clock() + self.retry_after_s
        if self._client is not None:
            with contextlib.suppress(Exception):  # its sockets, not left to the garbage collector
                self._client.close()
        self._client = None  # reconnect on the next try
        if starting and self._log is not None:
            self._log.warning("prediction_cache_unavailable", error=f"{type(exc).__name__}: {str(exc)[:200]}",
                              bypass_s=self.retry_after_s)
