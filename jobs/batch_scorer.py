"""One micro-batch through the scoring path: decode -> contract -> ONNX -> scored record or dead letter.

Pure Python (no pyflink): the Flink job calls :meth:`BatchScorer.score` once per Arrow batch,
and unit tests call it directly. Every input row yields exactly one output row, either a
scored record or a dead letter: inputs = scored + dead-lettered, always.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from connectors.dead_letter import dead_letter_key, dead_letter_record
from jobs.batch import Batch, BatchResult, DeadLetterNote, PrimaryScores, ValidRows, scored_columns, scored_record
from jobs.decoded_batch import DecodedColumns, reject_code, valid_rows
from jobs.job_wire import JobWire, RegistryWire, build_wire
from jobs.model_pool import ModelPool, VersionModel
from jobs.model_router import ModelRouter, RoutePlan, version_groups
from models.registry import LoadedModel
from schemas import SerdeError
from streamscore.foundation.errors import ModelError
from streamscore.foundation.vocabulary import DeadLetterStage, Reason, RejectCode


def _decode_code(exc: SerdeError) -> RejectCode:
    """The code a serde error class carries, where it is a dead-letter code (else: undecodable)."""
    return reject_code(getattr(exc, "reason", None))


class Predictor:
    """What the batch scorer needs of a model runtime (``models.runtime.OnnxScorer`` is one)."""

    def predict_batch(self, features: np.ndarray) -> np.ndarray:  # pragma: no cover - protocol
        raise NotImplementedError


@dataclass(frozen=True)
class ScorerSetup:
    """The job around a :class:`BatchScorer`: who scores (``job``, for batch ids and dead letters), what it
    reads (``source_topic``) and writes (``wire``; None: the single-object wire), and what it may consult:
    the prediction cache, the model router (versions by event time; None: this model only), the loader of
    the model's other versions, and the clock (epoch ms; None: the wall clock)."""

    job: str
    source_topic: str
    wire: JobWire | None = None
    cache: object | None = None  # a connectors.prediction_cache.PredictionCache
    router: ModelRouter | None = None
    loader: Callable[[str], VersionModel] | None = None
    clock_ms: Callable[[], int] | None = None


