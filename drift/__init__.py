"""Drift monitoring: reference profiles of a model's training data (and, later, statistics)."""

from drift.profile import build_profile, load_profile

__all__ = ["build_profile", "load_profile"]
