"""Synthetic card transactions for the demo fraud model, reproducible from a seed.

Every draw comes from ``numpy.random.Generator`` streams spawned from one
``SeedSequence(seed)``: features, drift, labels and ids each get their own
stream, so adding drift or labels never changes the undrifted feature values.

Marginals: :mod:`models.demo_draws`.

Known fraud mechanism (:func:`fraud_logit`): ``P(fraud) = sigmoid(z)`` with ::

    z = -5.3 + 0.9 log(clip(amount_ratio_to_avg, 0.05, 50))
        + 1.1 [merchant in electronics, jewelry, gaming]
        + 0.8 [entry_mode in manual, online] + 0.5 [not card_present]
        + 1.0 is_international + 1.2 [account_age_days < 90]
        + 0.8 [hour_of_day < 6] + 0.35 log1p(distance_from_home_km / 50)
        + 0.45 min(failed_logins_24h, 6) + 3.0 (0.7 - device_trust_score)

which gives a base fraud rate of about 3 %.

Drift (:class:`DriftSpec`) is applied to rows ``start_after`` onwards, after
all features are drawn and before labels: ``shift`` adds ``amount`` reference
standard deviations (booleans: flips rows so P(True) moves by that much),
``scale`` multiplies the deviation from the reference mean, ``category_mix``
replaces a fraction ``amount`` of rows by ``category``. Only the named feature
changes (derived features are not recomputed); drifted values are clipped into
the feature's range so the stream stays scoreable. Reference moments come from
a fixed 50 000-row sample, so drift does not depend on ``n``.

``hour_of_day``/``day_of_week`` are the merchant's local clock, drawn apart
from ``event_time`` (the synthetic stream's UTC clock, increasing by
1 + Exponential(mean_gap_ms) milliseconds per event).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, get_args

import numpy as np

from models.demo_draws import draw_columns


class DemoFeature(NamedTuple):
    """One feature of the demo contract: event field, Avro dtype, range or categories."""

    name: str
    dtype: str  # double | int | boolean | string
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] | None = None


MERCHANTS = ("grocery", "electronics", "travel", "restaurants", "fuel",
             "online_retail", "gaming", "jewelry", "pharmacy", "other")
CHANNELS = ("pos", "ecommerce", "atm", "mobile", "phone")
COUNTRIES = ("US", "GB", "DE", "FR", "IN", "BR", "NG", "CN", "CA", "MX")
CARD_TYPES = ("debit", "credit", "prepaid")
ENTRY_MODES = ("chip", "swipe", "contactless", "manual", "online")

FEATURES: tuple[DemoFeature, ...] = (
    DemoFeature("amount", "double", 0.0, 1e6),
    DemoFeature("hour_of_day", "int", 0, 23),
    DemoFeature("day_of_week", "int", 0, 6),
    DemoFeature("merchant_risk_score", "double", 0.0, 1.0),
    DemoFeature("customer_age", "int", 18, 120),
    DemoFeature("account_age_days", "int", 0, 40_000),
    DemoFeature("txn_count_1h", "int", 0, 1_000),
    DemoFeature("txn_count_24h", "int", 0, 10_000),
    DemoFeature("amount_avg_30d", "double", 0.0, 1e6),
    DemoFeature("amount_ratio_to_avg", "double", 0.0, 1e4),
    DemoFeature("distance_from_home_km", "double", 0.0, 20_040.0),
    DemoFeature("distance_from_last_txn_km", "double", 0.0, 20_040.0),
    DemoFeature("seconds_since_last_txn", "double", 0.0, 1e8),
    DemoFeature("failed_logins_24h", "int", 0, 1_000),
    DemoFeature("card_present", "boolean", 0, 1),
    DemoFeature("is_international", "boolean", 0, 1),
    DemoFeature("credit_limit", "double", 0.0, 1e6),
    DemoFeature("utilization", "double", 0.0, 2.0),
    DemoFeature("device_trust_score", "double", 0.0, 1.0),
    DemoFeature("chargebacks_12m", "int", 0, 1_000),
    DemoFeature("merchant_category", "string", categories=MERCHANTS),
    DemoFeature("channel", "string", categories=CHANNELS),
    DemoFeature("country", "string", categories=COUNTRIES),
    DemoFeature("card_type", "string", categories=CARD_TYPES),
    DemoFeature("entry_mode", "string", categories=ENTRY_MODES),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
_BY_NAME = {f.name: f for f in FEATURES}

DEFAULT_START_TIME_MS = 1_700_000_000_000
REFERENCE_SEED = 20_240_601
FRAUD_INTERCEPT = -5.3


DriftKind = Literal["shift", "scale", "category_mix"]


@dataclass(frozen=True)
class DriftSpec:
    """Drift injected into ``feature`` for rows ``start_after`` onwards."""

    feature: str
    kind: DriftKind
    amount: float
    start_after: int = 0
    category: str | None = None  # target of "category_mix"

    def __post_init__(self) -> None:
        spec = _BY_NAME.get(self.feature)
        if spec is None:
            raise ValueError(f"DriftSpec.feature: unknown feature {self.feature!r}")
        categorical = spec.categories is not None
        if self.kind not in get_args(DriftKind):
            raise ValueError(f"DriftSpec.kind: unknown kind {self.kind!r}")
        if categorical != (self.kind == "category_mix"):
            raise ValueError(f"DriftSpec.kind: {self.kind!r} does not apply to {self.feature!r}")
        if categorical and (self.category not in spec.categories or not 0 <= self.amount <= 1):
            raise ValueError("DriftSpec.category/amount: category_mix needs a known "
                             "category and an amount in [0, 1]")
        if self.start_after < 0:
            raise ValueError("DriftSpec.start_after: must be >= 0")


def demo_contract():
    """The demo fraud model's :class:`~models.contract.FeatureContract` (event field = feature name)."""
    from models.contract import FeatureContract, FeatureSpec

    return FeatureContract([
        FeatureSpec(f.name, f.name, "numeric", f.dtype, range=(f.low, f.high)) if f.categories is None else
        FeatureSpec(f.name, f.name, "categorical", "string", categories=f.categories, encoding="ordinal",
                    unknown_category="reject")
        for f in FEATURES])


