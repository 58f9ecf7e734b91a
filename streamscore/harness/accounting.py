"""Accounting by identity: every produced record found as one scored record or one dead letter.

Counting is not enough (one lost dead letter and one duplicated dead letter cancel out), so each
output is tied to the record it came from. The events topic is read back (read_committed) to learn
where each produced record landed; a dead letter names its source partition and offset, which
identifies its record even when its bytes never decoded; a scored record names its event id,
which is the record's key. Then each produced record must be found exactly once, in exactly one
of the two outputs, and in the right one (a malformed record dead-lettered, a valid one scored).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streamscore.foundation.config import Settings

Coordinates = tuple[int, int]  # (partition, offset) in the events topic


@dataclass(frozen=True)
class Identities:
    """What was sent (keys, i.e. event ids, and which of them malformed) and where each landed in the
    events topic (committed records only, by coordinates)."""

    topic: str
    sent: frozenset[str]
    malformed: frozenset[str]
    keys: Mapping[Coordinates, str]

    @property
    def input_duplicates(self) -> int:
        """Sent keys committed more than once to the events topic (the producer's own duplicates)."""
        return len(self.keys) - len(set(self.keys.values()))


def read_identities(settings: Settings, topic: str, sent: Iterable[str], malformed: Iterable[str]) -> Identities:
    """Where each sent key landed in ``topic``."""
    from connectors.kafka_reads import read_topic

    sent = frozenset(sent)
    keys = {}
    for record in read_topic(settings, topic, idle_timeout_s=3):
        key = (record.key or b"").decode("utf-8", "replace")
        if key in sent:
            keys[(record.partition, record.offset)] = key
    return Identities(topic, sent, frozenset(malformed), keys)


@dataclass(frozen=True)
class IdentityAccount:
    """Produced records against outputs, by identity. Every count is of distinct records except
    ``duplicates`` (extra copies) and ``unidentified`` (dead letters that match no produced record)."""

    produced: int
    scored: int
    dead_lettered: int
    missing: int
    duplicates: int
    in_both: int
    misrouted: int  # a malformed record scored, or a valid one dead-lettered
    unidentified: int
    examples: tuple[str, ...] = ()  # a few ids behind the non-zero counts, for the report line

    @property
    def clean(self) -> bool:
        return not (self.missing or self.duplicates or self.in_both or self.misrouted or self.unidentified)


def account(identities: Identities, scored: Mapping[str, object], scored_duplicates: int,
            dead_letters: Iterable[Mapping]) -> IdentityAccount:
    """Tie ``scored`` (event id -> record) and ``dead_letters`` to the produced records."""
    dead, unidentified = Counter(), 0
    for letter in dead_letters:
        key = identities.keys.get((letter["source_partition"], letter["source_offset"])) \
            if letter["source_topic"] == identities.topic else None
        if key is None or (letter.get("event_id") and letter["event_id"] != key):
            unidentified += 1
        else:
            dead[key] += 1
    produced = identities.sent
    scored_ids = produced & set(scored)
    missing = produced - scored_ids - set(dead)
    in_both = scored_ids & set(dead)
    misrouted = (scored_ids & identities.malformed) | (set(dead) - identities.malformed)
    # a record the producer committed twice is rightly scored (or dead-lettered) twice: its extra output copy is
    # the producer's duplicate, counted once, and only output copies beyond the input's are the pipeline's. By
    # totals, not per record: a producer's duplicate scored once beside a pipeline's duplicate of another record
    # counts 1, not 2; either way the account is not clean
    output_extra = scored_duplicates + sum(n - 1 for n in dead.values())
    duplicates = max(identities.input_duplicates, output_extra)
    examples = sorted(missing)[:3] + sorted(in_both)[:3] + sorted(misrouted)[:3]
    return IdentityAccount(len(produced), len(scored_ids), len(dead), len(missing), duplicates, len(in_both),
                           len(misrouted), unidentified + len(set(scored) - produced), tuple(examples))
