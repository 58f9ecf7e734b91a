"""What this machine learnt from a Schema Registry, kept on disk so a later command can go on without it.

A registry's ids never change meaning: id 7 is one schema for good, and a schema registered under a
subject keeps its id. So a command that registered or read an id writes it here, and a later command
in a fresh process (a rollback published while the registry is down, a label file produced, the
alerts read back) takes the id from here when the registry does not answer. Only then: a registry
that answers is always asked first, and submitting a job never falls back (it refuses, clearly).

The file (``<STREAMSCORE_HOME>/registry-ids.json``) is keyed by the registry's URL. A registry whose
storage was wiped and rebuilt at the same URL can give the same schema another id: delete the file
with its storage.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()  # one process's threads write one at a time; processes replace the file whole


def fingerprint(schema_text: str) -> str:
    """The SHA-256 of a schema's text as registered (the same document registers as the same text)."""
    return hashlib.sha256(schema_text.encode()).hexdigest()


class SchemaMemory:
    """The ids one registry (``url``) gave, in ``path``: subject + schema -> id, and id -> schema."""

    def __init__(self, path: Path, url: str):
        self.path, self.url = path, url

    def keep_id(self, subject: str, schema_text: str, schema_id: int) -> None:
        """Remember that ``schema_text`` is ``schema_id`` under ``subject`` (and what the id reads as)."""
        def change(entry: dict) -> None:
            entry["subjects"].setdefault(subject, {})[fingerprint(schema_text)] = schema_id
            entry["schemas"][str(schema_id)] = schema_text
        self._update(change)

    def keep_schema(self, schema_id: int, schema_text: str) -> None:
        """Remember what ``schema_id`` reads as."""
        self._update(lambda entry: entry["schemas"].__setitem__(str(schema_id), schema_text))

    def id_of(self, subject: str, schema_text: str) -> int | None:
        """The id ``schema_text`` was given under ``subject``, if this machine saw it."""
        return self._entry()["subjects"].get(subject, {}).get(fingerprint(schema_text))

    def schema_of(self, schema_id: int) -> Any | None:
        """The schema (parsed JSON) of ``schema_id``, if this machine saw it."""
        text = self._entry()["schemas"].get(str(schema_id))
        return json.loads(text) if text is not None else None

    def _entry(self) -> dict:
        return _entry_of(_read(self.path), self.url)

    def _update(self, change) -> None:
        """Best effort: a home that cannot be written (read-only, full) only means nothing is remembered."""
        try:
            self._replace(change)
        except OSError:
            return

    def _replace(self, change) -> None:
        with _LOCK:
            everything = _read(self.path)
            entry = _entry_of(everything, self.url)
            before = json.dumps(entry, sort_keys=True)
            change(entry)
            if json.dumps(entry, sort_keys=True) == before:
                return
            everything[self.url] = entry
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}")
            scratch.write_text(json.dumps(everything, indent=1, sort_keys=True))
            os.replace(scratch, self.path)  # a reader sees the old file or the new one, never half of one


def _entry_of(everything: dict, url: str) -> dict:
    """The url's entry; one of another shape (edited by hand, from another version) counts as empty."""
    entry = everything.get(url)
    ok = isinstance(entry, dict) and all(isinstance(entry.get(k), dict) for k in ("subjects", "schemas"))
    if ok and all(isinstance(v, dict) for v in entry["subjects"].values()):
        return entry
    return {"subjects": {}, "schemas": {}}


def _read(path: Path) -> dict:
    try:
        got = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: nothing remembered (the registry is asked)
        return {}
    return got if isinstance(got, dict) else {}