def _draw_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    columns = draw_columns(rng, n)
    return {name: columns[name] for name in FEATURE_NAMES}


@functools.lru_cache(maxsize=1)
def reference_moments() -> dict[str, tuple[float, float]]:
    """(mean, std) of every numeric feature in a fixed 50 000-row undrifted sample."""
    columns = _draw_columns(np.random.default_rng(REFERENCE_SEED), 50_000)
    return {f.name: (float(np.mean(columns[f.name])), float(np.std(columns[f.name])))
            for f in FEATURES if f.categories is None}


def _shift_booleans(values: np.ndarray, spec: DriftSpec, draws: np.ndarray) -> np.ndarray:
    """Flip just enough rows that P(True) moves as a mean shift/scale would move it."""
    mean, std = reference_moments()[spec.feature]
    p = float(np.mean(values)) if values.size else mean
    target = p + spec.amount * std if spec.kind == "shift" else mean + (p - mean) * spec.amount
    target = min(max(target, 0.0), 1.0)
    flip_up = max(target - p, 0.0) / max(1.0 - p, 1e-12)
    flip_down = max(p - target, 0.0) / max(p, 1e-12)
    return np.where(values, draws >= flip_down, draws < flip_up)


def _apply_drift(columns: dict, spec: DriftSpec, rng: np.random.Generator) -> None:
    values = columns[spec.feature]
    rows = slice(spec.start_after, len(values))
    draws = rng.random(len(values))[rows]
    feature = _BY_NAME[spec.feature]
    if spec.kind == "category_mix":
        target = feature.categories.index(spec.category)
        values[rows] = np.where(draws < spec.amount, target, values[rows])
    elif feature.dtype == "boolean":
        values[rows] = _shift_booleans(values[rows], spec, draws)
    else:
        mean, std = reference_moments()[spec.feature]
        moved = values[rows] + spec.amount * std if spec.kind == "shift" else mean + (values[rows] - mean) * spec.amount
        moved = np.clip(moved, feature.low, feature.high)
        values[rows] = np.rint(moved) if feature.dtype == "int" else moved


def generate_columns(n: int, seed: int, drift: Sequence[DriftSpec] = ()) -> dict[str, np.ndarray]:
    """Feature columns by name: floats, int64, bool, and int64 category codes."""
    feature_seq, drift_seq = np.random.SeedSequence(seed).spawn(2)
    columns = _draw_columns(np.random.default_rng(feature_seq), n)
    drift_rng = np.random.default_rng(drift_seq)
    for spec in drift:
        _apply_drift(columns, spec, drift_rng)
    return columns


