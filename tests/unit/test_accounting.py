"""Accounting by identity: counts that a lost and a duplicated dead letter cannot cancel out."""

from __future__ import annotations

from streamscore.harness.accounting import Identities, account

TOPIC = "events"
# a-0..a-3 valid, m-0 and m-1 malformed; where each landed in the events topic
KEYS = {(0, 0): "a-0", (0, 1): "m-0", (1, 0): "a-1", (1, 1): "a-2", (0, 2): "m-1", (1, 2): "a-3"}
IDS = Identities(TOPIC, frozenset(KEYS.values()), frozenset({"m-0", "m-1"}), KEYS)


def _letter(partition: int, offset: int, event_id: str | None = None, topic: str = TOPIC) -> dict:
    return {"source_topic": topic, "source_partition": partition, "source_offset": offset, "event_id": event_id}


SCORED = {k: {} for k in ("a-0", "a-1", "a-2", "a-3")}


def test_every_record_once_is_clean():
    found = account(IDS, SCORED, 0, [_letter(0, 1), _letter(0, 2, "m-1")])
    assert (found.produced, found.scored, found.dead_lettered) == (6, 4, 2)
    assert found.clean, found


def test_a_lost_and_a_duplicated_dead_letter_do_not_cancel_out():
    found = account(IDS, SCORED, 0, [_letter(0, 1), _letter(0, 1)])  # m-0 twice, m-1 never
    assert (found.missing, found.duplicates, found.dead_lettered) == (1, 1, 1)
    assert "m-1" in found.examples and not found.clean


def test_a_record_scored_and_dead_lettered_is_in_both():
    found = account(IDS, SCORED, 0, [_letter(0, 1), _letter(0, 2), _letter(1, 0, "a-1")])
    assert (found.in_both, found.misrouted, found.missing) == (1, 1, 0)


def test_a_malformed_record_that_was_scored_is_misrouted():
    found = account(IDS, {**SCORED, "m-1": {}}, 0, [_letter(0, 1)])
    assert (found.misrouted, found.missing) == (1, 0)


def test_dead_letters_of_unknown_coordinates_or_another_topic_or_a_wrong_id_are_unidentified():
    letters = [_letter(0, 1), _letter(0, 2), _letter(5, 9), _letter(0, 1, topic="other"), _letter(0, 0, "a-9")]
    found = account(IDS, SCORED, 0, letters)
    assert found.unidentified == 3 and found.missing == 0


def test_scored_duplicates_and_producer_duplicates_count():
    twice = Identities(TOPIC, IDS.sent, IDS.malformed, {**KEYS, (1, 3): "a-3"})
    found = account(twice, SCORED, 2, [_letter(0, 1), _letter(0, 2)])
    assert found.duplicates == 2  # a-3 committed twice (scored twice, rightly) and one more scored copy


def test_a_producer_duplicate_scored_once_per_copy_counts_once():
    twice = Identities(TOPIC, IDS.sent, IDS.malformed, {**KEYS, (1, 3): "a-3"})
    assert account(twice, SCORED, 1, [_letter(0, 1), _letter(0, 2)]).duplicates == 1
    assert not account(twice, SCORED, 1, [_letter(0, 1), _letter(0, 2)]).clean


def test_a_producer_duplicate_of_a_malformed_record_dead_lettered_per_copy_counts_once():
    twice = Identities(TOPIC, IDS.sent, IDS.malformed, {**KEYS, (0, 3): "m-1"})
    found = account(twice, SCORED, 0, [_letter(0, 1), _letter(0, 2), _letter(0, 3)])
    assert (found.duplicates, found.missing, found.dead_lettered) == (1, 0, 2)


def test_no_producer_duplicate_leaves_every_output_copy_counted():
    found = account(IDS, SCORED, 2, [_letter(0, 1), _letter(0, 1), _letter(0, 2)])
    assert found.duplicates == 3


def test_a_scored_id_that_was_never_sent_is_unidentified():
    found = account(IDS, {**SCORED, "a-99": {}}, 0, [_letter(0, 1), _letter(0, 2)])
    assert found.unidentified == 1 and found.scored == 4
