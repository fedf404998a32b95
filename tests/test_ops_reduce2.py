"""ReduceL1, ReduceSumSquare, ReduceLogSum and ReduceLogSumExp vs ONNX Runtime, every axes/opset form
(check_model runs XNNPACK and the builtin kernels)."""
from __future__ import annotations

import numpy as np
import pytest

import onnx2litert
from tests.helpers import check_model, expect_failure, single_op_model
from tests.test_ops_reduce import reduce_model

F32 = np.float32
OPS = ["ReduceL1", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]
SHAPE = [2, 3, 4]


def feeds_for(op: str, shape=SHAPE, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs; ReduceLogSum gets positive values so the log of every sum is defined."""
    x = np.random.default_rng(seed).standard_normal(shape).astype(F32)
    return {"x": np.abs(x) + F32(0.5) if op == "ReduceLogSum" else x}


def lowered_ops(model) -> dict[str, int]:
    return onnx2litert.convert(model, optimize=False).op_counts


@pytest.mark.parametrize("keepdims", [None, 0])  # None = the default (1)
@pytest.mark.parametrize("axes", [None, [1], [-1], [0, 2]], ids=lambda a: f"axes{a}")
@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("op", OPS)
def test_reduce_float(op, opset, axes, keepdims):
    check_model(reduce_model(op, opset, axes, keepdims), feeds_for(op))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [7, 21])
def test_reduce_opset_ends(op, opset):
    check_model(reduce_model(op, opset, [2, 0, 1], 0), feeds_for(op))


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("op", OPS)
def test_reduce_empty_axes_input_reduces_all(op, keepdims):
    check_model(reduce_model(op, 18, [], keepdims, noop=0), feeds_for(op))


@pytest.mark.parametrize("with_empty_input", [False, True])
@pytest.mark.parametrize("op", OPS)
def test_reduce_noop_with_empty_axes(op, with_empty_input):
    """noop_with_empty_axes=1 and no axes: only the per-element part (|x|, x^2, log x, x)."""
    model = reduce_model(op, 18, [] if with_empty_input else None, noop=1)
    check_model(model, feeds_for(op))
    expected = {"ReduceL1": "ABS", "ReduceSumSquare": "SQUARE", "ReduceLogSum": "LOG", "ReduceLogSumExp": "RESHAPE"}
    assert set(lowered_ops(model)) == {expected[op]}


@pytest.mark.parametrize("shape,axes", [([1, 3, 4, 5], [2, 3]), ([2, 3, 2, 2, 2], [1, 3]), ([6], [0])],
                         ids=["4d-spatial", "5d", "1d"])
@pytest.mark.parametrize("op", OPS)
def test_reduce_other_ranks(op, shape, axes):
    check_model(reduce_model(op, 13, axes, 1, shape=shape), feeds_for(op, shape))
    check_model(reduce_model(op, 13, axes, 0, shape=shape), feeds_for(op, shape))


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_log_sum_exp_is_stable(keepdims):
    """Values whose exp overflows float32 (e^100 > 3.4e38): the max-subtracted form stays finite."""
    x = (np.random.default_rng(1).standard_normal(SHAPE) * 5 + 100).astype(F32)
    x[0, 0, 0] = -200.0
    check_model(reduce_model("ReduceLogSumExp", 18, [1, 2], keepdims), {"x": x})


@pytest.mark.parametrize("op", OPS)
def test_reduce_int_unsupported(op):
    expect_failure(reduce_model(op, 13, [1], 1, dtype=np.int32), "unsupported_dtype")


@pytest.mark.parametrize("op", OPS)
def test_reduce_runtime_axes_fail(op):
    model = single_op_model(op, [("x", F32, SHAPE), ("axes", np.int64, [1])], None, opset=18)
    expect_failure(model, "requires_constant_input")


@pytest.mark.parametrize("op", OPS)
def test_reduce_bad_axes_fail(op):
    model = single_op_model(op, [("x", F32, SHAPE)], [2, 3, 4], opset=13, axes=[1, 1])
    expect_failure(model, "unsupported_attribute_value")
