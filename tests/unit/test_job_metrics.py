"""Prometheus-style histograms made of counters, and the scoring step's accounting into them."""
import numpy as np
import pytest

from jobs.batch_scorer import BatchResult, DeadLetterNote
from jobs.job_metrics import (
    BucketHistogram,
    ScoringMetrics,
    bucket_label,
    cumulative_counts,
    low_confidence_count,
)
from streamscore.foundation.vocabulary import RejectCode


class Counter:
    def __init__(self):
        self.value = 0

    def inc(self, n=1):
        self.value += n


class Group:
    """Records every counter by its full path, as Flink's reporter would name it."""

    def __init__(self, registry=None, path=()):
        self.registry = registry if registry is not None else {}
        self.path = path

    def add_group(self, key, value=None):
        return Group(self.registry, self.path + ((key, value),))

    def counter(self, name):
        return self.registry.setdefault((self.path, name), Counter())

    def value(self, name, **labels):
        matches = [c.value for (path, n), c in self.registry.items()
                   if n == name and all((k, v) in path for k, v in labels.items())]
        assert len(matches) == 1, (name, labels, matches)
        return matches[0]


def test_cumulative_counts_match_prometheus_semantics():
    # le is inclusive: 8 falls into le=8; 9 into le=32; 5000 only into +Inf.
    counts = cumulative_counts([1, 8, 9, 32, 5000], (1, 8, 32))
    assert counts.tolist() == [1, 2, 4, 5]


def test_bucket_labels_are_integers_because_flink_mangles_dots():
    assert [bucket_label(b) for b in (1, 250.0, float("inf"))] == ["1", "250", "+Inf"]
    with pytest.raises(ValueError, match="integers"):
        bucket_label(0.25)


def test_histogram_buckets_count_and_sum_add_up_over_observations():
    group = Group()
    histogram = BucketHistogram(group, "latency_ms", (10, 100))
    histogram.observe([5, 50, 500])
    histogram.observe(np.array([10, 11]))
    histogram.observe([])
    assert [group.value("latency_ms_bucket", le=le) for le in ("10", "100", "+Inf")] == [2, 4, 5]
    assert group.value("latency_ms_count") == 5
    assert group.value("latency_ms_sum") == 576


def test_low_confidence_counts_scores_near_the_threshold():
    assert low_confidence_count([0.1, 0.18, 0.2, 0.25, 0.26, 0.9], threshold=0.2, band=0.05) == 3


def _result(scores, latencies, notes, call_sizes):
    n = len(scores) + len(notes)
    result = BatchResult([True] * len(scores) + [False] * len(notes), [b""] * n, [b""] * n, "b1",
                         call_sizes=list(call_sizes), inference_seconds=0.004)
    result.scores, result.latencies_ms, result.dead_letters = list(scores), list(latencies), list(notes)
    return result


def test_scoring_metrics_account_a_batch_by_stage_reason_and_histograms():
    group = Group()
    metrics = ScoringMetrics(group, "fraud", "1.0.0", threshold=0.5, low_confidence_band=0.05,
                             provider="CPUExecutionProvider")
    notes = [DeadLetterNote("DECODE", "truncated", None, None, 0, 7),
             DeadLetterNote("CONTRACT", "not_finite", "e9", "c9", 1, 3)]
    metrics.record_batch(_result([0.1, 0.52, 0.97], [20, 300, 800], notes, [3]), batch_rows=5)
    assert group.value("events_in", model="fraud", version="1.0.0") == 5
    assert group.value("events_scored") == 3
    assert group.value("events_dead_lettered", stage="DECODE") == 1
    assert group.value("events_dead_lettered", reason="not_finite") == 1
    assert group.value("events_dead_lettered", reason="truncated") == 1
    assert group.value("model_calls") == 1
    assert group.value("batch_size_count") == 1 and group.value("batch_size_bucket", le="8") == 1
    assert group.value("batch_size_bucket", le="1") == 0
    assert group.value("inference_us_count") == 1 and group.value("inference_us_sum") == 4000
    assert group.value("latency_ms_bucket", le="500") == 2 and group.value("latency_ms_count") == 3
    assert group.value("score_milli_bucket", le="100") == 1 and group.value("score_milli_count") == 3
    assert group.value("low_confidence") == 1
    metrics.record_batch(_result([0.3], [1], [], [1]), batch_rows=1)
    assert group.value("model_sessions", provider="CPUExecutionProvider") == 1  # once per session


