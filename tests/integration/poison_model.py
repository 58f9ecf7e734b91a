"""A model that fails on one crafted input: the demo fraud contract, and an ONNX graph whose score is a
small logistic regression plus ``0 * log|amount - POISON_AMOUNT|``, which is NaN exactly when the
amount is ``POISON_AMOUNT`` (log 0 = -inf, times 0) and the regression's score otherwise. The
contract accepts that amount, so only the model can fail on it: an INFERENCE dead letter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models.register import register_model
from models.registry import DEFAULT_ROOT

NAME = "fraud-poison"
POISON_AMOUNT = 1234.5  # exact in float32


def _graph(width: int) -> onnx.ModelProto:
    rng = np.random.default_rng(5)
    weights = np.zeros((width, 1), dtype=np.float32)
    weights[1:6, 0] = rng.normal(0, 0.002, 5)  # a few small weights: scores that vary between events
    constants = {"W": weights, "B": np.array([[-1.0]], dtype=np.float32), "C": np.array([[POISON_AMOUNT]], np.float32),
                 "ZERO": np.array([[0.0]], dtype=np.float32), "ONE": np.array([[1.0]], dtype=np.float32),
                 "starts": np.array([0], np.int64), "ends": np.array([1], np.int64), "axes": np.array([1], np.int64)}
    nodes = [helper.make_node("MatMul", ["features", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["p"]),
             helper.make_node("Slice", ["features", "starts", "ends", "axes"], ["amount"]),
             helper.make_node("Sub", ["amount", "C"], ["gap"]), helper.make_node("Abs", ["gap"], ["abs_gap"]),
             helper.make_node("Log", ["abs_gap"], ["log_gap"]),
             helper.make_node("Mul", ["log_gap", "ZERO"], ["poison"]),
             helper.make_node("Add", ["p", "poison"], ["p1"]), helper.make_node("Sub", ["ONE", "p1"], ["p0"]),
             helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, NAME, [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        [numpy_helper.from_array(v, k) for k, v in constants.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def register_poison_model(root: Path) -> str:
    """Register ``fraud-poison:1.0.0`` in ``root`` (the demo fraud card, this graph); returns its ref."""
    card = json.loads((DEFAULT_ROOT / "fraud" / "1.0.0" / "model.json").read_text())
    card.update(name=NAME, version="1.0.0", description="fails (NaN) on amount 1234.5: the INFERENCE stage test")
    (root / "poison.json").write_text(json.dumps(card))
    (root / "poison.onnx").write_bytes(_graph(len(card["features"])).SerializeToString())
    register_model(root / "poison.onnx", root / "poison.json", root)
    return f"{NAME}:1.0.0"
