"""GPU check: both demo models on TensorRT, CUDA and CPU; scores against the CPU's; rows/s per batch size.

``python -m benchmarks.gpu_check [--seconds 0.3] [--budget-s 420]`` (``benchmarks/gpu_check.sh`` wraps it)

For each model (``fraud:1.0.0`` trees, ``fraud-mlp:1.0.0`` MLP, and ``fraud-mlp:1.0.0+fp16`` when
registered) and each provider setting the machine has (``cpu``, ``cuda``, ``trt``, ``trt-fp16``), it
loads an :class:`~models.runtime.OnnxScorer` (TensorRT: engine cache under a temporary directory,
one shape profile for batch 1..4096; GPU: IO binding), names the provider that actually runs the
session (TensorRT falls back to CUDA/CPU for operators it lacks, e.g. ``ai.onnx.ml`` trees), checks
the scores of 8,192 held-out rows against the CPU's (fp32 within 1e-3, fp16 within 2e-2 and 99 %
label agreement), and measures rows/s at batch 1 to 4096. Prints one table; writes
``$OUT/gpu_check.json`` when ``$OUT`` is set. Without a GPU provider it says
"no GPU provider available" and measures the CPU alone. Exit 1 when a score check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from models.optimize_bench import held_out_sample, rows_per_second
from models.registry import ModelRegistry
from models.runtime import GpuOptions, OnnxScorer

BATCH_SIZES = (1, 8, 64, 256, 512, 1024, 4096)
MODELS = ("fraud:1.0.0", "fraud-mlp:1.0.0", "fraud-mlp:1.0.0+fp16")
CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
# setting -> (providers, TensorRT fp16)
SETTINGS = {"cpu": ([CPU], False), "cuda": ([CUDA, CPU], False),
            "trt": ([TRT, CUDA, CPU], False), "trt-fp16": ([TRT, CUDA, CPU], True)}
FP32_ATOL, FP16_ATOL, FP16_AGREEMENT = 1e-3, 2e-2, 0.99


def usable_settings(available: list[str]) -> list[str]:
    return [name for name, (providers, _) in SETTINGS.items() if providers[0] in available]


def _is_fp16(ref: str, setting: str) -> bool:
    return ref.endswith("+fp16") or setting == "trt-fp16"


def score_check(ref: str, setting: str, scores: np.ndarray, cpu: np.ndarray, threshold: float) -> dict[str, Any]:
    diff = float(np.max(np.abs(scores - cpu)))
    agreement = float(np.mean((scores >= threshold) == (cpu >= threshold)))
    fp16 = _is_fp16(ref, setting)
    passed = diff <= (FP16_ATOL if fp16 else FP32_ATOL) and (not fp16 or agreement >= FP16_AGREEMENT)
    return {"max_abs_diff_vs_cpu": diff, "label_agreement_vs_cpu": agreement, "fp16": fp16, "passed": passed}


def run_one(ref: str, setting: str, matrix: np.ndarray, cpu_scores: np.ndarray | None, seconds: float,
            cache_dir: str) -> dict[str, Any]:
    providers, trt_fp16 = SETTINGS[setting]
    model = ModelRegistry().load(ref)
    began = time.perf_counter()
    scorer = OnnxScorer(model, providers=providers, gpu=GpuOptions(trt_fp16=trt_fp16, trt_cache_dir=cache_dir),
                        warmup_batch_sizes=(1, 512, 4096))
    load_s = time.perf_counter() - began
    scores = scorer.predict_batch(matrix)
    row = {"model": ref, "setting": setting, "provider": scorer.providers[0], "io_binding": scorer.io_binding,
           "load_s": round(load_s, 2), "scores": scores,
           "rows_per_s": {b: round(rows_per_second(scorer.predict_batch, matrix, b, seconds), 1)
                          for b in BATCH_SIZES}}
    if cpu_scores is not None:
        row["check"] = score_check(ref, setting, scores, cpu_scores, model.card.outputs.threshold)
    return row


def run_all(seconds: float, budget_s: float) -> tuple[list[dict[str, Any]], list[str]]:
    available = ort.get_available_providers()
    settings = usable_settings(available)
    present = {str(ref) for ref in ModelRegistry().list_models()}
    matrix, _ = held_out_sample(8_192, seed=31_337)
    rows, began = [], time.monotonic()
    with tempfile.TemporaryDirectory(prefix="streamscore-trt-") as cache_dir:
        for ref in (r for r in MODELS if r in present):
            cpu_scores = None
            for setting in settings:
                if time.monotonic() - began > budget_s:
                    print(f"budget of {budget_s:.0f} s spent: skipping {ref} on {setting}", flush=True)
                    continue
                row = run_one(ref, setting, matrix, cpu_scores, seconds, cache_dir)
                cpu_scores = row["scores"] if setting == "cpu" else cpu_scores
                rows.append(row)
                print(f"  {ref} on {setting}: provider {row['provider']}, load {row['load_s']} s", flush=True)
    return rows, available


def table(rows: list[dict[str, Any]]) -> str:
    head = "".join(f"{b:>10d}" for b in BATCH_SIZES)
    lines = [f"{'model':22s}{'setting':10s}{'provider used':28s}{'check':>24s} | rows/s at batch{head}"]
    for row in rows:
        check = row.get("check")
        verdict = "reference" if check is None else (
            f"{'ok' if check['passed'] else 'FAIL'} diff {check['max_abs_diff_vs_cpu']:.1e}")
        cells = "".join(f"{row['rows_per_s'][b]:10,.0f}" for b in BATCH_SIZES)
        lines.append(f"{row['model']:22s}{row['setting']:10s}{row['provider']:28s}{verdict:>24s} | {'':15s}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="per rows/s measurement (default 0.3)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new runs after (default 420)")
    args = parser.parse_args(argv)
    print(f"onnxruntime {ort.__version__} ({ort.get_device()}), providers: {ort.get_available_providers()}")
    if not any(p in ort.get_available_providers() for p in (CUDA, TRT)):
        print("no GPU provider available: measuring the CPU only", flush=True)
    rows, available = run_all(args.seconds, args.budget_s)
    print(table(rows))
    failed = [f"{r['model']} on {r['setting']}" for r in rows if not r.get("check", {"passed": True})["passed"]]
    if os.environ.get("OUT"):
        report = {"onnxruntime": ort.__version__, "available_providers": available, "batch_sizes": BATCH_SIZES,
                  "rows": [{k: v for k, v in r.items() if k != "scores"} for r in rows], "failed": failed}
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(report, indent=2, default=str))
    if failed:
        print(f"score check FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