def test_row_by_row_fallback_counts_every_model_call_in_the_batch_size_histogram():
    group = Group()
    metrics = ScoringMetrics(group, "fraud", "1.0.0", threshold=0.5)
    metrics.record_batch(_result([0.1, 0.2], [1, 1], [], [2, 1, 1]), batch_rows=2)
    assert group.value("model_calls") == 3 == group.value("batch_size_count")
    assert group.value("batch_size_bucket", le="1") == 2


def _without(event: dict, field: str) -> dict:
    return {k: v for k, v in event.items() if k != field}


@pytest.mark.parametrize("breaks,code", [
    (lambda e: {**e, "amount": float("nan")}, "not_finite"),
    (lambda e: {**e, "distance_from_home_km": float("-inf")}, "not_finite"),
    (lambda e: {**e, "hour_of_day": 42}, "out_of_range"),
    (lambda e: {**e, "country": "Finland"}, "unknown_category"),
    (lambda e: _without(e, "amount"), "missing_field"),
    (lambda e: {**e, "amount": "12.5"}, "wrong_type"),
    (lambda e: list(e.values()), "contract_other"),
])
def test_contract_rejects_carry_the_code_of_their_first_diagnosis(breaks, code):
    from models.demo_data import generate_events
    from models.registry import load_model

    event = generate_events(1, seed=5)[0]
    [(row, reason)] = load_model("fraud:1.0.0").contract.to_matrix([breaks(event)]).rejects
    assert row == 0 and reason.code == code and code in set(RejectCode)


class _Failing:
    def __init__(self, outcome):
        self.outcome = outcome

    def predict_batch(self, features):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return np.full(len(features), self.outcome)


@pytest.mark.parametrize("outcome,code", [(float("nan"), "non_finite_score"),
                                          (RuntimeError("boom"), "inference_failed")])
def test_inference_dead_letters_carry_the_code_of_the_failed_call(outcome, code):
    from jobs.batch_scorer import BatchScorer, ScorerSetup
    from models.demo_data import generate_events
    from models.registry import load_model
    from schemas import serde_for

    model = load_model("fraud:1.0.0")
    scorer = BatchScorer(model, _Failing(outcome), ScorerSetup(job="t", source_topic="events"))
    payloads = [serde_for("event").encode(e) for e in generate_events(3, seed=9)]
    result = scorer.score(payloads, [0] * 3, [0, 1, 2])
    assert [(n.stage, n.reason_code) for n in result.dead_letters] == [("INFERENCE", code)] * 3


EXPECTED_CODES = {"truncated": "truncated", "empty_body": "truncated", "garbage": "bad_marker",
                  "foreign_fingerprint": "unknown_fingerprint", "trailing_bytes": "trailing_bytes",
                  "nan": "not_finite", "infinite": "not_finite", "out_of_range": "out_of_range",
                  "unknown_category": "unknown_category"}


def test_every_malformed_kind_dead_letters_with_its_reason_code_and_correlation_id():
    from jobs.batch_scorer import BatchScorer, ScorerSetup
    from models.demo_data import generate_events
    from models.registry import load_model
    from models.runtime import OnnxScorer
    from schemas.malformed import MALFORMED_KINDS, malformed_variant

    model = load_model("fraud:1.0.0")
    scorer = BatchScorer(model, OnnxScorer(model), ScorerSetup(job="t", source_topic="events"))
    events = generate_events(len(MALFORMED_KINDS), seed=3)
    bad = [malformed_variant(kind, event) for kind, event in zip(MALFORMED_KINDS, events)]
    result = scorer.score([b.payload for b in bad], [0] * len(bad), list(range(len(bad))))
    assert result.scored == 0 and len(result.dead_letters) == len(bad)
    by_offset = {note.offset: note for note in result.dead_letters}
    for offset, (kind, case) in enumerate(zip(MALFORMED_KINDS, bad)):
        note = by_offset[offset]
        assert (note.stage, note.reason_code) == (case.stage, EXPECTED_CODES[kind]), kind
        if case.event_id is not None:  # decodable: the correlation id follows the record into logs
            assert note.correlation_id == events[offset]["correlation_id"]


