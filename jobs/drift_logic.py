"""What the drift sidecar does with records and windows, without Flink (unit-testable).

``partials``: a micro-batch of raw ``events`` or ``scored`` payloads -> partial window counts.
``judge``: a closed window's counts + the detector's state -> Avro alerts / triggers + new state.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import NamedTuple

import numpy as np

from drift.window_counts import WindowCounter, counter_for_model
from jobs.decoded_batch import reject_code
from jobs.drift_config import DriftJobConfig
from models.drift_profile import load_profile
from schemas import SerdeError
from streamscore.foundation.vocabulary import ControlKind, RejectCode

SINK_ALERTS, SINK_CONTROL = "alerts", "control"
ACCURACY_FEATURE = "model_accuracy"


class DecodedLabels(NamedTuple):
    """A batch of labels records: the join's columns (event id None: rejected) and each rejection, (row, reason):
    the decoder's reject code, or ``out_of_range`` for a label other than 0 or 1."""

    ids: list
    labels: list
    rejections: list[tuple[int, RejectCode]]

    @property
    def rejected(self) -> Counter:  # by reason
        return Counter(code for _, code in self.rejections)

    def rejection_facts(self, topic: str, partitions, offsets) -> list[dict]:
        """Where each rejected record sits on the topic, and why (a log line's fields; never its bytes)."""
        return [{"topic": topic, "source_partition": int(partitions[i]), "source_offset": int(offsets[i]),
                 "reason_code": code.value} for i, code in self.rejections]


