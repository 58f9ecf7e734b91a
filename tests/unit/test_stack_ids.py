"""The KRaft cluster id handed to kafka-storage must never look like an option."""
import itertools

from streamscore.stack.services import new_cluster_id


def test_cluster_id_skips_ids_that_start_with_a_dash():
    # 0xF8 as first byte encodes to '-' in URL-safe base64; the generator must draw again.
    draws = itertools.chain([bytes([0xF8]) + bytes(15)], [bytes([0x10]) + bytes(15)])
    cluster_id = new_cluster_id(lambda: next(draws))
    assert not cluster_id.startswith("-")
    assert cluster_id.startswith("E")
    assert len(cluster_id) == 22


def test_cluster_ids_are_random_and_well_formed():
    ids = {new_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