def test_a_parallel_jobs_counters_are_summed_over_its_subtasks_and_gauges_give_the_largest():
    from jobs.flink_metrics import aggregate

    def series(name, subtask, value, **group):
        return name, {"job_name": "j", "subtask_index": str(subtask), **group}, value

    values = aggregate([series("events_scored", 0, 70.0), series("events_scored", 1, 30.0),
                        series("events_dead_lettered", 0, 2.0, stage="DECODE"),
                        series("events_dead_lettered", 1, 1.0, stage="DECODE"),
                        series("events_dead_lettered", 1, 4.0, stage="CONTRACT"),
                        series("psi_milli", 0, 120.0, feature="amount"), series("psi_milli", 1, 0.0, feature="amount")])
    assert values["events_scored"] == {"": 100.0}
    assert values["events_dead_lettered"] == {"DECODE": 3.0, "CONTRACT": 4.0}
    assert values["psi_milli"] == {"amount": 120.0}


class _NamingGroup:
    """Names every metric as Flink's Prometheus reporter does: the operator scope, then the group keys
    (a key-value group's value becomes a label), then the metric's own name."""

    def __init__(self, names, keys=()):
        self.names, self.keys = names, keys

    def add_group(self, key, value=None):
        return _NamingGroup(self.names, (*self.keys, key))

    def _name(self, name):
        self.names.add("_".join(("flink_taskmanager_job_task_operator", *self.keys, name)))

    def counter(self, name):
        self._name(name)
        return Counter()

    def gauge(self, name, read):
        self._name(name)


def test_every_metric_the_jobs_register_is_documented():
    from types import SimpleNamespace

    from metric_contract import documented_metrics

    from jobs.job_metrics import LabelReadMetrics, LifecycleMetrics, SidecarMetrics, labels_joined_counter

    names: set[str] = set()
    root = _NamingGroup(names)
    ScoringMetrics(root, "fraud", "1.0.0", 0.5, provider="CPUExecutionProvider")
    lifecycle = LifecycleMetrics(root, "fraud")
    shadow = SimpleNamespace(records=2, call_us=[10], agreements=1, bad_scores=0, score_diff_milli=[3, 5])
    lifecycle.record_batch(SimpleNamespace(version_call_us={"1.0.0": [10]}, version_scored={"1.0.0": 2},
                                           shadow={"1.1.0": shadow}, shadow_errors=0))
    SidecarMetrics(root, "fraud", "1.0.0", ["amount"])
    LabelReadMetrics(root, "fraud", "1.0.0").record(1, {RejectCode.EMPTY: 1})
    labels_joined_counter(root, "fraud", "1.0.0")
    assert len(names) > 40
    assert names - documented_metrics() == set()  # docs/metrics.md names each one


def test_labels_read_are_counted_with_their_rejections_by_reason_and_the_joined_apart():
    from jobs.job_metrics import LabelReadMetrics, labels_joined_counter

    root = Group()
    reading = LabelReadMetrics(root, "fraud", "1.0.0")
    reading.record(10, {RejectCode.UNDECODABLE: 2})
    reading.record(5, {RejectCode.OUT_OF_RANGE: 1, RejectCode.UNDECODABLE: 1})
    labels_joined_counter(root, "fraud", "1.0.0").inc(9)
    assert root.value("read", model="fraud", drift=None, labels=None) == 15
    assert root.value("rejected", reason=RejectCode.UNDECODABLE) == 3
    assert root.value("rejected", reason=RejectCode.OUT_OF_RANGE) == 1
    assert root.value("joined", labels=None) == 9  # read - rejected - joined = 2 labels not (yet) joined


def test_a_batch_answered_from_the_cache_counts_its_scored_rows_and_latency_never_lowers_the_sum():
    from types import SimpleNamespace

    from jobs.job_metrics import LifecycleMetrics

    root = Group()
    lifecycle = LifecycleMetrics(root, "fraud")
    lifecycle.record_batch(SimpleNamespace(version_call_us={}, version_scored={"1.1.0": 5}, shadow={},
                                           shadow_errors=0))  # every row a cache hit: no model call
    assert root.value("events_scored", version="1.1.0", role="champion") == 5
    metrics = ScoringMetrics(root, "fraud", "1.0.0", 0.5, provider="CPUExecutionProvider")
    batch = SimpleNamespace(scored=2, dead_letters=[], model_calls=0, call_sizes=[], inference_seconds=0.0,
                            latencies_ms=[-40, 10], scores=[0.1, 0.2], cache_lookups=0, cache_hits=0, cache_errors=0)
    metrics.record_batch(batch, 2)  # one event time 40 ms ahead of the TaskManager's clock
    assert root.value("latency_ms_sum", version="1.0.0") == 10
