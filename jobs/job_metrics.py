"""Flink metric groups for the jobs: counters, and Prometheus-style histograms built from counters.

Flink's Prometheus reporter exports Flink histograms as *summaries* (quantiles per process,
which cannot be aggregated), and Python metrics are integers. So a histogram here is a set
of cumulative bucket counters in a key/value group ``le`` (the reporter turns the value into
the ``le`` label) plus ``_count`` and ``_sum`` counters: exactly what ``histogram_quantile()``
needs, summed across subtasks. Names and buckets are listed in ``docs/metrics.md``.

Only duck-typed metric groups are used (``add_group``, ``counter``, ``gauge``), so this
module needs no pyflink import and unit tests pass a recording fake.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from streamscore.foundation.vocabulary import DeadLetterStage, DriftTier, RejectCode

BATCH_SIZE_BUCKETS = (1, 8, 32, 64, 128, 256, 512, 1024, 4096)
INFERENCE_US_BUCKETS = (250, 500, 1000, 2000, 5000, 10_000, 25_000, 50_000, 100_000, 250_000)
LATENCY_MS_BUCKETS = (5, 10, 25, 50, 100, 250, 500, 750, 1000, 1500, 2500, 5000, 10_000, 30_000)
SCORE_MILLI_BUCKETS = tuple(range(100, 1001, 100))


def bucket_label(bound: float) -> str:
    """The ``le`` label of a bound: integers only, because Flink's reporter turns '.' and '+' in
    label values into '_' ("+Inf" arrives as "_Inf"; Prometheus relabels it back, see docs/metrics.md)."""
    if bound == float("inf"):
        return "+Inf"
    if bound != int(bound):
        raise ValueError(f"histogram bounds must be integers (choose the unit), got {bound}")
    return str(int(bound))


def cumulative_counts(values: Sequence[float] | np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """How many ``values`` are <= each bound, and in total (the ``+Inf`` bucket), cumulative like Prometheus."""
    array = np.asarray(values, dtype=np.float64)
    per_bucket = np.bincount(np.searchsorted(np.asarray(bounds, dtype=np.float64), array, side="left"),
                             minlength=len(bounds) + 1)
    return np.cumsum(per_bucket)


class BucketHistogram:
    """A Prometheus-compatible histogram made of Flink counters: ``le_<name>_bucket``, ``<name>_count``, sum."""

    def __init__(self, group, name: str, bounds: Sequence[float], *, sum_scale: float = 1.0,
                 sum_name: str | None = None):
        self.bounds = tuple(float(b) for b in bounds)
        labels = [bucket_label(b) for b in (*self.bounds, float("inf"))]
        self.buckets = [group.add_group("le", label).counter(f"{name}_bucket") for label in labels]
        self.count = group.counter(f"{name}_count")
        self.sum = group.counter(sum_name or f"{name}_sum")
        self.sum_scale = sum_scale

    def observe(self, values: Sequence[float] | np.ndarray) -> None:
        if len(values) == 0:
            return
        counts = cumulative_counts(values, self.bounds)
        for counter, count in zip(self.buckets, counts.tolist()):
            if count:
                counter.inc(count)
        self.count.inc(int(counts[-1]))
        self.sum.inc(round(float(np.sum(values)) * self.sum_scale))


def low_confidence_count(scores: Iterable[float], threshold: float, band: float) -> int:
    """Scores within ``band`` of the decision threshold: the model is unsure about these."""
    array = np.fromiter(scores, dtype=np.float64)
    return int(np.count_nonzero(np.abs(array - threshold) <= band))


class ScoringMetrics:
    """Every metric of the scoring step, under ``model=<name>``/``version=<version>`` groups."""

    def __init__(self, root_group, model_name: str, model_version: str, threshold: float,
                 low_confidence_band: float = 0.05, provider: str | None = None):
        group = root_group.add_group("model", model_name).add_group("version", model_version)
        # an info-style series: which execution provider this worker's session runs on (counted with
        # the first batch: Python metrics are reported per bundle, an update in open() is lost)
        self._provider_session = group.add_group("provider", provider).counter("model_sessions") if provider else None
        self.threshold, self.band = threshold, low_confidence_band
        self.events_in = group.counter("events_in")
        self.events_scored = group.counter("events_scored")
        self.dead_by_stage = {stage: group.add_group("stage", stage).counter("events_dead_lettered")
                              for stage in DeadLetterStage}
        self._reason_group = group
        self.dead_by_reason = {code: group.add_group("reason", code).counter("events_dead_lettered")
                               for code in RejectCode}
        self.model_calls = group.counter("model_calls")
        self.low_confidence = group.counter("low_confidence")
        self.cache_lookups = group.counter("cache_lookups")
        self.cache_hits = group.counter("cache_hits")
        self.cache_errors = group.counter("cache_errors")
        self.batch_size = BucketHistogram(group, "batch_size", BATCH_SIZE_BUCKETS)
        self.inference_us = BucketHistogram(group, "inference_us", INFERENCE_US_BUCKETS)
        self.latency_ms = BucketHistogram(group, "latency_ms", LATENCY_MS_BUCKETS)
        self.score_milli = BucketHistogram(group, "score_milli", SCORE_MILLI_BUCKETS)

    def record_batch(self, result, batch_rows: int) -> None:
        """Account one Arrow batch (a :class:`jobs.batch_scorer.BatchResult`)."""
        if self._provider_session is not None:
            self._provider_session.inc(1)
            self._provider_session = None
        self.events_in.inc(batch_rows)
        self.events_scored.inc(result.scored)
        for note in result.dead_letters:
            self.dead_by_stage[note.stage].inc(1)
            self._reason_counter(note.reason_code).inc(1)
        self.model_calls.inc(result.model_calls)
        if result.call_sizes:
            self.batch_size.observe(result.call_sizes)
            per_call_us = result.inference_seconds * 1e6 / len(result.call_sizes)
            self.inference_us.observe([per_call_us] * len(result.call_sizes))
        self.latency_ms.observe(np.maximum(result.latencies_ms, 0))  # an event time ahead of this clock: 0, so
        # the sum, a counter, never goes down (Prometheus would read a reset)
        self.score_milli.observe(np.asarray(result.scores, dtype=np.float64) * 1000.0)
        self.low_confidence.inc(low_confidence_count(result.scores, self.threshold, self.band))
        if result.cache_lookups or result.cache_errors:
            self.cache_lookups.inc(result.cache_lookups)
            self.cache_hits.inc(result.cache_hits)
            self.cache_errors.inc(result.cache_errors)

    def _reason_counter(self, code: str):
        if code not in self.dead_by_reason:
            self.dead_by_reason[code] = self._reason_group.add_group("reason", code).counter("events_dead_lettered")
        return self.dead_by_reason[code]


SCORE_DIFF_MILLI_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000)


class LifecycleMetrics:
    """Per model version (promotion, canary, shadow): ``model=<name>/lifecycle/version=<v>/...``.

    Groups are made on first use, inside ``eval`` (a metric first updated in ``open()`` is lost);
    versions are few, so the label cardinality stays small."""

    def __init__(self, root_group, model_name: str):
        self._group = root_group.add_group("model", model_name).add_group("lifecycle")
        self._roles: dict[tuple[str, str], tuple] = {}
        self._shadows: dict[str, tuple] = {}
        self.shadow_failures = self._group.counter("shadow_failures")

    def _role(self, version: str, role: str):
        key = (version, role)
        if key not in self._roles:
            group = self._group.add_group("version", version).add_group("role", role)
            self._roles[key] = (group.counter("events_scored"), BucketHistogram(group, "inference_us",
                                                                                INFERENCE_US_BUCKETS))
        return self._roles[key]

    def _shadow(self, version: str):
        if version not in self._shadows:
            group = self._group.add_group("version", version).add_group("shadow")
            self._shadows[version] = (group.counter("label_agreements"), group.counter("label_disagreements"),
                                      group.counter("bad_scores"),
                                      BucketHistogram(group, "score_diff_milli", SCORE_DIFF_MILLI_BUCKETS))
        return self._shadows[version]

    def record_batch(self, result) -> None:
        """Account one :class:`jobs.batch_scorer.BatchResult`: champion versions, challengers, failures."""
        for version in result.version_scored.keys() | result.version_call_us.keys():  # cache hits: no call
            scored, inference_us = self._role(version, "champion")
            scored.inc(result.version_scored.get(version, 0))
            inference_us.observe(result.version_call_us.get(version, ()))
        for version, stats in result.shadow.items():
            scored, inference_us = self._role(version, "shadow")
            scored.inc(stats.records)
            inference_us.observe(stats.call_us)
            agree, disagree, bad, diff = self._shadow(version)
            agree.inc(stats.agreements)
            disagree.inc(stats.records - stats.agreements)
            bad.inc(stats.bad_scores)
            diff.observe(stats.score_diff_milli)
        if result.shadow_errors:
            self.shadow_failures.inc(result.shadow_errors)


def drift_group(root_group, model_name: str, model_version: str):
    """The drift sidecar's metric group: ``model``/``version``/``drift``."""
    return root_group.add_group("model", model_name).add_group("version", model_version).add_group("drift")


