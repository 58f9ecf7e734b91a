"""The checkpointed state of a :class:`~drift.decision.DriftDetector`: versioned JSON.

The sidecar keeps the detector's state between windows in Flink state, so it outlives
the code that wrote it (savepoints). It is plain JSON, written and read field by
field, so renaming or moving a class never breaks a restore (version 1)::

    {"format": "drift-detector", "version": 1,
     "episodes": {"<feature>": {"tier": 1, "clean": 0}, ...},
     "incident": {"tier": 1, "clean": 0, "cooldown": 3, "last_trigger": 1, "history": [1, 0, 1]},
     "next_window_id": 7}

Tiers are their :class:`~drift.settings.Tier` numbers (0 NONE .. 3 SEVERE); ``clean``
and ``cooldown`` are window counts; ``history`` is the tiers of the last judged windows,
oldest first. Anything else -- the pickle that earlier builds wrote included, which is
never unpickled -- is refused with a :class:`~drift.errors.DriftError` of one line.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from drift.errors import DriftError
from drift.settings import Tier

STATE_FORMAT = "drift-detector"
STATE_VERSION = 1
_FRESH = "start the drift sidecar fresh, without that savepoint"
LEGACY_PICKLE_MESSAGE = ("drift detector state is in the pre-JSON pickle format of older streamscore builds "
                         f"(savepoint from an older version): {_FRESH}")
_KINDS = {"object": dict, "array": list}


def encode_state(episodes: Mapping, incident, next_window_id: int) -> bytes:
    """UTF-8 JSON of the detector's state; ``episodes`` maps a feature to an object with ``tier`` and
    ``clean``, ``incident`` has ``tier``, ``clean``, ``cooldown``, ``last_trigger`` and ``history``."""
    return json.dumps({
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "episodes": {str(name): {"tier": int(episode.tier), "clean": int(episode.clean)}
                     for name, episode in episodes.items()},
        "incident": {"tier": int(incident.tier), "clean": int(incident.clean), "cooldown": int(incident.cooldown),
                     "last_trigger": int(incident.last_trigger), "history": [int(t) for t in incident.history]},
        "next_window_id": int(next_window_id),
    }).encode("utf-8")


def decode_state(snapshot) -> tuple[dict[str, dict], dict, int]:
    """``(episodes, incident, next_window_id)`` of an :func:`encode_state` snapshot, checked field by
    field: ``{feature: {"tier": Tier, "clean": int}}``, ``{"tier": Tier, "clean": int, "cooldown": int,
    "last_trigger": Tier, "history": [Tier, ...]}`` (keys as the detector's fields) and an int."""
    raw = _load(snapshot)
    episodes = {}
    for name, episode in _field(raw, "episodes", "", "object").items():
        where = f"episodes[{name!r}]"
        _check(episode, where, "object")
        episodes[name] = {"tier": _field(episode, "tier", where, "tier"),
                          "clean": _field(episode, "clean", where, "count")}
    fields = _field(raw, "incident", "", "object")
    incident = {key: _field(fields, key, "incident", kind) for key, kind in
                (("tier", "tier"), ("clean", "count"), ("cooldown", "count"), ("last_trigger", "tier"))}
    history = _field(fields, "history", "incident", "array")
    incident["history"] = [_check(tier, f"incident.history[{i}]", "tier") for i, tier in enumerate(history)]
    return episodes, incident, _field(raw, "next_window_id", "", "id")


def _load(snapshot) -> dict:
    """The JSON object of a snapshot of the known format and version (else a one-line DriftError)."""
    if not isinstance(snapshot, bytes | bytearray | memoryview):
        raise DriftError(f"drift detector state must be bytes, not {type(snapshot).__name__}")
    data = bytes(snapshot)
    if data[:1] == b"\x80":  # every pickle of protocol 2 or later starts so; JSON never does
        raise DriftError(LEGACY_PICKLE_MESSAGE)
    try:
        raw = json.loads(data.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError alike
        raise DriftError(f"drift detector state is not JSON (nor a known older format): {_FRESH}") from exc
    found = raw.get("format") if isinstance(raw, dict) else None
    if found != STATE_FORMAT:
        raise DriftError(f"drift detector state is not a {STATE_FORMAT!r} snapshot (format {found!r:.60})")
    version = raw.get("version")
    if type(version) is not int or version != STATE_VERSION:
        raise DriftError(f"drift detector state has version {version!r:.60}, but this streamscore reads only "
                         f"version {STATE_VERSION} (savepoint from another version?): {_FRESH}")
    return raw


def _field(parent: dict, key: str, where: str, kind: str):
    path = f"{where}.{key}" if where else key
    if key not in parent:
        raise DriftError(f"drift detector state is malformed: {path} is missing")
    return _check(parent[key], path, kind)


def _check(value, path: str, kind: str):
    """``value`` if it is a JSON ``kind`` (object, array, count >= 0, id, tier 0-3), as a Tier for a tier."""
    if kind in _KINDS:
        ok = isinstance(value, _KINDS[kind])
    else:  # bool is an int subclass; JSON true is no count
        ok = type(value) is int and (kind == "id" or value >= 0) and (kind != "tier" or value <= Tier.SEVERE)
    if not ok:
        article = "an" if kind[0] in "aeiou" else "a"
        raise DriftError(f"drift detector state is malformed: {path} is {value!r:.60}, not {article} {kind}")
    return Tier(value) if kind == "tier" else value
