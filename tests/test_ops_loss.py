"""SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss: LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tests.helpers import check_model, expect_failure, make_model

F32 = np.float32
C = 5


def loss_model(op: str, x_shape: list, *, weight: str | None = None, log_prob: bool = False,
               label_dtype=np.int64, opset: int = 13, **attrs: object):
    """One loss node; ``weight`` is None, "input" (graph input) or "const" (initializer)."""
    n = x_shape[0]
    inputs = [("x", F32, x_shape), ("t", label_dtype, [n] + x_shape[2:])]
    names = ["x", "t"]
    inits = {}
    if weight == "input":
        inputs.append(("w", F32, [x_shape[1]]))
        names.append("w")
    elif weight == "const":
        inits["w"] = np.linspace(0.2, 1.4, x_shape[1]).astype(F32)
        names.append("w")
    outputs = ["z", "log_prob"] if log_prob else ["z"]
    node = helper.make_node(op, names, outputs, **attrs)
    return make_model([node], inputs, [(o, F32, None) for o in outputs], inits, opset)


def feeds_for(model, x_shape: list, ignore_index: int | None = None, label_dtype=np.int64, seed: int = 0) -> dict:
    """Scores and valid labels in [0, C); some labels set to ``ignore_index``; positive weights."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, x_shape[1], [x_shape[0]] + x_shape[2:]).astype(label_dtype)
    if ignore_index is not None:
        flat = labels.reshape(-1)
        flat[::3] = ignore_index
    feeds = {"x": rng.standard_normal(x_shape).astype(F32), "t": labels}
    if any(i.name == "w" for i in model.graph.input):
        feeds["w"] = rng.uniform(0.1, 2.0, x_shape[1]).astype(F32)
    return feeds


OPS = ["SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"]
SHAPES = [[3, C], [3, C, 2], [2, C, 3, 4], [2, C, 2, 2, 3]]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", SHAPES, ids=["NC", "NCd1", "NCd1d2", "NCd1d2d3"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weight", [None, "input"])
def test_loss_reductions(op, shape, reduction, weight):
    model = loss_model(op, shape, weight=weight, reduction=reduction)
    check_model(model, feeds_for(model, shape))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("ignore_index", [0, 2, -1, 10], ids=["ii0", "ii2", "ii_neg", "ii_high"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weight", [None, "const"])
def test_loss_ignore_index(op, ignore_index, reduction, weight):
    shape = [4, C, 3]
    model = loss_model(op, shape, weight=weight, reduction=reduction, ignore_index=ignore_index)
    check_model(model, feeds_for(model, shape, ignore_index))


@pytest.mark.parametrize("shape", SHAPES[:3], ids=["NC", "NCd1", "NCd1d2"])
@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_sce_log_prob_output(shape, reduction):
    model = loss_model("SoftmaxCrossEntropyLoss", shape, weight="input", log_prob=True, reduction=reduction,
                       ignore_index=1)
    check_model(model, feeds_for(model, shape, 1))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [12, 13, 22])
def test_loss_opsets_and_int32_labels(op, opset):
    shape = [3, C, 2]
    if op == "SoftmaxCrossEntropyLoss" and opset == 22:
        opset = 21  # SoftmaxCrossEntropyLoss has no opset-22 version; 21 still uses the opset-13 one
    model = loss_model(op, shape, label_dtype=np.int32, opset=opset, reduction="mean", ignore_index=2)
    check_model(model, feeds_for(model, shape, 2, label_dtype=np.int32))


def test_loss_default_reduction_is_mean():
    model = loss_model("NegativeLogLikelihoodLoss", [3, C])
    result = check_model(model, feeds_for(model, [3, C]))
    assert "MEAN" in result.op_counts


@pytest.mark.parametrize("op", OPS)
def test_loss_float16_fails(op):
    node = helper.make_node(op, ["x", "t"], ["z"], reduction="none")
    model = make_model([node], [("x", np.float16, [3, C]), ("t", np.int64, [3])], [("z", np.float16, [3])],
                       opset=13)
    expect_failure(model, "unsupported_dtype")
