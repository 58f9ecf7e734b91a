"""The drift sidecar on the real stack: quiet before injected drift, one alert episode and one trigger after."""

from __future__ import annotations

import pytest
from drift_runs import assert_one_episode_and_trigger, run_sidecars

pytestmark = pytest.mark.integration


def test_injected_drift_raises_one_alert_episode_and_one_trigger_after_it_starts(settings, fresh_topics):
    """Count windows of 1000 events. Event-time windows (2 s, 10,000 events at 5,000/s) are checked the
    same way in ``test_scale_out.py``, at parallelism 1 and 2 on the same events."""
    found, drift_started_ms = run_sidecars(settings, fresh_topics, {"count": {"window_kind": "count"}})
    assert_one_episode_and_trigger("count", *found["count"], drift_started_ms)
