"""The graph transformations behind ``streamscore models optimize``: INT8, FP16, graph optimization.

Each takes the parent's ONNX bytes and returns the new bytes plus a description
for the card. What is *not* transformed is said, not hidden:

- Tree ensembles (``ai.onnx.ml.TreeEnsemble*``, e.g. ``fraud:1.0.0``) have no
  MatMul/Gemm/Conv: ONNX Runtime's quantizer and the float16 converter leave
  them in float32, so INT8/FP16 would register a model identical in work (a
  1.0x "speed-up"). :func:`check_convertible` refuses that with the reason.
- The first layer (the MatMul/Gemm fed by the raw features, its bias Add, and
  any Cast before it) stays float32: it sees raw feature ranges (amounts up to
  1e6) that neither uint8 with one scale per tensor nor float16 (max 65504) hold.
"""

from __future__ import annotations

import importlib.metadata
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from models.runtime import GRAPH_OPTIMIZATION
from streamscore.foundation.errors import ModelError

CONVERTIBLE_OPS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose", "LSTM", "GRU", "Attention"})
CALIBRATION_BATCH = 256


def _model(onnx_bytes: bytes) -> onnx.ModelProto:
    return onnx.load_model_from_string(onnx_bytes)


def check_convertible(onnx_bytes: bytes, ref: str, transformation: str) -> None:
    """Refuse INT8/FP16 of a graph whose work is in operators they leave in float32."""
    ops = [node.op_type for node in _model(onnx_bytes).graph.node]
    if any(op in CONVERTIBLE_OPS for op in ops):
        return
    trees = sorted({op for op in ops if op.startswith("TreeEnsemble")})
    where = (f"its work is in ai.onnx.ml {', '.join(trees)}, which" if trees
             else f"it has no {'/'.join(sorted(CONVERTIBLE_OPS))} node; its operators")
    raise ModelError(f"{ref}: nothing to convert to {transformation.upper()}: {where} the quantizer and the "
                     f"float16 converter leave in float32 (the speed-up would be 1.0x); use --opt-level, "
                     f"or an MLP such as fraud-mlp:1.0.0")


def first_layer_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes from the graph input up to the first MatMul/Gemm and the Add on its output."""
    graph = model.graph
    frontier, names = {graph.input[0].name}, []
    for index, node in enumerate(graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"
        if not frontier.intersection(node.input):
            continue
        names.append(node.name)
        if node.op_type not in ("MatMul", "Gemm"):
            frontier.update(node.output)
            continue
        names.extend(n.name for n in graph.node if n.op_type == "Add" and node.output[0] in n.input)
        return names
    return names


class _CalibrationReader:
    """Feeds calibration batches to ``quantize_static`` (a CalibrationDataReader by duck typing)."""

    def __init__(self, input_name: str, matrix: np.ndarray) -> None:
        self._batches = iter([{input_name: matrix[start:start + CALIBRATION_BATCH]}
                              for start in range(0, len(matrix), CALIBRATION_BATCH)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def to_int8(onnx_bytes: bytes, input_name: str, calibration: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """Static INT8 (QDQ; uint8 activations, int8 weights per channel, MinMax calibration)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="streamscore-int8-") as tmp:
        parent, prepared, out = Path(tmp, "parent.onnx"), Path(tmp, "prepared.onnx"), Path(tmp, "int8.onnx")
        parent.write_bytes(onnx_bytes)
        quant_pre_process(str(parent), str(prepared), skip_optimization=True,  # ONNX shape inference only
                          skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        kept = first_layer_nodes(model)
        onnx.save(model, str(prepared))
        quantize_static(str(prepared), str(out), _CalibrationReader(input_name, calibration),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                        nodes_to_exclude=kept, calibrate_method=CalibrationMethod.MinMax)
        quantized = out.read_bytes()
    method = ("onnxruntime.quantization.quantize_static: QDQ, uint8 activations, int8 weights per channel "
              f"(reduce_range), MinMax calibration on {len(calibration)} rows")
    return quantized, {"method": method, "kept_float32": kept}


def to_fp16(onnx_bytes: bytes) -> tuple[bytes, dict[str, Any]]:
    """FP16 weights and arithmetic (onnxconverter-common), inputs/outputs kept float32."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise ModelError("--fp16 needs onnxconverter-common: pip install -e '.[train]'") from exc
    model = _model(onnx_bytes)
    kept = first_layer_nodes(model)
    with warnings.catch_warnings():  # "the float32 number 3.5e-26 will be truncated to 1e-07", per weight
        warnings.simplefilter("ignore")
        converted = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=kept)
    method = (f"onnxconverter-common {importlib.metadata.version('onnxconverter-common')} "
              "convert_float_to_float16(keep_io_types=True); meant for GPU providers "
              "(on the CPU, float16 MatMul is not faster)")
    return converted.SerializeToString(), {"method": method, "kept_float32": kept}


def graph_optimized(onnx_bytes: bytes, level: str) -> tuple[bytes, dict[str, Any]]:
    """ONNX Runtime's own graph optimizations at ``level``, saved (``optimized_model_filepath``)."""
    if level not in GRAPH_OPTIMIZATION or level == "disable":
        raise ModelError(f"--opt-level {level!r} is not one of basic, extended, all")
    with tempfile.TemporaryDirectory(prefix="streamscore-opt-") as tmp:
        target = Path(tmp, "optimized.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = GRAPH_OPTIMIZATION[level]
        options.optimized_model_filepath = str(target)
        options.log_severity_level = 3
        ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        optimized = target.read_bytes()
    method = (f"onnxruntime {ort.__version__} GraphOptimizationLevel {level}, CPUExecutionProvider, saved with "
              "SessionOptions.optimized_model_filepath")
    note = ("'extended'/'all' may insert CPU-specific fused operators: load this version on the CPU provider"
            if level != "basic" else "portable across providers")
    return optimized, {"method": method, "note": note}


def stamp(onnx_bytes: bytes, name: str, version: str, parent: str) -> bytes:
    """Set the streamscore metadata (model, version, parent) and serialize deterministically."""
    model = _model(onnx_bytes)
    kept = [(p.key, p.value) for p in model.metadata_props if not p.key.startswith("streamscore.")]
    del model.metadata_props[:]
    for key, value in kept + [("streamscore.model", name), ("streamscore.version", version),
                              ("streamscore.parent", parent)]:
        model.metadata_props.add(key=key, value=value)
    return model.SerializeToString(deterministic=True)
