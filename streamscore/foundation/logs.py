"""structlog configuration: JSON lines in production, a console renderer in development; one place."""

from __future__ import annotations

import logging
import os
import sys

import structlog

_configured = False


class _CurrentStream:
    """Writes to whatever ``sys.stdout`` / ``sys.stderr`` is *now* (tests and PyFlink replace them),
    not to the object that was there when logging was configured."""

    def __init__(self, name: str):
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        stream = getattr(sys, self.name)
        if hasattr(stream, "flush"):
            stream.flush()


def configure_logging(fmt: str | None = None, level: str | None = None, stream: str = "stderr") -> None:
    """Configure structlog once. ``fmt``: 'json' or 'console' (env STREAMSCORE_LOG_FORMAT, default json).

    ``stream``: 'stderr' (the CLI: stdout stays for its output) or 'stdout' (Flink Python workers,
    whose stdout becomes INFO lines of the TaskManager log; their stderr becomes ERROR lines).
    """
    global _configured
    if _configured:
        return
    fmt = (fmt or os.environ.get("STREAMSCORE_LOG_FORMAT", "json")).lower()
    level_name = (level or os.environ.get("STREAMSCORE_LOG_LEVEL", "info")).upper()
    renderer = structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level_name, logging.INFO)),
        # WriteLogger, not PrintLogger: PyFlink workers replace print() with one lacking flush=.
        logger_factory=structlog.WriteLoggerFactory(file=_CurrentStream("stdout" if stream == "stdout" else "stderr")),
        cache_logger_on_first_use=True,
    )
    _configured = True


def get_logger(name: str, **bound):
    configure_logging()
    return structlog.get_logger(name).bind(**bound)
