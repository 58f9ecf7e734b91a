"""A model's feature contract: decoded events in, the model's float32 matrix out.

:meth:`FeatureContract.to_matrix` is vectorized: it pulls every contract field
out of all events at once (``operator.itemgetter`` + ``zip``), checks types with
one ``set(map(type, column))`` per column, and checks NaN/inf/range with numpy.
Only columns that fail the fast type check are re-checked value by value, and
only the rows that fail are diagnosed one by one to build reject reasons.

Encoding: numeric values (ints and booleans included) become float32;
categorical values become the float32 index of the value in the category list
("ordinal"); a value outside the list is rejected (``unknown_category="reject"``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np

from streamscore.foundation.errors import ContractError, ModelError
from streamscore.foundation.vocabulary import Reason, RejectCode

NUMERIC_DTYPES = ("double", "float", "int", "long", "boolean")
_FAST_TYPES = {"double": {float, int}, "float": {float, int}, "int": {int}, "long": {int}, "boolean": {bool}}
_AVRO_COMPATIBLE = {"double": {"double", "float", "int", "long"}, "float": {"double", "float", "int", "long"},
                    "int": {"int"}, "long": {"int", "long"}, "boolean": {"boolean"}, "string": {"string", "enum"}}


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


@dataclass(frozen=True)
class FeatureSpec:
    """One model input column and the event field it is read from."""

    name: str
    field: str
    kind: str  # "numeric" | "categorical"
    dtype: str  # double | float | int | long | boolean | string
    range: tuple[float, float] | None = None
    categories: tuple[str, ...] | None = None
    encoding: str | None = None  # "ordinal" for categorical features
    unknown_category: str | None = None  # "reject" for categorical features

    def __post_init__(self) -> None:
        where = f"features[{self.name!r}]"
        if not self.name or not self.field:
            raise ModelError(f"model card field '{where}.name/field': must be non-empty")
        if self.kind == "numeric":
            self._check_numeric(where)
        elif self.kind == "categorical":
            self._check_categorical(where)
        else:
            raise ModelError(f"model card field '{where}.kind': {self.kind!r} is not numeric|categorical")

    def _check_numeric(self, where: str) -> None:
        if self.dtype not in NUMERIC_DTYPES:
            raise ModelError(f"model card field '{where}.dtype': {self.dtype!r} is not one of {NUMERIC_DTYPES}")
        if self.range is None or len(self.range) != 2 or not all(map(math.isfinite, self.range)):
            raise ModelError(f"model card field '{where}.range': needs finite [min, max]")
        if self.range[0] > self.range[1]:
            raise ModelError(f"model card field '{where}.range': min {self.range[0]} > max {self.range[1]}")
        if self.categories is not None or self.encoding is not None or self.unknown_category is not None:
            raise ModelError(f"model card field '{where}.categories': a numeric feature has no categories")

    def _check_categorical(self, where: str) -> None:
        if self.dtype != "string":
            raise ModelError(f"model card field '{where}.dtype': categorical features are 'string'")
        cats = self.categories
        if not cats or not all(isinstance(c, str) for c in cats) or len(set(cats)) != len(cats):
            raise ModelError(f"model card field '{where}.categories': needs unique, non-empty strings")
        if self.encoding != "ordinal":
            raise ModelError(f"model card field '{where}.encoding': {self.encoding!r} is not 'ordinal'")
        if self.unknown_category != "reject":
            raise ModelError(f"model card field '{where}.unknown_category': {self.unknown_category!r} is not 'reject'")
        if self.range is not None:
            raise ModelError(f"model card field '{where}.range': a categorical feature has no range")


class MatrixResult(NamedTuple):
    """``to_matrix`` output: rows of valid events in order, the rejects, their indexes."""

    matrix: np.ndarray  # float32 [n_valid, d]
    rejects: list[tuple[int, Reason]]  # (row index in the input, reason: its text and code)
    valid_rows: np.ndarray  # int64 indexes of the matrix rows in the input


def _type_ok(value: Any, dtype: str) -> bool:
    if dtype == "boolean":
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False
    if dtype in ("int", "long"):
        return isinstance(value, (int, np.integer))
    return isinstance(value, (int, float, np.integer, np.floating))


class _NumericEncoder:
    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.fast_types = _FAST_TYPES[spec.dtype]
        self.low, self.high = spec.range

    def encode(self, column: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        """Float64 values and the mask of rows that break the contract (None if none do)."""
        values, wrong_type = None, None
        if isinstance(column, np.ndarray) and column.dtype.kind in "biuf":  # typed by the schema: values only
            values = column.astype(np.float64)
        elif set(map(type, column)) <= self.fast_types:
            try:
                values = np.array(column, dtype=np.float64)
            except OverflowError:  # an int too large for a double
                values = None
        if values is None:
            dtype = self.spec.dtype
            good = np.fromiter((_type_ok(v, dtype) for v in column), bool, len(column))
            values = np.fromiter((_to_float(v) if ok else math.nan for v, ok in zip(column, good)),
                                 np.float64, len(column))
            wrong_type = ~good
        bad = ~np.isfinite(values) | (values < self.low) | (values > self.high)
        if wrong_type is not None:
            bad |= wrong_type
        return values, (bad if bad.any() else None)

    def diagnose(self, value: Any) -> Reason:
        if value is _MISSING:
            return Reason(f"missing field '{self.spec.field}'", RejectCode.MISSING_FIELD)
        if not _type_ok(value, self.spec.dtype):
            return Reason(f"wrong type {type(value).__name__} (expected {self.spec.dtype})", RejectCode.WRONG_TYPE)
        number = _to_float(value)
        if math.isnan(number):
            return Reason("NaN", RejectCode.NOT_FINITE)
        if math.isinf(number) and isinstance(value, (float, np.floating)):
            return Reason("inf" if number > 0 else "-inf", RejectCode.NOT_FINITE)
        return Reason(f"value {value!r} out of range [{self.low}, {self.high}]", RejectCode.OUT_OF_RANGE)


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


class _CodeMap(dict):
    def __missing__(self, key: Any) -> float:
        return -1.0


class _CategoricalEncoder:
    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.codes = _CodeMap({category: float(i) for i, category in enumerate(spec.categories)})

    def encode(self, column: Sequence[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            values = np.fromiter(map(self.codes.__getitem__, column), np.float64, len(column))
        except TypeError:  # an unhashable value
            values = np.fromiter((self.codes[v] if _hashable(v) else -1.0 for v in column), np.float64, len(column))
        bad = values < 0
        return values, (bad if bad.any() else None)

    def diagnose(self, value: Any) -> Reason:
        if value is _MISSING:
            return Reason(f"missing field '{self.spec.field}'", RejectCode.MISSING_FIELD)
        if not isinstance(value, str):
            return Reason(f"wrong type {type(value).__name__} (expected string)", RejectCode.WRONG_TYPE)
        return Reason(f"unknown category {value!r}", RejectCode.UNKNOWN_CATEGORY)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


class FeatureContract:
    """The ordered features a model reads, and the vectorized event encoder."""

    def __init__(self, features: Sequence[FeatureSpec]) -> None:
        if not features:
            raise ModelError("model card field 'features': the contract has no features")
        names = [f.name for f in features]
        if len(set(names)) != len(names):
            raise ModelError(f"model card field 'features': duplicate feature names in {names}")
        self.features = tuple(features)
        self.fields = tuple(f.field for f in features)
        self._getter = itemgetter(*self.fields) if len(self.fields) > 1 else (lambda e, f=self.fields[0]: (e[f],))
        self._encoders = [_NumericEncoder(f) if f.kind == "numeric" else _CategoricalEncoder(f) for f in features]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def width(self) -> int:
        return len(self.features)

    def to_matrix(self, events: Sequence[Mapping[str, Any]]) -> MatrixResult:
        """Encode events; rows breaking the contract are left out and reported."""
        columns, not_mapping = self._columns(events)
        return self._encode(columns, len(events), not_mapping)

    def columns_to_matrix(self, columns: Sequence[Sequence[Any]]) -> MatrixResult:
        """Encode decoded columns, one per contract field in order (numeric ones as numpy arrays of the
        field's type, categorical ones as sequences of strings): the records the JVM decoded, which
        never become dicts. Rows breaking the contract are left out and reported, as by :meth:`to_matrix`."""
        if len(columns) != self.width:
            raise ContractError(f"{len(columns)} columns for a contract of {self.width} features")
        return self._encode(list(columns), len(columns[0]), {})

    def _encode(self, columns: list[Sequence[Any]], n: int, not_mapping: dict[int, str]) -> MatrixResult:
        matrix = np.empty((n, self.width), dtype=np.float32)
        bad_masks: list[tuple[int, np.ndarray]] = []
        with np.errstate(over="ignore", invalid="ignore"):
            for j, (encoder, column) in enumerate(zip(self._encoders, columns)):
                values, bad = encoder.encode(column)
                matrix[:, j] = values
                if bad is not None:
                    bad_masks.append((j, bad))
        if not bad_masks and not not_mapping:
            return MatrixResult(matrix, [], np.arange(n, dtype=np.int64))
        rejects = self._diagnose(columns, bad_masks, not_mapping)
        bad_rows = np.fromiter((row for row, _ in rejects), np.int64, len(rejects))
        keep = np.ones(n, dtype=bool)
        keep[bad_rows] = False
        valid_rows = np.flatnonzero(keep)
        return MatrixResult(matrix[valid_rows], rejects, valid_rows)

    def _columns(self, events: Sequence[Any]) -> tuple[list[Sequence[Any]], dict[int, str]]:
        try:
            rows = list(map(self._getter, events))
        except (KeyError, TypeError, IndexError):
            return self._columns_slowly(events)
        return (list(zip(*rows)) if rows else [() for _ in self.fields]), {}

    def _columns_slowly(self, events: Sequence[Any]) -> tuple[list[Sequence[Any]], dict[int, str]]:
        not_mapping = {i: type(e).__name__ for i, e in enumerate(events) if not isinstance(e, Mapping)}
        safe = [{} if i in not_mapping else event for i, event in enumerate(events)]
        return [[event.get(field, _MISSING) for event in safe] for field in self.fields], not_mapping

    def _diagnose(self, columns: list[Sequence[Any]], bad_masks: list[tuple[int, np.ndarray]],
                  not_mapping: dict[int, str]) -> list[tuple[int, Reason]]:
        """Each failing row's diagnoses joined; its code is the first diagnosis' code."""
        reasons = {i: [Reason(f"event is not a mapping (got {name})", RejectCode.CONTRACT_OTHER)]
                   for i, name in not_mapping.items()}
        for j, bad in bad_masks:
            encoder = self._encoders[j]
            for i in np.flatnonzero(bad).tolist():
                if i not in not_mapping:
                    found = encoder.diagnose(columns[j][i])
                    reasons.setdefault(i, []).append(Reason(f"{encoder.spec.name}: {found}", found.code))
        return [(i, Reason("; ".join(reasons[i]), reasons[i][0].code)) for i in sorted(reasons)]


def _avro_type_names(avro_type: Any) -> list[str]:
    """Primitive names of an Avro field type; a union gives one name per branch."""
    if isinstance(avro_type, list):
        return [name for branch in avro_type for name in _avro_type_names(branch)]
    if isinstance(avro_type, Mapping):
        return _avro_type_names(avro_type.get("type"))
    return [str(avro_type)]


def _schema_mismatch(spec: FeatureSpec, avro_type: Any) -> str | None:
    names = _avro_type_names(avro_type)
    if "null" in names:
        return f"{spec.name}: event field '{spec.field}' is nullable but the contract needs a value"
    wrong = [name for name in names if name not in _AVRO_COMPATIBLE[spec.dtype]]
    if wrong:
        return f"{spec.name}: event field '{spec.field}' is {'|'.join(names)}, contract needs {spec.dtype}"
    if isinstance(avro_type, Mapping) and avro_type.get("type") == "enum":
        unknown = sorted(set(avro_type.get("symbols", ())) - set(spec.categories or ()))
        if unknown:
            return f"{spec.name}: enum symbols {unknown} are not contract categories"
    return None


def check_against_event_schema(contract: FeatureContract, avro_schema: Mapping[str, Any]) -> None:
    """Raise ContractError listing every contract field absent from, or typed
    incompatibly with, the Avro record schema ``avro_schema`` (a parsed .avsc)."""
    event_fields = {field["name"]: field["type"] for field in avro_schema.get("fields", ())}
    mismatches = []
    for spec in contract.features:
        if spec.field not in event_fields:
            mismatches.append(f"{spec.name}: event field '{spec.field}' is not in schema {avro_schema.get('name')}")
            continue
        mismatch = _schema_mismatch(spec, event_fields[spec.field])
        if mismatch:
            mismatches.append(mismatch)
    if mismatches:
        raise ContractError("feature contract does not match the event schema: " + "; ".join(mismatches))