def labels_group(root_group, model_name: str, model_version: str):
    """The drift sidecar's labels metrics: ``model``/``version``/``drift``/``labels``."""
    return drift_group(root_group, model_name, model_version).add_group("labels")


class SidecarMetrics:
    """The drift sidecar's metrics under ``model``/``version``/``drift`` groups (see docs/metrics.md).

    Gauges read the last closed window's values; Python gauges are integers, hence x1000."""

    TIERS = tuple(tier.value for tier in DriftTier if tier is not DriftTier.NONE)

    def __init__(self, root_group, model_name: str, model_version: str, features: Sequence[str]):
        group = drift_group(root_group, model_name, model_version)
        self.psi_milli: dict[str, int] = dict.fromkeys(features, 0)
        self.ks_milli: dict[str, int] = dict.fromkeys(features, 0)
        for feature in features:
            feature_group = group.add_group("feature", feature)
            feature_group.gauge("psi_milli", lambda f=feature: self.psi_milli[f])
            feature_group.gauge("ks_milli", lambda f=feature: self.ks_milli[f])
        self.windows_closed = group.counter("windows_closed")
        self.late_partials = group.counter("late_partials_dropped")  # counts for a window already judged
        self.alerts = {tier: group.add_group("tier", tier).counter("alerts") for tier in self.TIERS}
        self.triggers = {tier: group.add_group("tier", tier).counter("triggers") for tier in self.TIERS}
        labels = labels_group(root_group, model_name, model_version)
        self.accuracy_milli, self.auc_milli = 0, 0
        labels.gauge("accuracy_milli", lambda: self.accuracy_milli)
        labels.gauge("auc_milli", lambda: self.auc_milli)
        self.labelled_windows = labels.counter("windows_closed")
        self.late_labels = labels.counter("late")  # joined labels whose bucket had closed: into the open window
        self.label_flushes = labels.counter("idle_flushes")  # open buckets added while the watermark stood still

    def record_window(self, verdict) -> None:
        """A judged feature window (a :class:`drift.decision.WindowVerdict`)."""
        self.windows_closed.inc(1)
        for test in verdict.tests:
            if test.feature in self.psi_milli:
                self.psi_milli[test.feature] = round(float(test.psi) * 1000)
                self.ks_milli[test.feature] = round(float(test.statistic) * 1000) if test.test == "KS" else 0
        for alert in verdict.alerts:
            self.alerts[alert.tier.name].inc(1)
        if verdict.trigger is not None:
            self.triggers[verdict.trigger.tier.name].inc(1)

    def record_labelled(self, decision) -> None:
        """A judged labelled window (a :class:`drift.labelled.LabelledDecision`)."""
        self.labelled_windows.inc(1)
        self.accuracy_milli = round(decision.summary.accuracy * 1000)
        self.auc_milli = round((decision.summary.auc or 0.0) * 1000)
        if decision.alert:
            self.alerts[decision.verdict.tier.name].inc(1)
        if decision.trigger is not None:
            self.triggers[decision.trigger.name].inc(1)


class LabelReadMetrics:
    """The labels' accounting where they are decoded (docs/metrics.md): every labels record read, and those
    rejected, by reason. The join's own operator counts its joined rows (``labels_joined``), so ``read - rejected
    - joined`` are the labels not (yet) joined: waiting for their scored record, later than ``label_wait_ms``
    after it, or for an event this model did not score (another model's, on a shared labels topic)."""

    def __init__(self, root_group, model_name: str, model_version: str):
        self._labels = labels_group(root_group, model_name, model_version)
        self.read = self._labels.counter("read")
        self.rejected: dict[str, object] = {}

    def record(self, records: int, rejected: dict[str, int]) -> None:
        self.read.inc(records)
        for code, count in rejected.items():
            if code not in self.rejected:  # registered on first use, as a Python counter shows only once it moves
                self.rejected[code] = self._labels.add_group("reason", code).counter("rejected")
            self.rejected[code].inc(count)


def labels_joined_counter(root_group, model_name: str, model_version: str):
    """The rows the sidecar's label join put out (see :class:`LabelReadMetrics`): one a label, unless a scored
    record came twice (an at-least-once scoring job's replay), which joins its label twice."""
    return labels_group(root_group, model_name, model_version).counter("joined")
