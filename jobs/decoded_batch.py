"""Records the JVM decoded (``decode_confluent`` in ``jobs/udf``), as the columns the scoring step reads.

When a bound model scores the Confluent wire, Flink decodes each record in the JVM into typed
columns of only the fields the model needs (:func:`reader_projection`): its id, its event time and
its features. The vectorized Python step then gets Arrow columns, never a per-record dict or Avro
body: :func:`valid_rows` turns a failed decode into a DECODE dead letter (its original bytes came
along), applies the contract on columns (``FeatureContract.columns_to_matrix``) and hands the
model's matrix on. Pure (no pyflink): unit tests call it with plain arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from jobs.batch import Batch, ValidRows
from models.card import ModelCard
from models.contract import FeatureContract
from streamscore.foundation.vocabulary import DeadLetterStage, Reason, RejectCode

_REJECT_CODES = frozenset(RejectCode)
_INTEGER_DTYPES = ("int", "long")


@dataclass(frozen=True)
class DecodedColumns:
    """Row ``i`` of a batch as the JVM decoded it: ``ok[i]``, else ``reason_codes[i]``/``reasons[i]``
    say why not; when ok, ``ids[i]``, ``times[i]`` (None: the Kafka timestamp is the event time) and
    ``features[j][i]`` for contract feature ``j``."""

    ok: np.ndarray
    reason_codes: Sequence[str | None]
    reasons: Sequence[str | None]
    ids: Sequence[str | None]
    times: np.ndarray | None
    features: Sequence[np.ndarray]
    correlations: Sequence[str | None] | None = None  # the event's correlation id, where its schema has one


CORRELATION_FIELD = "correlation_id"  # a string field of this name traces an event through topics and logs


def reader_projection(card: ModelCard) -> dict:
    """The reader schema the JVM decodes with: the card's event record, cut to the id field, the time
    field, the correlation id (where a string field has that name) and the contract's fields, in that
    order. Avro resolution skips the writer's other fields."""
    binding = card.binding
    record = card.event_record_schema
    by_name = {field["name"]: field for field in record["fields"]}
    correlation = [CORRELATION_FIELD] if by_name.get(CORRELATION_FIELD, {}).get("type") == "string" else []
    wanted = [binding.id_field, *([binding.time_field] if binding.time_field else []), *correlation,
              *(f for f in card.contract.fields if f not in (binding.id_field, binding.time_field))]
    projected = {key: value for key, value in record.items() if key not in ("fields", "doc")}
    return {**projected, "fields": [by_name[name] for name in dict.fromkeys(wanted)]}


def decoded_field_order(card: ModelCard) -> list[str]:
    """The fields of :func:`reader_projection`, as the decoder's columns come."""
    return [field["name"] for field in reader_projection(card)["fields"]]


@dataclass(frozen=True)
class DecodedLayout:
    """Where the id, the time and each contract feature sit among the decoder's field columns
    (worked out once per job, not per batch)."""

    id_index: int
    time_index: int | None
    feature_indexes: tuple[int, ...]
    correlation_index: int | None = None

    @classmethod
    def of(cls, card: ModelCard, contract: FeatureContract) -> DecodedLayout:
        order = {name: i for i, name in enumerate(decoded_field_order(card))}
        binding = card.binding
        return cls(order[binding.id_field], order[binding.time_field] if binding.time_field else None,
                   tuple(order[name] for name in contract.fields), order.get(CORRELATION_FIELD))

    def columns(self, ok: np.ndarray, reason_codes: Sequence, reasons: Sequence,
                fields: Sequence[np.ndarray]) -> DecodedColumns:
        """The decoder's output (its tags and field columns, in :func:`decoded_field_order`) as the scorer reads it."""
        return DecodedColumns(ok, reason_codes, reasons, fields[self.id_index],
                              None if self.time_index is None else fields[self.time_index],
                              [fields[i] for i in self.feature_indexes],
                              None if self.correlation_index is None else fields[self.correlation_index])


def reject_code(code: object) -> RejectCode:
    """A decoder's reject code as a dead-letter code (one of no known kind: undecodable)."""
    return RejectCode(code) if code in _REJECT_CODES else RejectCode.UNDECODABLE


DeadLetterSink = Callable[[int, DeadLetterStage, Reason, dict | None], None]


def valid_rows(contract: FeatureContract, batch: Batch, decoded: DecodedColumns, dead: DeadLetterSink) -> ValidRows:
    """The rows that decoded and meet the contract, with their matrix; every other row goes to ``dead``
    (input row, stage, reason, the event's ids where known)."""
    ok = np.asarray(decoded.ok, dtype=bool)
    for i in np.flatnonzero(~ok).tolist():
        code = reject_code(decoded.reason_codes[i])
        dead(i, DeadLetterStage.DECODE, Reason(f"{code}: {decoded.reasons[i]}", code), None)
    rows = np.flatnonzero(ok)
    every = len(rows) == len(ok)
    ids = list(decoded.ids) if every else [decoded.ids[i] for i in rows.tolist()]
    times = decoded.times if decoded.times is not None else np.asarray(batch.timestamps, dtype=np.int64)
    times = (times if every else times[rows]).astype(np.int64).tolist()
    correlations = ids if decoded.correlations is None else \
        [c or i for i, c in zip(ids, _correlations(decoded, rows, every))]  # none: the event id stands in
    columns = [_typed(column if every else column[rows], spec.dtype)
               for column, spec in zip(decoded.features, contract.features)]
    matrix, rejects, kept = contract.columns_to_matrix(columns)
    for j, reason in rejects:  # a record only for a rejected row
        event = {"event_id": ids[j], "event_time": times[j], "correlation_id": correlations[j]}
        dead(int(rows[j]), DeadLetterStage.CONTRACT, Reason(f"contract: {reason}", reason.code), event)
    if len(kept) == len(rows):
        return ValidRows(ids, times, correlations, rows.tolist(), matrix)
    kept_list = kept.tolist()
    return ValidRows([ids[j] for j in kept_list], [times[j] for j in kept_list],
                     [correlations[j] for j in kept_list], [int(rows[j]) for j in kept_list], matrix)


def _correlations(decoded: DecodedColumns, rows: np.ndarray, every: bool) -> Sequence[str | None]:
    """The decoded rows' correlation ids (of a schema that has them; a None: the event id stands in)."""
    return list(decoded.correlations) if every else [decoded.correlations[i] for i in rows.tolist()]


def _typed(column: np.ndarray, dtype: str) -> np.ndarray:
    """An integer field's column back to integers (a batch with a failed decode arrives as floats
    with NaN in its rows, which are not among these); other columns as they came."""
    column = np.asarray(column)
    if dtype in _INTEGER_DTYPES and column.dtype.kind == "f":
        return column.astype(np.int64)
    return column
