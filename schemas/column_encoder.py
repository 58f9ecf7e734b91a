"""Avro bodies of many flat records at once, built column by column (no per-record dict, no writer call).

The scoring step writes one small, flat record per scored event (``scored.avsc``). fastavro's
``schemaless_writer`` costs ~4.5 us a record there, most of it per-call overhead; this encoder
turns each *column* into per-row byte fragments (doubles through numpy in one call, a value
shared by every row encoded once) and joins each row's fragments in C. The bytes are the same
as fastavro's: ``tests/unit/test_column_encoder.py`` checks that on random records.

Flat means: every field is a primitive (boolean, int, long, float, double, string, bytes), an enum,
or ``["null", T]`` of one of those; logical types are written as their physical type.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from schemas.errors import RecordEncodeError

_SMALL = 128  # zig-zag varints of -64..63 are one byte: precomputed


@dataclass(frozen=True)
class Same:
    """A column whose every row holds ``value`` (encoded once)."""

    value: Any


def zigzag_varint(number: int) -> bytes:
    """Avro's int/long encoding: zig-zag, then base-128 varint."""
    n = (number << 1) ^ (number >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINTS = {i: zigzag_varint(i) for i in range(-_SMALL // 2, _SMALL // 2)}
_MAX_VARINT = 10  # bytes of a 64-bit zig-zag varint


def varints(values: np.ndarray) -> list[bytes]:
    """:func:`zigzag_varint` of every value of an integer array, computed with numpy."""
    signed = np.asarray(values, dtype=np.int64)
    rest = (signed.astype(np.uint64) << np.uint64(1)) ^ (signed >> np.int64(63)).astype(np.uint64)
    out = np.zeros((len(signed), _MAX_VARINT), dtype=np.uint8)
    lengths = np.ones(len(signed), dtype=np.int64)
    for j in range(_MAX_VARINT):
        low = (rest & np.uint64(0x7F)).astype(np.uint8)
        rest = rest >> np.uint64(7)
        more = rest != 0
        out[:, j] = low | (more.astype(np.uint8) << np.uint8(7))
        if not more.any():
            break
        lengths += more
    flat = out.tobytes()
    return [flat[i * _MAX_VARINT:i * _MAX_VARINT + length] for i, length in enumerate(lengths.tolist())]


def _varint(number: int) -> bytes:
    small = _VARINTS.get(number)
    return small if small is not None else zigzag_varint(number)


def _string(value: str) -> bytes:
    data = value.encode()
    return _varint(len(data)) + data


_LENGTHS = tuple(zigzag_varint(n) for n in range(_SMALL // 2))  # a length of 0..63 bytes: one byte


def _strings(column: Any) -> list[bytes]:
    """A whole string column at once (one comprehension, no call per row where every value is short)."""
    data = [value.encode() for value in column]
    try:
        return [_LENGTHS[len(d)] + d for d in data]
    except IndexError:  # a value of 64 bytes or more
        return [_varint(len(d)) + d for d in data]


def _bytes(value: bytes) -> bytes:
    return _varint(len(value)) + bytes(value)


def _boolean(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


def _one(kind: str, symbols: tuple[str, ...] = ()) -> Callable[[Any], bytes]:
    """The encoder of one value of a primitive or enum type."""
    if kind in ("int", "long"):
        return lambda v: _varint(int(v))
    if kind == "double":
        return lambda v: struct.pack("<d", v)
    if kind == "float":
        return lambda v: struct.pack("<f", v)
    if kind == "string":
        return _string
    if kind == "bytes":
        return _bytes
    if kind == "boolean":
        return _boolean
    if kind == "enum":
        index = {symbol: _varint(i) for i, symbol in enumerate(symbols)}
        return index.__getitem__
    raise RecordEncodeError(f"column encoder: unsupported Avro type {kind!r}")


class _Field:
    def __init__(self, field: Mapping[str, Any]) -> None:
        self.name = field["name"]
        avro_type = field["type"]
        self.nullable = isinstance(avro_type, list)
        if self.nullable:
            branches = [b for b in avro_type if b != "null"]
            if len(avro_type) != 2 or avro_type[0] != "null" or len(branches) != 1:
                raise RecordEncodeError(f"column encoder: field {self.name!r}: only ['null', T] unions")
            avro_type = branches[0]
        if isinstance(avro_type, Mapping):
            self.kind = avro_type["type"]
            encode = _one(self.kind, tuple(avro_type.get("symbols", ())))
        else:
            self.kind = avro_type
            encode = _one(self.kind)
        self.encode_value = (lambda v, e=encode: b"\x00" if v is None else b"\x02" + e(v)) if self.nullable \
            else encode

    def fragments(self, column: Any, n: int):
        """One byte string per row."""
        if isinstance(column, Same):
            return repeat(self.encode_value(column.value), n)
        if self.kind in ("int", "long") and not self.nullable and isinstance(column, np.ndarray):
            return varints(column)
        if self.kind in ("double", "float") and not self.nullable:
            packed = np.asarray(column, dtype="<f8" if self.kind == "double" else "<f4").tobytes()
            width = 8 if self.kind == "double" else 4
            return [packed[i:i + width] for i in range(0, len(packed), width)]
        if self.kind == "string" and not self.nullable:
            return _strings(column)
        return map(self.encode_value, column)


class ColumnEncoder:
    """Encodes rows given as columns (sequences, or :class:`Same`) of a flat Avro record schema."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        if schema.get("type") != "record":
            raise RecordEncodeError("column encoder: the schema must be a record")
        self.fields = [_Field(field) for field in schema["fields"]]

    def encode(self, columns: Mapping[str, Any], n: int, prefix: bytes = b"") -> list[bytes]:
        """The bodies of ``n`` rows (each after ``prefix``, e.g. a wire header)."""
        missing = [f.name for f in self.fields if f.name not in columns]
        if missing:
            raise RecordEncodeError(f"column encoder: no column for field(s) {', '.join(missing)}")
        uneven = [f.name for f in self.fields if not isinstance(columns[f.name], Same) and len(columns[f.name]) != n]
        if uneven:
            raise RecordEncodeError(f"column encoder: column(s) {', '.join(uneven)} do not hold {n} rows")
        try:
            parts = [repeat(prefix, n)] + self._fragments(columns, n)
            return list(map(b"".join, zip(*parts)))
        except (TypeError, KeyError, ValueError, AttributeError, OverflowError, struct.error) as exc:
            raise RecordEncodeError(f"column encoder: cannot encode: {exc}") from exc

    def _fragments(self, columns: Mapping[str, Any], n: int) -> list:
        """Each field's fragments; a column object given for two fields of one type (a correlation id that is
        the event id) is encoded once, where its fragments are a list (an iterator cannot be shared)."""
        done: dict[tuple, list] = {}
        parts = []
        for f in self.fields:
            column = columns[f.name]
            key = (id(column), f.kind, f.nullable)
            fragments = done.get(key)
            if fragments is None:
                fragments = f.fragments(column, n)
                if isinstance(fragments, list):
                    done[key] = fragments
            parts.append(fragments)
        return parts
