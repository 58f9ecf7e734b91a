"""Producer input bounds: the rate ceiling (token bucket) and the maximum message size."""

from __future__ import annotations

import argparse

import pytest

from streamscore.cli.bounds import LIBRDKAFKA_MIN_MESSAGE_MAX_BYTES, RECORD_OVERHEAD_BYTES, SizeBound, TokenBucket
from streamscore.cli.produce import InputError, _check_bounds
from streamscore.foundation.errors import ConfigError


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_the_burst_then_paces_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(100.0, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    assert clock.now == 0.0 and not clock.slept  # the burst costs no time
    for _ in range(100):
        bucket.acquire()
    assert clock.now == pytest.approx(1.0)  # 100 more at 100/s
    assert max(clock.slept) == pytest.approx(0.01)


def test_token_bucket_never_exceeds_rate_plus_burst_in_any_window():
    clock = FakeClock()
    bucket = TokenBucket(50.0, clock=clock, sleep=clock.sleep)  # burst 5 (0.1 s)
    stamps = []
    for _ in range(500):
        bucket.acquire()
        stamps.append(clock.now)
    for i, start in enumerate(stamps):
        in_window = sum(1 for t in stamps[i:] if t < start + 1.0)
        assert in_window <= 50 + bucket.burst


def test_idle_time_saves_up_at_most_the_burst():
    clock = FakeClock()
    bucket = TokenBucket(10.0, burst=2, clock=clock, sleep=clock.sleep)
    clock.now = 3600.0  # an hour idle
    for _ in range(2):
        bucket.acquire()
    assert not clock.slept
    bucket.acquire()
    assert clock.slept == [pytest.approx(0.1)]


def test_a_rate_must_be_positive():
    with pytest.raises(ConfigError):
        TokenBucket(0)


def test_size_bound_refuses_and_counts_larger_records():
    bound = SizeBound(10)
    items = [(b"k", b"123456789", 1), (b"k", b"1234567890", 2), (b"", b"x" * 30, 3), (None, b"", 4)]
    kept = list(bound.filter(items))
    assert [item[2] for item in kept] == [1, 4]
    assert (bound.refused, bound.largest_refused) == (2, 30)


def test_size_bound_sets_the_producer_limit_above_every_admitted_record():
    assert SizeBound(1_000_000).producer_message_max_bytes() == 1_000_000 + RECORD_OVERHEAD_BYTES
    assert SizeBound(10).producer_message_max_bytes() == LIBRDKAFKA_MIN_MESSAGE_MAX_BYTES
    with pytest.raises(ConfigError):
        SizeBound(0)


@pytest.mark.parametrize("rate, max_rate, max_bytes, message", [
    (0.0, 0.0, None, "--max-rate must be > 0"),
    (500.0, 200.0, None, "--rate 500 is above --max-rate 200"),
    (0.0, None, -1, "--max-message-bytes must be > 0"),
])
def test_contradictory_or_empty_bounds_are_refused(rate, max_rate, max_bytes, message):
    args = argparse.Namespace(rate=rate, max_rate=max_rate, max_message_bytes=max_bytes)
    with pytest.raises(InputError, match=message):
        _check_bounds(args)


def test_sensible_bounds_pass():
    _check_bounds(argparse.Namespace(rate=100.0, max_rate=200.0, max_message_bytes=4096))
    _check_bounds(argparse.Namespace(rate=0.0, max_rate=None, max_message_bytes=None))