class SidecarLogic:
    def __init__(self, config: DriftJobConfig, counter: WindowCounter, card):
        from jobs.job_wire import build_wire, record_serde

        self.config, self.counter = config, counter
        self.model_name, self.model_version = card.name, card.version
        self._profile_raw = card.drift_profile
        self._detector_template = None
        self.reference_accuracy = card.training.test_accuracy
        self.reference_n = card.training.rows_test
        self.last_verdict = None
        self.last_labelled = None
        wire = build_wire(config.registry, card)  # the model's events and scored records, on their wire
        self._events, self._scored = wire.events, wire.scored
        ids = config.registry
        self._alert = record_serde(ids, "drift_alert", ids.alerts_schema_id)
        self._control = record_serde(ids, "control", ids.control_schema_id)
        self._label = record_serde(ids, "label", ids.labels_schema_id)

    @classmethod
    def for_model(cls, config: DriftJobConfig) -> SidecarLogic:
        from models.registry import load_model

        card = load_model(config.model, root=config.registry_dir).card
        return cls(config, counter_for_model(config.model, config.registry_dir, _drift_settings(config)), card)

    # -- micro-batches -> partial counts -------------------------------------------------------

    def partials(self, source: str, payloads: list[bytes], millis: np.ndarray | None,
                 window_ms: int) -> list[tuple[int, int, bytes]]:
        """(window_start, records counted, counts bytes) per window present in the batch."""
        if source == "events":
            values, stamps = self._decode_events(payloads, millis)
            count = self.counter.count_matrix
        elif not window_ms:
            # Count windows are cut on the events stream; scores are read from another topic at
            # another pace, so in a count window they would belong to other events. Prediction
            # drift is judged in event-time windows, where both streams align on event time.
            return []
        else:
            values, stamps = self._decode_scores(payloads, millis)
            count = self.counter.count_scores
        if not len(values):
            return []
        if not window_ms or stamps is None:
            return [(0, len(values), count(values, stamps).tobytes())]
        starts = stamps - stamps % window_ms
        out = []
        for start in np.unique(starts):
            rows = starts == start
            out.append((int(start), int(rows.sum()), count(values[rows], stamps[rows]).tobytes()))
        return out

    def _decode_events(self, payloads, millis):
        events, keep = [], []
        for i, payload in enumerate(payloads):
            try:
                events.append(self._events.decode(payload))
                keep.append(i)
            except SerdeError:
                continue  # the scoring job dead-letters it; drift watches what the model sees
        matrix, _, valid = self.counter.contract.to_matrix(events)
        rows = np.asarray(keep, dtype=np.int64)[valid]
        return matrix, (np.asarray(millis, dtype=np.int64)[rows] if millis is not None else None)

    def _own_scored(self, payloads):
        """(index, record) of the decodable scored records of this model version."""
        for i, payload in enumerate(payloads):
            try:
                record = self._scored.decode(payload)
            except SerdeError:
                continue
            if record["model_name"] == self.model_name and record["model_version"] == self.model_version:
                yield i, record

    def _decode_scores(self, payloads, millis):
        scores, keep = [], []
        for i, record in self._own_scored(payloads):
            scores.append(record["score"])
            keep.append(i)
        stamps = np.asarray(millis, dtype=np.int64)[keep] if millis is not None else None
        return np.asarray(scores, dtype=np.float64), stamps

    # -- window state ---------------------------------------------------------------------------

    def merge(self, current: bytes | None, partial: bytes) -> bytes:
        incoming = np.frombuffer(partial, dtype=np.int64).copy()
        if current is None:
            return incoming.tobytes()
        return WindowCounter.merge(np.frombuffer(current, dtype=np.int64).copy(), incoming).tobytes()

    @staticmethod
    def events_in(counts: bytes) -> int:
        return int(np.frombuffer(counts, dtype=np.int64)[0])

    # -- closed windows -> alerts and triggers --------------------------------------------------

    def judge(self, window_start: int, counts: bytes, detector_state: bytes | None):
        """Judge one closed window; returns ([(sink, key, payload)], new detector state bytes)."""
        vector = np.frombuffer(counts, dtype=np.int64)
        stats = self.counter.judge_vector(vector)
        detector = self._detector(detector_state)
        verdict = detector.advance(stats)
        self.last_verdict = verdict
        window = self._window_facts(window_start, vector, verdict.window_id)
        tests = {t.feature: t for t in verdict.tests}
        outputs = [(SINK_ALERTS, f"{self.model_name}:{a.feature}".encode(),
                    self._alert_payload(window, a, tests[a.feature])) for a in verdict.alerts]
        if verdict.trigger is not None:
            outputs.append((SINK_CONTROL, self.model_name.encode(), self._trigger_payload(window, verdict.trigger)))
        return outputs, detector.snapshot()

    def _detector(self, state: bytes | None):
        """The detector with its state (episodes, incident, window counter) restored from Flink state."""
        from drift.decision import DriftDetector

        if self._detector_template is None:
            self._detector_template = DriftDetector(load_profile(self._profile_raw), self.counter.judge.settings,
                                                    score_reference=self._profile_raw.get("score") or None)
        self._detector_template.restore(state)
        return self._detector_template

    def _window_facts(self, window_start: int, vector: np.ndarray, sequence: int) -> dict:
        """Window bounds and a deterministic id (time windows: their start; count windows: their
        sequence number, kept in the detector's checkpointed state, so replays reuse it)."""
        first, last = int(vector[2]), int(vector[3])
        if self.config.window_kind == "time":
            start, end, ordinal = window_start, window_start + self.config.window_ms, window_start
        else:
            start, end, ordinal = first, last + 1, sequence
        window_id = f"{self.config.job_name}:{self.config.window_kind}:{ordinal}"
        return {"window_id": window_id, "start": start, "end": end, "size": int(vector[0])}

    def _alert_payload(self, window: dict, alert, test) -> bytes:
        threshold = max(float(test.psi_critical), float(self.counter.judge.settings.tier_bounds[alert.tier - 1]))
        return self._alert.encode({
            "alert_id": f"{window['window_id']}:{alert.feature}",
            "model_name": self.model_name, "model_version": self.model_version,
            "feature": alert.feature, "window_id": window["window_id"],
            "window_start": window["start"], "window_end": window["end"], "window_size": window["size"],
            "statistic": "PSI", "value": float(alert.psi), "p_value": float(alert.p_adjusted),
            "threshold": threshold, "tier": alert.tier.name, "emitted_time": int(time.time() * 1000),
        })

    def _trigger_id(self, window: dict) -> str:
        """Deterministic (a replay emits the same id, so an answered trigger stays answered) and unique across
        runs: the model version and the window's first event time go in with its id, so the window 0 of a job
        for a newly promoted version, or of a job restarted without its state, is not taken for an old one."""
        key = f"{self.model_name}:{self.model_version}:{window['window_id']}:{window['start']}:trigger"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, key))

    def _trigger_payload(self, window: dict, trigger) -> bytes:
        return self._control.encode({
            "message_id": self._trigger_id(window),
            "kind": ControlKind.RETRAIN_TRIGGER.value,
            "model_name": self.model_name, "model_version": self.model_version,
            "tier": trigger.tier.name, "action": trigger.action,
            "reasons": [trigger.rule, *[f"drift in {f}" for f in trigger.features]],
            "window_ids": [window["window_id"]], "payload_json": None,
            "emitted_time": int(time.time() * 1000),
        })

    # -- labelled windows (delayed ground truth joined by event id) --------------------------------

    def decode_scored_ids(self, payloads: list[bytes]) -> tuple[list, list, list]:
        """(event_id or None, score, predicted label) per scored payload of this model."""
        ids, scores, predicted = [None] * len(payloads), [0.0] * len(payloads), [0] * len(payloads)
        for i, record in self._own_scored(payloads):
            ids[i], scores[i], predicted[i] = record["event_id"], record["score"], record["label"]
        return ids, scores, predicted

    def decode_label_ids(self, payloads: list[bytes]) -> DecodedLabels:
        """(event_id or None, true label) per labels payload, and the records rejected by reason: one that
        does not decode as a label, or whose label is not a class (0 or 1)."""
        ids, labels, rejections = [None] * len(payloads), [0] * len(payloads), []
        for i, payload in enumerate(payloads):
            try:
                record = self._label.decode(payload)
            except SerdeError as exc:  # empty, bad_magic, unknown_schema_id, wrong_schema, ... or undecodable
                rejections.append((i, reject_code(getattr(exc, "reason", None))))
                continue
            if record["label"] in (0, 1):
                ids[i], labels[i] = record["event_id"], record["label"]
            else:
                rejections.append((i, RejectCode.OUT_OF_RANGE))
        return DecodedLabels(ids, labels, rejections)

    @staticmethod
    def label_partials(joined: tuple, millis: np.ndarray, cutter) -> list[tuple[int, int, bytes]]:
        """Joined (scores, predicted, actual) rows with their label times -> (bucket, rows, counts bytes)
        per bucket of label time present (``cutter``: a :class:`jobs.label_windows.LabelWindowCutter`)."""
        from drift.labelled import label_counts

        scores, predicted, actual = (np.asarray(column) for column in joined)
        buckets = cutter.buckets(millis)
        out = []
        for bucket in np.unique(buckets):
            rows = buckets == bucket
            counts = label_counts(scores[rows], predicted[rows], actual[rows])
            out.append((int(bucket), int(counts[0]), counts.tobytes()))
        return out

    @staticmethod
    def merge_labelled(current: bytes | None, partial: bytes) -> bytes:
        from drift.labelled import merge

        previous = None if current is None else np.frombuffer(current, dtype=np.int64)
        return merge(previous, np.frombuffer(partial, dtype=np.int64)).tobytes()

    def judge_labelled(self, closed, state: bytes | None):
        """A closed labelled window (a :class:`jobs.label_windows.LabelWindow`) -> ([(sink, key, payload)],
        new state); alerts once per episode and tier. Its bounds are label times: they go into the alert
        and, with its sequence, into the trigger's id, so a job restarted without its state makes new ids."""
        from drift.labelled import LabelledEpisodes

        episodes = LabelledEpisodes(self.reference_accuracy, self.reference_n, alpha=self.config.alpha,
                                    confirm_k=self.config.confirm_k, confirm_m=self.config.confirm_m)
        episodes.restore(state)
        decision = episodes.decide(closed.counts)
        self.last_labelled = decision
        window = {"window_id": f"{self.config.job_name}:labels:{decision.sequence}", "start": closed.start,
                  "end": closed.end, "size": decision.summary.n}
        outputs = []
        if decision.alert:
            outputs.append((SINK_ALERTS, f"{self.model_name}:{ACCURACY_FEATURE}".encode(),
                            self._accuracy_alert(window, decision)))
        if decision.trigger is not None:
            outputs.append((SINK_CONTROL, self.model_name.encode(), self._accuracy_trigger(window, decision)))
        return outputs, episodes.snapshot()

    def _accuracy_alert(self, window: dict, decision) -> bytes:
        verdict = decision.verdict
        return self._alert.encode({
            "alert_id": f"{window['window_id']}:{ACCURACY_FEATURE}", "model_name": self.model_name,
            "model_version": self.model_version, "feature": ACCURACY_FEATURE, "window_id": window["window_id"],
            "window_start": window["start"], "window_end": window["end"], "window_size": window["size"],
            "statistic": "ACCURACY", "value": float(verdict.observed), "p_value": float(verdict.p_value),
            "threshold": float(verdict.reference), "tier": verdict.tier.name, "emitted_time": int(time.time() * 1000),
        })

    def _accuracy_trigger(self, window: dict, decision) -> bytes:
        verdict, summary = decision.verdict, decision.summary
        auc = "n/a" if summary.auc is None else f"{summary.auc:.3f}"
        reason = (f"accuracy {verdict.observed:.3f} vs reference {verdict.reference:.3f} "
                  f"({verdict.drop * 100:.1f} points, p {verdict.p_value:.1e}) over {summary.n} labelled events; "
                  f"AUC {auc}")
        return self._control.encode({
            "message_id": self._trigger_id(window),
            "kind": ControlKind.RETRAIN_TRIGGER.value,
            "model_name": self.model_name, "model_version": self.model_version,
            "tier": decision.trigger.name, "action": decision.trigger.action, "reasons": [reason],
            "window_ids": [window["window_id"]], "payload_json": None, "emitted_time": int(time.time() * 1000),
        })


def _drift_settings(config: DriftJobConfig):
    from drift.settings import DriftSettings

    return DriftSettings(window_size=config.window_events, alpha=config.alpha, confirm_k=config.confirm_k,
                         confirm_m=config.confirm_m, cooldown_windows=config.cooldown_windows)
