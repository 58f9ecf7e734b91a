"""Job settings travel to Flink as one JSON argument; this reads them back strictly."""

from __future__ import annotations

import json
from dataclasses import asdict, fields, is_dataclass, replace
from typing import Any, get_args

from streamscore.foundation.errors import ConfigError

_MISSING = object()


class JsonJobConfig:
    """Shared by the frozen job configs: JSON in and out, and checked copies. Subclasses set LABEL."""

    LABEL = "job config"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return config_from_json(cls, text, cls.LABEL)

    def with_changes(self, **changes):
        return replace(self, **changes).checked()


def check_choice(name: str, value: object, choices: Any) -> None:
    """Refuse ``value`` unless it is one of the ``Literal`` type ``choices`` (a closed choice declared once)."""
    if value not in get_args(choices):
        raise ConfigError(f"{name} must be one of {', '.join(get_args(choices))}, got {value!r}")


def config_from_json(cls, text: str, label: str, required: tuple[str, ...] = ("bootstrap",)) -> Any:
    """Build the frozen dataclass ``cls`` from JSON: an object, known keys, values typed like the defaults."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{label} is not JSON: {exc.msg}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} must be a JSON object, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{label} has unknown keys {unknown}")
    for name in required:
        if name not in raw:
            raise ConfigError(f"{label} needs {name!r}")
    for name, value in raw.items():
        default = known[name].default
        if is_dataclass(default):  # a nested frozen part (e.g. the client auth): the same strict reading
            raw[name] = _nested(type(default), value, f"{label} {name}")
            continue
        if name == "providers":
            _check_providers(value)
            if value is not None:
                raw[name] = tuple(value)
            continue
        _check_type(name, value, None if default is _dataclass_missing() else default)
    return cls(**raw).checked()


def _nested(cls, value, label: str):
    if not isinstance(value, dict):
        raise ConfigError(f"{label} must be a JSON object, got {type(value).__name__}")
    known = {f.name: f.default for f in fields(cls)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ConfigError(f"{label} has unknown keys {unknown}")
    for name, item in value.items():
        _check_type(f"{label}.{name}", item, known[name])
    return cls(**value)


def _dataclass_missing():
    from dataclasses import MISSING

    return MISSING


def _check_providers(value) -> None:
    if value is not None and (not isinstance(value, list) or not all(isinstance(p, str) for p in value)):
        raise ConfigError(f"providers must be a list of provider names, got {value!r}")


def _check_type(name: str, value, default) -> None:
    """A value must have the type of the field's default (str for required or optional strings)."""
    if value is None and default is None:
        return
    expected = str if default is None or isinstance(default, str) else type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return
    if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
        raise ConfigError(f"{name} must be {expected.__name__}, got {type(value).__name__} {value!r}")
