"""The scoring step on records the JVM decoded (``jobs.decoded_batch``): the same scored records and dead
letters as when the Python step decodes the same payloads itself, from columns instead of dicts."""

from __future__ import annotations

import numpy as np
import pytest

from jobs.decoded_batch import DecodedColumns, decoded_field_order, reader_projection
from schemas.confluent import RegisteredReader, schema_id_key
from streamscore.foundation.errors import ContractError
from tests.unit.test_batch_scorer_confluent import _readings, _scorer, model, registry  # noqa: F401 - fixtures


def _decoded(card, readings, failures=None, time_field="ts"):
    """The columns ``decode_confluent`` hands over for ``readings``; ``failures``: row -> reject code."""
    failures = failures or {}
    n = len(readings)
    ok = np.array([i not in failures for i in range(n)])
    columns = {}
    for name in decoded_field_order(card):
        values = [None if i in failures else r[name] for i, r in enumerate(readings)]
        kind = type(next(v for v in values if v is not None))
        if kind is str:
            columns[name] = np.array(values, dtype=object)
        else:  # Arrow hands a numeric column with nulls over as floats with NaN
            columns[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64) if failures \
                else np.array(values)
    codes = [failures.get(i) for i in range(n)]
    reasons = [f"decoder says {c}" if c else None for c in codes]
    return DecodedColumns(ok, codes, reasons, columns[card.event_schema.id_field],
                          columns[time_field] if time_field else None,
                          [columns[name] for name in card.contract.fields])


def test_the_reader_is_the_event_schema_cut_to_id_time_and_features(model):  # noqa: F811
    projection = reader_projection(model.card)
    record = model.card.event_record_schema
    assert (projection["name"], projection.get("namespace")) == (record["name"], record.get("namespace"))
    assert decoded_field_order(model.card) == ["reading_id", "ts", *model.card.contract.fields]
    by_name = {f["name"]: f for f in record["fields"]}
    assert all(field == by_name[field["name"]] for field in projection["fields"])


def test_decoded_columns_score_as_the_python_decoder_does(model, registry):  # noqa: F811
    scorer, events = _scorer(model, registry)
    readings = _readings(40)
    readings[7]["temperature_c"] = 1e9  # out of the contract's range
    payloads = [events.encode(r) for r in readings]
    payloads[3] = b"\x05" + payloads[3][1:]
    offsets, stamps = list(range(40)), [5] * 40
    by_python = scorer.score(payloads, [0] * 40, offsets, stamps)
    decoded = _decoded(model.card, readings, failures={3: "bad_magic"})
    by_jvm = scorer.score(payloads, [0] * 40, offsets, np.array(stamps), decoded)
    assert by_jvm.is_scored == by_python.is_scored == [i not in (3, 7) for i in range(40)]
    reader = RegisteredReader(registry)
    for jvm_body, python_body in zip(by_jvm.bodies, by_python.bodies):
        got, want = reader.decode(jvm_body)[1], reader.decode(python_body)[1]
        if "score" in got:
            assert got == want
        else:  # the dead letters: same bytes, stage and code (the reason's text is the decoder's own)
            assert (got["original_bytes"], got["stage"], got["event_id"]) == \
                (want["original_bytes"], want["stage"], want["event_id"])
            assert got["reason"].split(":")[0] == want["reason"].split(":")[0]
    assert by_jvm.bodies[3][:5] == b"\x00" + schema_id_key(13)


def test_without_a_time_field_the_kafka_timestamp_is_the_event_time(model, registry):  # noqa: F811
    scorer, events = _scorer(model, registry, time_field=None)
    readings = _readings(5)
    decoded = _decoded(model.card, readings, time_field=None)
    decoded = DecodedColumns(decoded.ok, decoded.reason_codes, decoded.reasons, decoded.ids, None,
                             decoded.features)
    result = scorer.score([events.encode(r) for r in readings], [1] * 5, list(range(5)),
                          np.array([111, 222, 333, 444, 555]), decoded)
    reader = RegisteredReader(registry)
    assert [reader.decode(b)[1]["event_time"] for b in result.bodies] == [111, 222, 333, 444, 555]


def test_an_unknown_reject_code_is_undecodable_and_every_row_accounted_for(model, registry):  # noqa: F811
    scorer, events = _scorer(model, registry)
    readings = _readings(6)
    decoded = _decoded(model.card, readings, failures={0: "something_new", 5: "bad_body"})
    result = scorer.score([events.encode(r) for r in readings], [0] * 6, list(range(6)), np.array([5] * 6), decoded)
    reader = RegisteredReader(registry)
    dead = [reader.decode(result.bodies[i])[1] for i in (0, 5)]
    assert [d["reason"].split(":")[0] for d in dead] == ["undecodable", "bad_body"]
    assert result.scored + len(result.dead_letters) == 6


def test_columns_to_matrix_equals_to_matrix_and_diagnoses_failing_rows(model):  # noqa: F811
    contract = model.contract
    readings = _readings(30)
    readings[4]["vibration_mm_s"] = float("nan")
    readings[9]["machine_type"] = "TOASTER"
    columns = [np.array([r[f] for r in readings], dtype=object if isinstance(readings[0][f], str) else None)
               for f in contract.fields]
    by_columns, by_dicts = contract.columns_to_matrix(columns), contract.to_matrix(readings)
    np.testing.assert_array_equal(by_columns.matrix, by_dicts.matrix)
    np.testing.assert_array_equal(by_columns.valid_rows, by_dicts.valid_rows)
    assert [(i, r.code) for i, r in by_columns.rejects] == [(i, r.code) for i, r in by_dicts.rejects] \
        == [(4, "not_finite"), (9, "unknown_category")]
    with pytest.raises(ContractError, match="columns for a contract"):
        contract.columns_to_matrix(columns[:-1])


def test_the_layout_picks_id_time_and_features_out_of_the_decoders_field_columns(model):  # noqa: F811
    from jobs.decoded_batch import DecodedLayout

    card = model.card
    order = decoded_field_order(card)
    fields = [np.array([f"{name}-{i}" for i in range(3)], dtype=object) for name in order]
    decoded = DecodedLayout.of(card, model.contract).columns(np.ones(3, bool), [None] * 3, [None] * 3, fields)
    assert list(decoded.ids) == ["reading_id-0", "reading_id-1", "reading_id-2"]
    assert list(decoded.times) == ["ts-0", "ts-1", "ts-2"]
    assert [column[0] for column in decoded.features] == [f"{name}-0" for name in model.contract.fields]
