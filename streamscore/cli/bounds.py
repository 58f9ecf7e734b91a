"""Input bounds of a producer: a record-rate ceiling (token bucket) and a maximum message size.

``produce --rate R`` paces records evenly on a schedule (R/s on average; after a stall it
catches up). ``produce --max-rate M`` is a ceiling that holds whatever the pacing does: no
more than M records in any second, plus a burst of at most ``burst`` records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from streamscore.foundation.errors import ConfigError

# librdkafka counts a record's wire overhead against message.max.bytes (and 1000 is its minimum)
RECORD_OVERHEAD_BYTES = 512
LIBRDKAFKA_MIN_MESSAGE_MAX_BYTES = 1000


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; ``acquire`` sleeps until one is there."""

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ConfigError(f"a rate limit must be > 0 records/s, got {rate}")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate / 10)  # default: 100 ms of records
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> None:
        self._refill()
        if self._tokens < 1.0:
            self._sleep((1.0 - self._tokens) / self.rate)
            self._refill()
            self._tokens = max(self._tokens, 1.0)  # a sleep that ended a hair early still earned the token
        self._tokens -= 1.0


@dataclass
class SizeBound:
    """Refuses records whose key + value exceed ``max_bytes``, counting them."""

    max_bytes: int
    refused: int = 0
    largest_refused: int = 0
    _seen: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.max_bytes <= 0:
            raise ConfigError(f"a maximum message size must be > 0 bytes, got {self.max_bytes}")

    def admit(self, key: bytes | None, value: bytes | None) -> bool:
        size = len(key or b"") + len(value or b"")
        if size <= self.max_bytes:
            return True
        self.refused += 1
        self.largest_refused = max(self.largest_refused, size)
        return False

    def filter(self, items: Iterable[tuple]) -> Iterator[tuple]:
        """(key, value, ...) tuples that fit; the others are counted in ``refused``."""
        return (item for item in items if self.admit(item[0], item[1]))

    def producer_message_max_bytes(self) -> int:
        """librdkafka's ``message.max.bytes`` that lets every admitted record through and no larger one."""
        return max(LIBRDKAFKA_MIN_MESSAGE_MAX_BYTES, self.max_bytes + RECORD_OVERHEAD_BYTES)
