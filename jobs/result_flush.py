"""Results of each batch back to the JVM as soon as they are encoded, not once a second (an experiment).

PyFlink's Python worker writes a batch's results into an output stream that it hands to Beam's data channel
only every second (``BeamTimeBasedOutputStream``: a ``PeriodicThread`` of period 1 s raises a flag that the next
write obeys) or past 10 MB, so within a bundle the JVM receives no result until the bundle ends. Shortening
that thread's period makes each batch's results flush with the next write after it.
"""

from __future__ import annotations

import threading


def flush_results_every(period_s: float) -> int:
    """Set the period of the worker's result-flush threads; the number of threads found (0: none yet, or a
    PyFlink whose runtime differs: nothing changed)."""
    try:
        from pyflink.fn_execution.utils.operation_utils import PeriodicThread
    except ImportError:
        return 0
    found = 0
    for thread in threading.enumerate():
        if isinstance(thread, PeriodicThread) and getattr(thread._function, "__name__", "") == "notify_flush":
            thread._interval = period_s
            found += 1
    return found