def fraud_logit(columns: dict[str, np.ndarray]) -> np.ndarray:
    """The known fraud mechanism's log-odds (see the module docstring)."""
    c = columns
    risky = np.isin(c["merchant_category"], [MERCHANTS.index(m) for m in ("electronics", "jewelry", "gaming")])
    remote_entry = np.isin(c["entry_mode"], [ENTRY_MODES.index("manual"), ENTRY_MODES.index("online")])
    return (FRAUD_INTERCEPT + 0.9 * np.log(np.clip(c["amount_ratio_to_avg"], 0.05, 50.0))
            + 1.1 * risky + 0.8 * remote_entry + 0.5 * ~c["card_present"].astype(bool)
            + 1.0 * c["is_international"] + 1.2 * (c["account_age_days"] < 90)
            + 0.8 * (c["hour_of_day"] < 6) + 0.35 * np.log1p(c["distance_from_home_km"] / 50.0)
            + 0.45 * np.minimum(c["failed_logins_24h"], 6) + 3.0 * (0.7 - c["device_trust_score"]))


def fraud_probability(columns: dict[str, np.ndarray]) -> np.ndarray:
    """P(fraud) per row under the known mechanism."""
    return 1.0 / (1.0 + np.exp(-fraud_logit(columns)))


def draw_labels(columns: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Bernoulli(P(fraud)) labels as int8, from the seed's own label stream."""
    label_seq = np.random.SeedSequence(seed).spawn(3)[2]
    draws = np.random.default_rng(label_seq).random(len(columns["amount"]))
    return (draws < fraud_probability(columns)).astype(np.int8)


def columns_to_matrix(columns: dict[str, np.ndarray]) -> np.ndarray:
    """The model's float32 matrix in contract order (categories as ordinal codes)."""
    return np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in FEATURE_NAMES]).astype(np.float32)


def generate_matrix(n: int, seed: int, drift: Sequence[DriftSpec] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Fast path: (float32 matrix [n, 25], int8 labels), equal to encoding the events."""
    columns = generate_columns(n, seed, drift)
    return columns_to_matrix(columns), draw_labels(columns, seed)


def columns_to_events(columns: dict[str, np.ndarray], seed: int, *, start_time_ms: int = DEFAULT_START_TIME_MS,
                      id_prefix: str = "evt-", mean_gap_ms: float = 5.0) -> list[dict]:
    """Event dicts (Avro ``Event`` field names, Python scalars) from feature columns."""
    return list(iter_events(columns, seed, start_time_ms=start_time_ms, id_prefix=id_prefix,
                            mean_gap_ms=mean_gap_ms))


def iter_events(columns: dict[str, np.ndarray], seed: int, *, start_time_ms: int = DEFAULT_START_TIME_MS,
                id_prefix: str = "evt-", mean_gap_ms: float = 5.0, chunk: int = 50_000) -> Iterator[dict]:
    """The events of :func:`columns_to_events`, the same ones, built ``chunk`` at a time: a run of
    millions of events holds only the columns, not millions of dicts."""
    n = len(columns["amount"])
    id_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])
    gaps = 1 + np.floor(id_rng.exponential(mean_gap_ms, n)).astype(np.int64)
    times = start_time_ms + np.cumsum(gaps) - (gaps[0] if n else 0)
    halves = id_rng.integers(0, 2**63, size=(n, 2))
    fields = ["event_id", "event_time", "correlation_id", *FEATURE_NAMES]
    for begin in range(0, n, chunk):
        end = min(n, begin + chunk)
        values = [[f"{id_prefix}{i:09d}" for i in range(begin, end)], times[begin:end].tolist(),
                  [f"{a:016x}{b:016x}" for a, b in halves[begin:end].tolist()]]
        for feature in FEATURES:
            column = columns[feature.name][begin:end]
            if feature.categories is not None:
                values.append(np.asarray(feature.categories, dtype=object)[column].tolist())
            else:
                values.append(column.astype({"int": np.int64, "boolean": bool}.get(feature.dtype,
                                                                                  np.float64)).tolist())
        yield from (dict(zip(fields, row)) for row in zip(*values))


def generate_events(n: int, seed: int, *, start_time_ms: int = DEFAULT_START_TIME_MS, id_prefix: str = "evt-",
                    drift: Sequence[DriftSpec] = (), mean_gap_ms: float = 5.0) -> list[dict]:
    """``n`` Event dicts with unique ids ``f"{id_prefix}{i:09d}"`` and increasing event_time."""
    return columns_to_events(generate_columns(n, seed, drift), seed, start_time_ms=start_time_ms,
                             id_prefix=id_prefix, mean_gap_ms=mean_gap_ms)


def generate_labelled(n: int, seed: int, *, drift: Sequence[DriftSpec] = (),
                      **event_options) -> tuple[list[dict], np.ndarray]:
    """(events, int8 fraud labels) drawn from the known mechanism; options as :func:`generate_events`."""
    columns = generate_columns(n, seed, drift)
    return columns_to_events(columns, seed, **event_options), draw_labels(columns, seed)
