"""Benchmark target checks are stored as JSON booleans and numbers, not as the strings numpy prints."""

from __future__ import annotations

import json

import numpy as np

from benchmarks.report import Check


def test_a_check_from_numpy_values_is_plain_json():
    ratio = np.float64(0.21)
    check = Check("streamscore EO / flink-passthrough throughput", ratio, ">= 0.5x", ratio >= 0.5)
    stored = json.loads(json.dumps(check.__dict__, default=str))
    assert stored["passed"] is False and stored["value"] == 0.21
    assert check.line() == "MISS  streamscore EO / flink-passthrough throughput: 0.21 (target >= 0.5x)"
