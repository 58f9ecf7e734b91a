"""Argument types of the CLI's number flags: what ``float`` accepts but no flag means (nan, inf, <= 0 where a
duration or a period is asked for) is refused by argparse in one line naming the flag."""

from __future__ import annotations

import argparse
import math


def finite_float(text: str) -> float:
    """A float flag's value; ``nan`` and ``inf`` (which ``float`` takes) are refused."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0 (seconds to wait, a period)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value
