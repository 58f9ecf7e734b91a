"""``streamscore models optimize``: a faster registered version of a model, gated on accuracy.

A transformation (``int8``, ``fp16``, ``opt-basic|opt-extended|opt-all``) of
``name:X.Y.Z`` is registered as ``name:X.Y.Z+<transformation>``: semver *build
metadata*, so it has the parent's precedence, ``ModelRegistry.latest`` keeps
returning the parent, and a job runs the variant only when named explicitly
(``--model fraud-mlp:1.0.0+int8``). A variant of a variant appends with a dot
(``1.0.0+opt-all.int8``).

Steps: load the parent (registry checks), transform, score a held-out sample
freshly drawn from :mod:`models.demo_data` (a seed no training used) with
parent and variant, and **refuse** when the AUC drops more than
``max_auc_drop`` (nothing is written). Then time both side by side in one run
(interleaved rounds, one intra-op thread each, as a Flink slot runs them) at
batch 1 and the default micro-batch 512, and write the variant with a card
that records parent, transformation, accuracy delta, gate and speed-ups.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models import optimize_bench as bench
from models import optimize_transforms as transforms
from models.card import ModelCard
from models.drift_profile import score_profile
from models.registry import CARD_FILE, ONNX_FILE, LoadedModel, ModelRef, ModelRegistry, sha256_hex
from models.runtime import OnnxScorer
from streamscore.foundation.errors import ModelError

TRANSFORMATIONS = ("int8", "fp16", "opt-basic", "opt-extended", "opt-all")
EVAL_SEED, CALIBRATION_SEED = 90_210_001, 90_210_002  # no model is trained on these draws
DEFAULT_BATCH_SIZE = 512


@dataclass(frozen=True)
class OptimizeOptions:
    transformation: str
    max_auc_drop: float = 0.01
    eval_rows: int = 20_000
    eval_seed: int = EVAL_SEED
    calibration_rows: int = 2_048
    calibration_seed: int = CALIBRATION_SEED
    bench_batch_sizes: tuple[int, ...] = (1, DEFAULT_BATCH_SIZE)
    bench_seconds: float = 0.5
    bench_rounds: int = 3
    force: bool = False

    def __post_init__(self) -> None:
        if self.transformation not in TRANSFORMATIONS:
            raise ModelError(f"transformation {self.transformation!r} is not one of {list(TRANSFORMATIONS)}")
        if self.eval_rows < 100 or self.calibration_rows < 1 or self.bench_rounds < 1:
            raise ModelError("optimize needs eval_rows >= 100, calibration_rows >= 1, bench_rounds >= 1")


def variant_version(parent_version: str, transformation: str) -> str:
    """``1.0.0`` + ``int8`` -> ``1.0.0+int8``; ``1.0.0+opt-all`` + ``int8`` -> ``1.0.0+opt-all.int8``."""
    return f"{parent_version}{'.' if '+' in parent_version else '+'}{transformation}"


def _transform(parent: LoadedModel, options: OptimizeOptions) -> tuple[bytes, dict[str, Any]]:
    kind = options.transformation
    if kind.startswith("opt-"):
        return transforms.graph_optimized(parent.onnx_bytes, kind.removeprefix("opt-"))
    transforms.check_convertible(parent.onnx_bytes, str(parent.ref), kind)
    if kind == "fp16":
        return transforms.to_fp16(parent.onnx_bytes)
    calibration, _ = bench.held_out_sample(options.calibration_rows, options.calibration_seed)
    onnx_bytes, described = transforms.to_int8(parent.onnx_bytes, parent.card.onnx_input.name, calibration)
    return onnx_bytes, {**described, "calibration": {"rows": options.calibration_rows,
                                                     "seed": options.calibration_seed,
                                                     "source": "models.demo_data.generate_matrix"}}


def _candidate(parent: LoadedModel, version: str, onnx_bytes: bytes) -> LoadedModel:
    card = dataclasses.replace(parent.card, version=version, onnx_sha256=sha256_hex(onnx_bytes))
    ref = ModelRef(card.name, version)
    return LoadedModel(ref=ref, card=card, onnx_bytes=onnx_bytes, directory=parent.directory.parent / version)


def _gate(accuracy: dict[str, Any], options: OptimizeOptions, ref: str) -> dict[str, Any]:
    """Refuse a variant whose AUC drops more than allowed, or whose scores are not all finite (a NaN score, an
    fp16 overflow say, makes the AUC NaN, and NaN > limit is False: it would pass unchecked)."""
    if accuracy["non_finite_scores"]:
        raise ModelError(f"{ref} not registered: {accuracy['non_finite_scores']} of its {accuracy['rows']} held-out "
                         f"scores (seed {options.eval_seed}) are NaN or infinite")
    if not math.isfinite(accuracy["auc_drop"]) or accuracy["auc_drop"] > options.max_auc_drop:
        raise ModelError(
            f"{ref} not registered: AUC {accuracy['parent_auc']:.4f} -> {accuracy['auc']:.4f} on "
            f"{accuracy['rows']} held-out rows (seed {options.eval_seed}) drops {accuracy['auc_drop']:.4f}, "
            f"more than --max-auc-drop {options.max_auc_drop:.4f}")
    return {"max_auc_drop": options.max_auc_drop, "passed": True}


def _library_versions() -> dict[str, str]:
    names = ("onnx", "onnxruntime", "onnxconverter-common")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _write(registry: ModelRegistry, card: ModelCard, onnx_bytes: bytes, force: bool) -> Path:
    directory = registry.directory(card.name, card.version)
    if directory.exists():
        if not force:
            raise ModelError(f"{card.ref} already exists in {directory}; pass --force to replace it")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / ONNX_FILE).write_bytes(onnx_bytes)
    (directory / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
    return directory


def optimize_model(ref: str, options: OptimizeOptions, registry_root: str | Path | None = None) -> dict[str, Any]:
    """Transform, gate, measure and register ``ref``'s variant; returns its card's ``optimization`` block."""
    registry = ModelRegistry(registry_root)
    parent = registry.load(ref)
    version = variant_version(parent.ref.version, options.transformation)
    onnx_bytes, described = _transform(parent, options)
    onnx_bytes = transforms.stamp(onnx_bytes, parent.card.name, version, str(parent.ref))
    child = _candidate(parent, version, onnx_bytes)
    parent_scorer, child_scorer = OnnxScorer(parent), OnnxScorer(child)
    matrix, labels = bench.held_out_sample(options.eval_rows, options.eval_seed)
    parent_scores, child_scores = parent_scorer.predict_batch(matrix), child_scorer.predict_batch(matrix)
    accuracy = bench.accuracy_delta(labels, parent_scores, child_scores, parent.card.outputs.threshold)
    gate = _gate({**accuracy}, options, str(child.ref))
    measured = bench.side_by_side({"parent": parent_scorer.predict_batch, "child": child_scorer.predict_batch},
                                  matrix, options.bench_batch_sizes, options.bench_seconds, options.bench_rounds)
    optimization = {
        "parent": str(parent.ref), "parent_sha256": parent.card.onnx_sha256,
        "transformation": options.transformation, **described,
        "accuracy": {**accuracy, "sample": "models.demo_data.generate_matrix", "seed": options.eval_seed},
        "gate": gate,
        "speed": {**bench.speedup_summary(measured, "parent", "child"), "provider": child_scorer.providers[0],
                  "intra_op_threads": 1, "rounds": options.bench_rounds, "seconds_per_measure": options.bench_seconds,
                  "measured": "parent and variant side by side in one run, interleaved; median rows/s"},
        "size_bytes": {"parent": len(parent.onnx_bytes), "model": len(onnx_bytes)},
        "library_versions": _library_versions(),
        "drift_profile_score": "the variant's scores on the held-out sample (features: the parent's profile)",
    }
    card = dataclasses.replace(child.card, optimization=optimization,
                               drift_profile={**parent.card.drift_profile, "score": score_profile(child_scores)},
                               description=f"{parent.card.description} Optimized: {options.transformation} "
                                           f"of {parent.ref}.")
    directory = _write(registry, card, onnx_bytes, options.force)
    registry.load(card.name, card.version)  # round trip: checksum and graph checks
    return {"ref": card.ref, "directory": str(directory), **optimization}
