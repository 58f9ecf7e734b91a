"""The worker's pool of model versions: loaded once, a failed load retried, another contract refused for good."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jobs.model_pool import ModelPool, VersionModel
from streamscore.foundation.errors import ModelError


def _card(version: str, features=("amount", "hour")):
    return SimpleNamespace(version=version, features=features, ref=f"fraud:{version}", name="fraud")


def test_versions_load_once_a_failed_load_is_retried_and_another_contract_is_refused_for_good():
    loads: list[str] = []
    failures = {"1.1.0": 1}

    def loader(version):
        loads.append(version)
        if failures.get(version):
            failures[version] -= 1
            raise OSError("registry folder briefly unreadable")
        return VersionModel(_card(version, ("amount",) if version == "2.0.0" else ("amount", "hour")), object())

    pool = ModelPool(VersionModel(_card("1.0.0"), object()), loader)
    with pytest.raises(ModelError, match=r"fraud:1\.1\.0 cannot be loaded: OSError"):
        pool.get("1.1.0")
    assert pool.get("1.1.0").card.version == "1.1.0" and pool.get("1.1.0") is pool.get("1.1.0")
    for _ in range(3):
        with pytest.raises(ModelError, match=r"fraud:2\.0\.0 has another feature contract than fraud:1\.0\.0"):
            pool.get("2.0.0")
    assert loads == ["1.1.0", "1.1.0", "2.0.0"]  # 2.0.0 loaded once, not once a batch
    assert pool.loaded_versions == ["1.0.0", "1.1.0"]
