"""The split of a latency phase at the Python step: each part and the batches' rhythm, from scored records."""

from __future__ import annotations

from benchmarks.latency_split import ScoredSample, split


def test_each_latency_splits_at_its_batch_start():
    samples = [ScoredSample(intended_ms=1000.0, scored_ms=1030, batch_id="a", visible_ms=1050.0),
               ScoredSample(intended_ms=1010.0, scored_ms=1030, batch_id="a", visible_ms=1052.0),
               ScoredSample(intended_ms=1040.0, scored_ms=1070, batch_id="b", visible_ms=1100.0)]
    got = split(samples)
    assert got["p50_to_step_ms"] == 30.0  # 30, 20, 30
    assert got["p50_after_step_ms"] == 22.0  # 20, 22, 30
    assert got["p99_after_step_ms"] > 29.0
    assert got["step_batches"] == 2 and got["p50_batch_rows"] == 1.5
    assert got["p50_batch_cycle_ms"] == 40.0  # batch b started 40 ms after batch a


def test_the_cycle_is_counted_in_start_order_whatever_the_arrival_order():
    samples = [ScoredSample(0.0, 300, "c", 310.0), ScoredSample(0.0, 100, "a", 400.0),
               ScoredSample(0.0, 150, "b", 320.0)]
    got = split(samples)
    assert got["p50_batch_cycle_ms"] == 100.0  # 50 and 150
    assert got["p90_batch_cycle_ms"] == 140.0


def test_one_batch_has_no_cycle_and_no_samples_no_split():
    one = split([ScoredSample(0.0, 10, "a", 20.0)])
    assert one["step_batches"] == 1 and "p50_batch_cycle_ms" not in one
    assert split([]) == {}


def test_the_cycle_is_left_out_where_several_workers_interleave_their_batches():
    samples = [ScoredSample(0.0, 100, "a", 150.0), ScoredSample(0.0, 110, "b", 160.0)]
    got = split(samples, with_cycle=False)
    assert got["step_batches"] == 2 and got["p50_to_step_ms"] == 105.0
    assert "p50_batch_cycle_ms" not in got and "p90_batch_cycle_ms" not in got


def test_a_record_that_cannot_be_read_back_leaves_the_split_out_not_the_run(monkeypatch):
    from benchmarks import measure
    from benchmarks.sink import Arrival
    from streamscore.foundation.errors import SerdeError

    class Unreadable:
        def decode(self, value):
            raise SerdeError("scored: body is not valid Avro")

    monkeypatch.setattr("connectors.schema_registry.reader_of", lambda settings, name: Unreadable())

    class Settings:
        schema_registry = None

    arrival = Arrival(1.0, "out", b"k", None, 1000, kept_value=b"\x00garbage")
    got = measure._step_split(Settings(), [(arrival, 900.0)], "out", parallelism=1)
    assert got == {"step_split_error": "scored: body is not valid Avro"}
