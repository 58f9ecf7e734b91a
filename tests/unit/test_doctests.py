"""Docstring examples run: every project module with a ``>>>`` example is doctested here."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("streamscore", "schemas", "models", "drift", "connectors", "jobs", "benchmarks")


def modules_with_examples() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if ">>> " in path.read_text():
                parts = path.relative_to(REPO).with_suffix("").parts
                found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def test_the_examples_are_found():
    assert "drift.stats" in modules_with_examples()


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_docstring_examples_hold(module_name):
    results = doctest.testmod(importlib.import_module(module_name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert results.attempted > 0, f"{module_name}: examples found in the file but none collected"
    assert results.failed == 0, f"{module_name}: {results.failed} of {results.attempted} examples failed"
