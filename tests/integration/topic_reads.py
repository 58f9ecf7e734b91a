"""Reading what a running job wrote: once all of it is there, not at the first end of partition."""

from __future__ import annotations

import time
from collections.abc import Callable

from connectors.kafka_clients import read_topic


def read_until(settings, topic: str, count: int, decode: Callable[[bytes], object],
               timeout_s: float = 120.0) -> list:
    """The topic's committed records (decoded) once it holds ``count``, or whatever it holds at the
    deadline (the test's assertions then say what is missing). A single read stops at the end of
    the partition, which a job still working (a busy machine) has not reached yet."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [decode(r.value) for r in read_topic(settings, topic, max_records=count, idle_timeout_s=5)]
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(1.0)
