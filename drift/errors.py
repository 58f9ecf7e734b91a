"""The drift package's error type (a :class:`~streamscore.foundation.errors.StreamscoreError`)."""

from streamscore.foundation.errors import StreamscoreError


class DriftError(StreamscoreError):
    """Bad input to a drift statistic, setting or detector (empty window, wrong shape, ...)."""