class BatchScorer:
    def __init__(self, model: LoadedModel, predictor: Predictor, setup: ScorerSetup):
        self.card = model.card
        self.contract = model.contract
        self.predictor = predictor
        self.job = setup.job
        self.source_topic = setup.source_topic
        self.threshold = float(model.card.outputs.threshold)
        self.wire = setup.wire or build_wire(RegistryWire(), model.card)  # default: the single-object wire
        self._clock_ms = setup.clock_ms or (lambda: int(time.time() * 1000))
        self.cache = setup.cache
        self.router = setup.router
        self.pool = ModelPool(VersionModel(model.card, predictor, setup.cache), setup.loader or self._no_other_versions)

    def _no_other_versions(self, version: str) -> VersionModel:
        raise ModelError(f"this scorer has no registry loader for version {version!r}")

    def score(self, payloads: Sequence[bytes], partitions: Sequence[int], offsets: Sequence[int],
              timestamps: Sequence[int] | None = None, decoded: DecodedColumns | None = None) -> BatchResult:
        """Score one batch. ``decoded``: the records as the JVM decoded them (``jobs.decoded_batch``); without
        it, the payloads are decoded here."""
        n = len(payloads)
        batch_id = f"{self.job}:{partitions[0]}:{offsets[0]}:{n}" if n else f"{self.job}:empty"
        batch = Batch(payloads, partitions, offsets, self.source_topic, self._clock_ms(), batch_id, timestamps)
        result = BatchResult([False] * n, [b""] * n, [b""] * n, batch_id, shadow_bodies=[None] * n)
        if decoded is None:
            valid = self._check_contract(batch, *self._decode(batch, result), result)
        else:
            valid = valid_rows(self.contract, batch, decoded,
                               lambda i, stage, reason, event: self._dead(result, batch, i, stage, reason, event))
        if len(valid) and self.router is not None:
            valid = self._refuse_ahead(batch, valid, result)
        if len(valid):
            plan = self._plan(valid)
            primary = self._score_primary(valid.matrix, plan.primary, result)
            self._emit_scored(batch, valid, primary, result)
            if any(version is not None for version in plan.shadow):
                from jobs.shadow_scoring import ShadowPass, score_shadow

                score_shadow(ShadowPass(self, batch, valid, primary), plan.shadow, result)
        return result

    def _refuse_ahead(self, batch: Batch, valid: ValidRows, result: BatchResult) -> ValidRows:
        """Rows stamped beyond the router's reach become CONTRACT dead letters; the others go on."""
        ahead = self.router.beyond_reach(valid.times)
        if not ahead.any():
            return valid
        for k in np.flatnonzero(ahead).tolist():
            event = valid.event(k)
            text = (f"event_time_ahead: event time {event['event_time']} is more than {self.router.reach_ms} ms "
                    f"ahead of the clock ({batch.now_ms}); no control view can route it")
            self._dead(result, batch, valid.rows[k], DeadLetterStage.CONTRACT,
                       Reason(text, RejectCode.EVENT_TIME_AHEAD), event)
        return valid.take(np.flatnonzero(~ahead).tolist())

    def _plan(self, valid: ValidRows) -> RoutePlan:
        if self.router is None:
            return RoutePlan([self.card.version] * len(valid), [None] * len(valid))
        return self.router.plan(valid.times, valid.ids)

    def _score_primary(self, matrix: np.ndarray, versions: list[str], result: BatchResult) -> PrimaryScores:
        """One model call (or cache pass) per primary version present in the batch."""
        n = len(versions)
        scores, cards = np.full(n, np.nan), [self.card] * n
        failed = {} if None not in versions else {  # never left unscored and unnamed (a scan in C, not a loop)
            k: Reason("inference failed: no model version routes this record", RejectCode.INFERENCE_FAILED)
            for k, version in enumerate(versions) if version is None}
        for version, index in version_groups(versions):
            try:
                chosen = self.pool.get(version)
            except ModelError as exc:
                failed.update({int(k): Reason(f"inference failed: {exc}"[:400], RejectCode.INFERENCE_FAILED)
                               for k in index})
                continue
            calls_before, seconds_before = len(result.call_sizes), result.inference_seconds
            part = matrix if len(index) == n else matrix[index]
            got, got_failed = self._infer(part, result, chosen)
            calls = len(result.call_sizes) - calls_before
            if calls:
                per_call = (result.inference_seconds - seconds_before) * 1e6 / calls
                result.version_call_us.setdefault(version, []).extend([per_call] * calls)
            scores[index] = got
            failed.update({int(index[k]): reason for k, reason in got_failed.items()})
            for k in index.tolist():
                cards[k] = chosen.card
            result.version_scored[version] = result.version_scored.get(version, 0) + len(index) - len(got_failed)
        return PrimaryScores(scores, failed, cards)

    def _decode(self, batch: Batch, result: BatchResult) -> tuple[list[dict], list[int]]:
        events, rows = [], []
        decode = self.wire.events.decode
        for i, payload in enumerate(batch.payloads):
            try:
                events.append(decode(payload))
                rows.append(i)
            except SerdeError as exc:
                code = _decode_code(exc)
                self._dead(result, batch, i, DeadLetterStage.DECODE, Reason(f"{code}: {exc}", code))
        if self.wire.bound:
            self._name_id_and_time(batch, events, rows)
        return events, rows

    def _name_id_and_time(self, batch: Batch, events: list[dict], rows: list[int]) -> None:
        """A bound schema's id and time fields under the names the scoring path reads (``event_id``,
        ``event_time``, ``correlation_id``); no time field: the Kafka timestamp; no correlation id: the id."""
        id_field, time_field = self.wire.id_field, self.wire.time_field
        for event, i in zip(events, rows):
            event["event_id"] = event[id_field]
            event["event_time"] = event[time_field] if time_field else int(batch.timestamps[i])
            correlation = event.get("correlation_id")
            if not isinstance(correlation, str) or not correlation:  # as the JVM decoder: a non-empty string
                event["correlation_id"] = event["event_id"]  # (a long there failed every scored record's encoding)

    def _check_contract(self, batch: Batch, events: list[dict], rows: list[int], result: BatchResult) -> ValidRows:
        matrix, rejects, valid = self.contract.to_matrix(events)
        for j, reason in rejects:
            self._dead(result, batch, rows[j], DeadLetterStage.CONTRACT, Reason(f"contract: {reason}", reason.code),
                       events[j])
        return ValidRows.of_events(events, rows, valid.tolist(), matrix)

    def _infer(self, matrix: np.ndarray, result: BatchResult,
               chosen: VersionModel) -> tuple[np.ndarray, dict[int, Reason]]:
        """Scores for every matrix row: cached ones from the prediction cache (one lookup per batch),
        the rest from the model (one call), written back to the cache."""
        cache, predictor = chosen.cache, chosen.predictor
        if cache is None:
            return self._infer_model(matrix, result, predictor)
        errors_before = cache.stats.errors
        keys = cache.keys(matrix)
        scores, hit = cache.lookup(keys)
        result.cache_lookups += len(keys)
        result.cache_hits += int(hit.sum())
        failed: dict[int, Reason] = {}
        misses = np.flatnonzero(~hit)
        if len(misses):
            fresh, fresh_failed = self._infer_model(matrix[misses], result, predictor)
            scores[misses] = fresh
            failed = {int(misses[k]): reason for k, reason in fresh_failed.items()}
            good = [k for k in range(len(misses)) if k not in fresh_failed]
            cache.store([keys[misses[k]] for k in good], fresh[good])
        result.cache_errors += cache.stats.errors - errors_before
        return scores, failed

    def _infer_model(self, matrix: np.ndarray, result: BatchResult,
                     predictor: Predictor) -> tuple[np.ndarray, dict[int, Reason]]:
        """Model scores for every matrix row; a failing batch is retried row by row to isolate the culprit."""
        began = time.perf_counter()
        result.call_sizes.append(len(matrix))
        try:
            scores = np.asarray(predictor.predict_batch(matrix), dtype=np.float64)
            if scores.shape != (len(matrix),):
                raise ValueError(f"predictor returned shape {scores.shape} for {len(matrix)} rows")
            failed: dict[int, Reason] = {}
        except Exception:  # noqa: BLE001 - isolate below; the stream must go on
            scores, failed = self._infer_row_by_row(matrix, result, predictor)
        result.inference_seconds += time.perf_counter() - began
        for k in np.flatnonzero(~np.isfinite(scores)).tolist():
            reason = Reason(f"model returned a non-finite score {scores[k]!r}", RejectCode.NON_FINITE_SCORE)
            failed.setdefault(k, reason)
        return scores, failed

    def _infer_row_by_row(self, matrix: np.ndarray, result: BatchResult,
                          predictor: Predictor) -> tuple[np.ndarray, dict[int, Reason]]:
        scores = np.full(len(matrix), np.nan)
        failed: dict[int, Reason] = {}
        for k in range(len(matrix)):
            result.call_sizes.append(1)
            try:
                one = np.asarray(predictor.predict_batch(matrix[k:k + 1]), dtype=np.float64)
                if one.shape != (1,):
                    raise ValueError(f"predictor returned shape {one.shape} for 1 row")
                scores[k] = float(one[0])
            except Exception as exc:  # noqa: BLE001
                failed[k] = Reason(f"inference failed: {type(exc).__name__}: {str(exc)[:300]}",
                                   RejectCode.INFERENCE_FAILED)
        return scores, failed

    def _emit_scored(self, batch: Batch, valid: ValidRows, primary: PrimaryScores, result: BatchResult) -> None:
        """Scored records of every valid row the model scored (encoded as columns, one call per batch); the
        rows it failed on become INFERENCE dead letters."""
        emit = []
        for k, i in enumerate(valid.rows):
            if k in primary.failed:
                self._dead(result, batch, i, DeadLetterStage.INFERENCE, primary.failed[k], valid.event(k))
            else:
                emit.append(k)
        if not emit:
            return
        scores = primary.scores[emit].astype(np.float64)
        try:
            bodies = self.wire.scored.encode_columns_trusted(scored_columns(valid, primary, emit, scores, batch),
                                                             len(emit))
        except SerdeError:  # one bad record: find it, and write the others one by one
            bodies = [self._encode_one(batch, valid, primary, k, result) for k in emit]
        if len(emit) == len(result.is_scored) and None not in bodies:  # every input row scored (the usual case)
            _record_whole_batch(result, batch, valid, bodies, scores)
            return
        for k, body, score in zip(emit, bodies, scores.tolist()):
            if body is None:  # it became an ENCODE dead letter
                continue
            i = valid.rows[k]
            result.is_scored[i] = True
            result.bodies[i] = body
            result.keys[i] = valid.ids[k].encode()
            result.scores.append(score)
            result.latencies_ms.append(batch.now_ms - valid.times[k])

    def _encode_one(self, batch: Batch, valid: ValidRows, primary: PrimaryScores, k: int,
                    result: BatchResult) -> bytes | None:
        event, i = valid.event(k), valid.rows[k]
        try:
            return self.wire.scored.encode_trusted(scored_record(event, primary.cards[k], float(primary.scores[k]),
                                                                 batch))
        except SerdeError as exc:
            self._dead(result, batch, i, DeadLetterStage.ENCODE, Reason(str(exc), RejectCode.ENCODE_FAILED), event)
            result.version_scored[primary.cards[k].version] -= 1  # counted as scored when the model answered
            return None

    def _dead(self, result: BatchResult, batch: Batch, i: int, stage: DeadLetterStage, reason: Reason,
              event: dict | None = None) -> None:
        """Input row ``i`` becomes a dead letter: its original bytes, where they came from, stage and reason."""
        source = batch.source(i)
        event_id = event.get("event_id") if event else None
        record = dead_letter_record(batch.payloads[i], source, stage, reason, job=self.job,
                                    failed_time_ms=batch.now_ms, event_id=event_id,
                                    correlation_id=event.get("correlation_id") if event else None)
        result.is_scored[i] = False
        result.keys[i] = dead_letter_key(source, event_id)
        result.bodies[i] = self.wire.dead_letter.encode_trusted(record)
        result.dead_by_stage[stage] = result.dead_by_stage.get(stage, 0) + 1
        result.dead_letters.append(DeadLetterNote(stage, reason.code, event_id, record["correlation_id"],
                                                  source.partition, source.offset))


def _record_whole_batch(result: BatchResult, batch: Batch, valid: ValidRows, bodies: list[bytes],
                        scores: np.ndarray) -> None:
    """Every input row was scored: ``valid.rows`` is every row, in order, so the outputs go in whole."""
    result.is_scored = [True] * len(bodies)
    result.bodies = bodies
    result.keys = [event_id.encode() for event_id in valid.ids]
    result.scores.extend(scores.tolist())
    result.latencies_ms.extend((batch.now_ms - np.asarray(valid.times, dtype=np.int64)).tolist())
