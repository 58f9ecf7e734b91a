"""The ``streamscore models optimize`` and ``models build-demo --heavy`` arguments and their handling."""

from __future__ import annotations

import argparse
import json

from streamscore.errors import StreamscoreError


def add_arguments(models: argparse.ArgumentParser) -> None:
    """Options of ``models optimize REF`` (one transformation per call) and ``build-demo --heavy``."""
    models.add_argument("--heavy", action="store_true", help="build-demo: the MLP fraud-mlp:1.0.0")
    models.add_argument("--registry-dir", default=None, help="registry root (default: models/)")
    which = models.add_mutually_exclusive_group()
    which.add_argument("--int8", action="store_true", help="optimize: static INT8 quantization")
    which.add_argument("--fp16", action="store_true", help="optimize: FP16 conversion (for GPU providers)")
    which.add_argument("--opt-level", choices=["basic", "extended", "all"], help="optimize: ONNX Runtime graph level")
    models.add_argument("--max-auc-drop", type=float, default=0.01,
                        help="optimize: refuse a version whose held-out AUC drops more (default 0.01)")
    models.add_argument("--eval-rows", type=int, default=20_000, help="optimize: held-out rows (default 20000)")
    models.add_argument("--force", action="store_true", help="optimize: replace an existing variant")


def optimize(args: argparse.Namespace) -> int:
    from models.optimize import OptimizeOptions, optimize_model

    if not args.ref:
        raise StreamscoreError("models optimize needs NAME:VERSION")
    kind = "int8" if args.int8 else "fp16" if args.fp16 else f"opt-{args.opt_level}" if args.opt_level else None
    if kind is None:
        raise StreamscoreError("models optimize needs one of --int8, --fp16, --opt-level LEVEL")
    options = OptimizeOptions(transformation=kind, max_auc_drop=args.max_auc_drop, eval_rows=args.eval_rows,
                              force=args.force)
    print(json.dumps(optimize_model(args.ref, options, args.registry_dir), indent=2))
    return 0


def build_demo(args: argparse.Namespace) -> int:
    if args.heavy:
        from models.build_heavy import build_heavy as build
    else:
        from models.build_demo import build_demo as build
    print(json.dumps(build(args.registry_dir), indent=2, default=str))
    return 0
