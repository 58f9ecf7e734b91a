"""The demo fraud model's feature marginals: one draw of every feature column from one generator.

Marginals (clipped into the ranges of :data:`models.demo_data.FEATURES`, so undrifted events
always satisfy the demo model's contract):

* ``customer_age`` ~ Normal(44, 15); ``account_age_days`` ~ Exponential(1100 d)
  capped by adult life; ``card_type`` debit/credit/prepaid 55/38/7 %, each with
  a lognormal ``credit_limit``; ``utilization`` ~ Beta(2, 5).
* ``merchant_category``, ``channel``, ``country`` (10 % of transactions away from
  a home country drawn from the same mix -> ``is_international``) are categorical
  mixes; ``entry_mode`` depends on the channel and ``card_present`` is
  chip/swipe/contactless.
* ``amount`` = ``amount_avg_30d`` (lognormal, median 60) x a per-category
  multiplier x LogNormal(0, 0.8); ``amount_ratio_to_avg`` = amount / average.
* ``hour_of_day`` is a day-time Normal(14, 4) with 12 % uniform night/day noise;
  transaction counts are Poisson; distances lognormal (international ones far);
  ``failed_logins_24h`` and ``chargebacks_12m`` Poisson; ``device_trust_score``
  ~ Beta(8, 2.5); ``merchant_risk_score`` a Beta whose mean rises for risky
  categories.

:mod:`models.demo_data` orders the columns, applies drift and derives labels and events.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_MERCHANT_P = (0.22, 0.06, 0.05, 0.16, 0.11, 0.15, 0.03, 0.015, 0.07, 0.135)
_MERCHANT_AMOUNT = (0.8, 3.0, 4.0, 0.6, 0.7, 1.2, 0.5, 5.0, 0.5, 1.0)
_MERCHANT_RISK_A = (2.0, 4.0, 2.5, 2.0, 2.0, 3.0, 4.5, 4.5, 1.5, 2.5)
_CHANNEL_P = (0.55, 0.28, 0.05, 0.10, 0.02)
_ENTRY_BY_CHANNEL = ((0.55, 0.10, 0.35, 0.0, 0.0), (0.0, 0.0, 0.0, 0.08, 0.92),
                     (0.90, 0.10, 0.0, 0.0, 0.0), (0.0, 0.0, 0.30, 0.0, 0.70),
                     (0.0, 0.0, 0.0, 1.0, 0.0))
_COUNTRY_P = (0.55, 0.08, 0.06, 0.05, 0.05, 0.04, 0.02, 0.04, 0.06, 0.05)
_DAY_P = (0.13, 0.13, 0.14, 0.14, 0.16, 0.17, 0.13)
_LIMIT_MEDIAN = (2_500.0, 5_000.0, 500.0)


def _categorical(rng: np.random.Generator, p: Sequence[float], n: int) -> np.ndarray:
    cumulative = np.cumsum(p)
    return np.minimum(np.searchsorted(cumulative / cumulative[-1], rng.random(n), side="right"),
                      len(p) - 1)


def _draw_customer(rng: np.random.Generator, n: int, c: dict) -> None:
    c["customer_age"] = np.clip(np.rint(rng.normal(44, 15, n)), 18, 95).astype(np.int64)
    adult_days = (c["customer_age"] - 17) * 365
    c["account_age_days"] = np.minimum(np.floor(rng.exponential(1100, n)), adult_days).astype(np.int64)
    c["card_type"] = _categorical(rng, (0.55, 0.38, 0.07), n)
    limit = np.asarray(_LIMIT_MEDIAN)[c["card_type"]] * rng.lognormal(0.0, 0.5, n)
    c["credit_limit"] = np.clip(np.round(limit, -2), 100.0, 100_000.0)
    c["utilization"] = np.round(rng.beta(2.0, 5.0, n), 4)
    c["chargebacks_12m"] = rng.poisson(0.05, n)
    c["amount_avg_30d"] = np.round(np.clip(rng.lognormal(np.log(60.0), 0.7, n), 1.0, 20_000.0), 2)


def _draw_context(rng: np.random.Generator, n: int, c: dict) -> None:
    c["merchant_category"] = merchant = _categorical(rng, _MERCHANT_P, n)
    c["channel"] = channel = _categorical(rng, _CHANNEL_P, n)
    cumulative = np.cumsum(np.asarray(_ENTRY_BY_CHANNEL), axis=1)[channel]
    c["entry_mode"] = np.minimum((rng.random(n)[:, None] >= cumulative).sum(axis=1), 4)
    c["card_present"] = c["entry_mode"] <= 2
    home = _categorical(rng, _COUNTRY_P, n)
    away = _categorical(rng, _COUNTRY_P, n)
    c["country"] = np.where(rng.random(n) < 0.10, away, home)
    c["is_international"] = c["country"] != home
    risk_a = np.asarray(_MERCHANT_RISK_A)[merchant]
    c["merchant_risk_score"] = np.round(rng.beta(risk_a, 10.0 - risk_a), 4)
    night = rng.random(n) < 0.12
    day_hour = np.clip(np.rint(rng.normal(14, 4, n)), 0, 23)
    c["hour_of_day"] = np.where(night, rng.integers(0, 24, n), day_hour).astype(np.int64)
    c["day_of_week"] = _categorical(rng, _DAY_P, n)


def _draw_behaviour(rng: np.random.Generator, n: int, c: dict) -> None:
    multiplier = np.asarray(_MERCHANT_AMOUNT)[c["merchant_category"]]
    amount = c["amount_avg_30d"] * multiplier * rng.lognormal(0.0, 0.8, n)
    c["amount"] = np.round(np.clip(amount, 0.5, 50_000.0), 2)
    c["amount_ratio_to_avg"] = np.round(np.clip(c["amount"] / c["amount_avg_30d"], 0.0, 1_000.0), 4)
    c["txn_count_1h"] = rng.poisson(0.4, n)
    c["txn_count_24h"] = c["txn_count_1h"] + rng.poisson(3.0, n)
    gap_mean = 86_400.0 / (c["txn_count_24h"] + 1.0)
    c["seconds_since_last_txn"] = np.round(np.clip(rng.exponential(gap_mean), 1.0, 3e7), 1)
    intl = c["is_international"]
    home_km = rng.lognormal(np.log(8.0), 1.0, n) + intl * rng.lognormal(np.log(2000.0), 0.7, n)
    c["distance_from_home_km"] = np.round(np.clip(home_km, 0.0, 20_000.0), 3)
    last_km = rng.lognormal(np.log(5.0), 1.2, n) + intl * rng.lognormal(np.log(1500.0), 0.8, n)
    c["distance_from_last_txn_km"] = np.round(np.clip(last_km, 0.0, 20_000.0), 3)
    remote = ~c["card_present"]
    c["failed_logins_24h"] = rng.poisson(np.where(remote, 0.25, 0.05))
    c["device_trust_score"] = np.round(rng.beta(8.0, 2.5, n), 4)


def draw_columns(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Every feature column of ``n`` undrifted transactions, by feature name (category codes as int64)."""
    columns: dict[str, np.ndarray] = {}
    _draw_customer(rng, n, columns)
    _draw_context(rng, n, columns)
    _draw_behaviour(rng, n, columns)
    return columns
