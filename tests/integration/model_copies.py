"""A shipped model registered again under another name in a temporary registry, so a test can publish
lifecycle messages and register new versions of it without touching the shipped ones."""

from __future__ import annotations

import json
from pathlib import Path

from models.register import register_model
from models.registry import DEFAULT_ROOT


def register_renamed(source: str, name: str, folder: Path) -> Path:
    """``source`` (``NAME/VERSION`` under models/) registered as ``name`` in ``folder/registry``; that path."""
    shipped = DEFAULT_ROOT / source
    card = json.loads((shipped / "model.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "name": name}))
    register_model(shipped / "model.onnx", folder / "card.json", folder / "registry")
    return folder / "registry"
