"""Model versions of one name, loaded lazily in the worker and kept: what a routed batch scores with.

Pure Python: the loader (registry + ONNX Runtime in the job, fakes in tests) is injected. A version
whose feature contract differs from the job's is refused: the job decodes and checks records
against one contract, so every version it routes to must read the same features.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from models.card import ModelCard
from streamscore.foundation.errors import ModelError


@dataclass(frozen=True)
class VersionModel:
    """One loaded version: its card (threshold, version), predictor and optional prediction cache."""

    card: ModelCard
    predictor: object  # has predict_batch(matrix) -> scores
    cache: object | None = None


class ModelPool:
    def __init__(self, base: VersionModel, loader: Callable[[str], VersionModel]) -> None:
        self.base = base
        self._loader = loader
        self._loaded: dict[str, VersionModel] = {base.card.version: base}
        self._refused: dict[str, str] = {}  # version -> why: another contract, which no retry changes
        self._lock = threading.Lock()

    def get(self, version: str) -> VersionModel:
        """The version, loading it on first use; a failed load raises ModelError (and is retried next time, but
        a version of another feature contract is refused for good)."""
        found = self._loaded.get(version)
        if found is not None:
            return found
        with self._lock:
            if version in self._loaded:
                return self._loaded[version]
            if version in self._refused:  # not loaded (a session, an engine) again for every batch
                raise ModelError(self._refused[version])
            try:
                loaded = self._loader(version)
            except Exception as exc:
                raise ModelError(f"model {self.base.card.name}:{version} cannot be loaded: "
                                 f"{type(exc).__name__}: {str(exc)[:300]}") from exc
            if loaded.card.features != self.base.card.features:
                self._refused[version] = (f"model {loaded.card.ref} has another feature contract than "
                                          f"{self.base.card.ref}: a job routes only between versions of one contract")
                raise ModelError(self._refused[version])
            self._loaded[version] = loaded
            return loaded

    @property
    def loaded_versions(self) -> list[str]:
        return sorted(self._loaded)
