"""JSON-lines files of events (``produce --input``, ``drift report --input``, a card's training sample):
one JSON object a line, blank lines skipped; anything else is one clear :class:`InputError` naming the
file and line, with its cause kept."""

from __future__ import annotations

import json
from pathlib import Path

from streamscore.foundation.errors import InputError


def read_json_lines(path: str | Path) -> list[dict]:
    """The JSON objects of ``path``, in order."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")  # not splitlines(): U+2028, U+2029 and U+0085 may stand raw in JSON
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"cannot read {path}: not UTF-8 text (byte {exc.start}: {exc.reason}); "
                         f"save it as UTF-8 JSON lines") from exc
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
        except RecursionError as exc:
            raise InputError(f"{path}:{lineno}: JSON nested too deeply to read") from exc
        if not isinstance(record, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records
