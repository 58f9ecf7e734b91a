"""Shadow scoring: a challenger version scores the rows the champion scored, for comparison only.

Called by :class:`jobs.batch_scorer.BatchScorer` after the champion's records are final. It
writes nothing but ``result.shadow_bodies`` and shadow statistics, and all of a batch's shadow
work is committed at the end or not at all: a challenger that cannot load, raises, or returns
garbage costs a counted, logged shadow error, never a change to the champion's output.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from jobs.batch import Batch, PrimaryScores, ValidRows, scored_record
from jobs.model_router import version_groups


@dataclass
class ShadowStats:
    """One challenger's comparison with the champion over one batch."""

    records: int = 0  # shadow records emitted
    agreements: int = 0  # same label as the champion
    bad_scores: int = 0  # rows the challenger gave a non-finite score (no shadow record)
    score_diff_milli: list[float] = field(default_factory=list)  # |challenger - champion| x 1000 per record
    call_us: list[float] = field(default_factory=list)  # wall time per challenger model call


@dataclass(frozen=True)
class ShadowPass:
    """One batch's shadow pass: the scorer (its model pool, its encoder), the batch, its valid rows and
    what the champion said of them."""

    scorer: object  # jobs.batch_scorer.BatchScorer
    batch: Batch
    valid: ValidRows
    primary: PrimaryScores


def score_shadow(shadow_pass: ShadowPass, shadow: list[str | None], result) -> None:
    """Score the valid rows that ``shadow`` names a challenger for (those the champion scored)."""
    bodies: dict[int, bytes] = {}
    stats: dict[str, ShadowStats] = {}
    rows = shadow_pass.valid.rows
    try:
        for version, index in version_groups(shadow):
            index = np.asarray([k for k in index.tolist() if result.is_scored[rows[k]]], dtype=np.intp)
            if len(index):
                stats[version] = _challenge(shadow_pass, version, index, bodies)
    except Exception as exc:  # noqa: BLE001 - the champion's output must never depend on the challenger
        result.shadow_errors += 1
        result.shadow_error = f"{type(exc).__name__}: {str(exc)[:300]}"
        return
    for i, body in bodies.items():
        result.shadow_bodies[i] = body
    result.shadow.update(stats)


def _challenge(shadow_pass: ShadowPass, version: str, index: np.ndarray, bodies: dict[int, bytes]) -> ShadowStats:
    """The challenger ``version`` on valid rows ``index``: its records into ``bodies``, its agreement stats."""
    scorer, valid, primary = shadow_pass.scorer, shadow_pass.valid, shadow_pass.primary
    challenger = scorer.pool.get(version)
    began = time.perf_counter()
    scores = np.asarray(challenger.predictor.predict_batch(valid.matrix[index]), dtype=np.float64)
    elapsed_us = (time.perf_counter() - began) * 1e6
    if scores.shape != (len(index),):
        raise ValueError(f"challenger {version} returned shape {scores.shape} for {len(index)} rows")
    stats = ShadowStats(call_us=[elapsed_us])
    threshold = float(challenger.card.outputs.threshold)
    encode = scorer.wire.shadow.encode_trusted
    for k, score in zip(index.tolist(), scores.tolist()):
        if not math.isfinite(score):
            stats.bad_scores += 1
            continue
        champion = float(primary.scores[k])
        bodies[valid.rows[k]] = encode(scored_record(valid.event(k), challenger.card, score, shadow_pass.batch))
        stats.records += 1
        stats.agreements += int((score >= threshold) == (champion >= float(primary.cards[k].outputs.threshold)))
        stats.score_diff_milli.append(abs(score - champion) * 1000.0)
    return stats
