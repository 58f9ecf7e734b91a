"""The drift package's error type (a :class:`~streamscore.errors.StreamscoreError`)."""

from streamscore.errors import StreamscoreError


class DriftError(StreamscoreError):
    """Bad input to a drift statistic, setting or detector (empty window, wrong shape, ...)."""
