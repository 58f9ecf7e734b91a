"""Rows/s of the model variants side by side, on the CPU, one intra-op thread (one Flink slot).

``.venv/bin/python -m benchmarks.model_variants [--seconds 0.5] [--rounds 3] [--json FILE]``

Rows: ``fraud:1.0.0`` (trees), ``fraud-mlp:1.0.0`` fp32 (graph optimization ``all`` at load, the
scorer's default, and ``disable``), its INT8 variant and its offline ``opt-all`` variant, at
batch 1, 64 and 512; ratios against the fp32 model of the same family. Measured interleaved
(every variant once per round, median of rounds), so a busy machine slows all alike. Variants
missing from ``models/`` are built first into a temporary registry (``models optimize``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from models.optimize import OptimizeOptions, optimize_model
from models.optimize_bench import held_out_sample, side_by_side
from models.registry import DEFAULT_ROOT, ModelRegistry, load_model
from models.runtime import OnnxScorer

BATCH_SIZES = (1, 64, 512)
MLP = "fraud-mlp:1.0.0"
VARIANTS = {"int8": "fraud-mlp:1.0.0+int8", "opt-all": "fraud-mlp:1.0.0+opt-all"}
# label -> (model ref, graph optimization at load, ratio against)
ROWS = {
    "fraud fp32 (trees)": ("fraud:1.0.0", "all", "fraud fp32 (trees)"),
    "fraud-mlp fp32": (MLP, "all", "fraud-mlp fp32"),
    "fraud-mlp fp32, no graph opt": (MLP, "disable", "fraud-mlp fp32"),
    "fraud-mlp int8": (VARIANTS["int8"], "all", "fraud-mlp fp32"),
    "fraud-mlp opt-all (offline)": (VARIANTS["opt-all"], "all", "fraud-mlp fp32"),
}


def _registry_with_variants(tmp: Path) -> Path:
    """``models/`` when it holds every variant, else a temporary copy where the missing ones are built."""
    present = {str(ref) for ref in ModelRegistry().list_models()}
    missing = [ref for ref in VARIANTS.values() if ref not in present]
    if not missing:
        return DEFAULT_ROOT
    for name in ("fraud", "fraud-mlp"):
        shutil.copytree(DEFAULT_ROOT / name, tmp / name, dirs_exist_ok=True)
    for ref in missing:
        kind = ref.split("+", 1)[1]
        print(f"building {ref} into {tmp} ...")
        optimize_model(MLP, OptimizeOptions(kind, bench_seconds=0.05, bench_rounds=1, eval_rows=5_000), tmp)
    return tmp


def measure(seconds: float, rounds: int) -> dict[str, dict[int, float]]:
    with tempfile.TemporaryDirectory(prefix="streamscore-variants-") as tmp:
        root = _registry_with_variants(Path(tmp))
        predictors = {label: OnnxScorer(load_model(ref, root), graph_optimization=level).predict_batch
                      for label, (ref, level, _) in ROWS.items()}
        matrix, _ = held_out_sample(8_192, seed=4242)
        return side_by_side(predictors, matrix, BATCH_SIZES, seconds, rounds)


def table(measured: dict[str, dict[int, float]]) -> str:
    head = "".join(f"{f'batch {b} rows/s':>17s}{'ratio':>7s}" for b in BATCH_SIZES)
    lines = [f"{'model':30s}{head}"]
    for label, (_, _, base) in ROWS.items():
        cells = "".join(f"{measured[label][b]:17,.0f}{measured[label][b] / measured[base][b]:6.2f}x"
                        for b in BATCH_SIZES)
        lines.append(f"{label:30s}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.model_variants", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="per measurement (default 0.5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, median taken (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    measured = measure(args.seconds, args.rounds)
    print("CPUExecutionProvider, 1 intra-op thread; ratio = rows/s / rows/s of the fp32 model of the same family")
    print(table(measured))
    if args.json:
        args.json.write_text(json.dumps({label: {str(b): v for b, v in per.items()}
                                         for label, per in measured.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
