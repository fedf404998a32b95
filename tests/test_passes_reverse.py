"""Axis reversals (passes/reverse.py): reversing slices become REVERSE_V2, reversals move past
elementwise unary ops and same-axis pairs cancel — hand-built IR graphs checked in LiteRT, and
ONNX models (torch.flip idioms) checked against ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from onnx2litert.passes.reverse import reversing_slices_to_reverse, sink_reversals
from tests.helpers import check_model, make_model
from tests.test_passes_support import Builder, check_rewrite, opcounts


def _flip(b: Builder, x, axis: int, dtype=np.float32):
    """STRIDED_SLICE x[..., ::-1, ...] on ``axis``, as the Slice lowering writes it."""
    begin = [0] * x.rank
    begin[axis] = x.shape[axis] - 1
    strides = [1] * x.rank
    strides[axis] = -1
    return b.op("STRIDED_SLICE", [x, b.const(begin, np.int32), b.const([0] * x.rank, np.int32),
                                  b.const(strides, np.int32)], x.shape, dtype,
                beginMask=0, endMask=(1 << x.rank) - 1, ellipsisMask=0, newAxisMask=0, shrinkAxisMask=0)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.int8, np.uint8, np.bool_])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_reversing_slice_becomes_reverse(dtype, axis):
    b = Builder()
    x = b.input("x", (3, 4, 5), dtype)
    m = check_rewrite(b.model([_flip(b, x, axis, dtype)]), reversing_slices_to_reverse)
    assert opcounts(m) == {"REVERSE_V2": 1}


@pytest.mark.parametrize("case", ["step2", "partial", "two_axes"])
def test_other_slices_stay(case):
    b = Builder()
    x = b.input("x", (3, 4, 5))
    if case == "two_axes":
        y = b.op("STRIDED_SLICE", [x, b.const([2, 3, 0], np.int32), b.const([0, 0, 5], np.int32),
                                   b.const([-1, -1, 1], np.int32)], x.shape, endMask=3)
    else:
        stride, shape = (-2, (3, 2, 5)) if case == "step2" else (-1, (3, 3, 5))
        y = b.op("STRIDED_SLICE", [x, b.const([0, 3 if case == "step2" else 2, 0], np.int32),
                                   b.const([3, 0, 5], np.int32), b.const([1, stride, 1], np.int32)], shape,
                 endMask=2 if case == "step2" else 0)
    assert not reversing_slices_to_reverse(b.model([y]).main)


def test_reversals_cancel_through_unary_ops():
    b = Builder()
    x = b.input("x", (2, 6, 3))
    axis = b.const([1], np.int32)
    y = b.op("REVERSE_V2", [x, axis], x.shape)
    y = b.op("TANH", [y], x.shape)
    y = b.op("ABS", [y], x.shape)
    out = b.op("REVERSE_V2", [y, axis], x.shape)
    m = check_rewrite(b.model([out]), sink_reversals)
    counts = opcounts(m)
    assert counts["REVERSE_V2"] == 0 and counts["TANH"] == 1


@pytest.mark.parametrize("case", ["other_axis", "shared", "cumsum"])
def test_reversals_kept(case):
    b = Builder()
    x = b.input("x", (2, 6, 3))
    y = b.op("REVERSE_V2", [x, b.const([1], np.int32)], x.shape)
    if case == "cumsum":  # moving past CUMSUM would need LiteRT's slow reverse scan
        z = b.op("CUMSUM", [y, b.const(np.int32(1), np.int32)], x.shape, exclusive=False, reverse=False)
        outs = [b.op("REVERSE_V2", [z, b.const([1], np.int32)], x.shape)]
    elif case == "shared":
        outs = [b.op("REVERSE_V2", [y, b.const([1], np.int32)], x.shape), b.op("RELU", [y], x.shape)]
    else:
        outs = [b.op("REVERSE_V2", [y, b.const([2], np.int32)], x.shape)]
    m = b.model(outs)
    sink_reversals(m.main)
    assert opcounts(m)["REVERSE_V2"] == 2


def _flip_model(body: str, dtype=np.float32):
    """torch idioms: x.flip(1) -> [tanh] -> flip(1), and x.flip(1).cumsum(1).flip(1)."""
    inits = {"s": np.array([-1], np.int64), "e": np.array([np.iinfo(np.int64).min], np.int64),
             "a": np.array([1], np.int64), "st": np.array([-1], np.int64), "ax": np.array(1, np.int64)}
    mid = {"tanh": helper.make_node("Tanh", ["f"], ["g"]), "cumsum": helper.make_node("CumSum", ["f", "ax"], ["g"])}
    nodes = [helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["f"]), mid[body],
             helper.make_node("Slice", ["g", "s", "e", "a", "st"], ["y"])]
    return make_model(nodes, [("x", dtype, [2, 7, 5])], [("y", dtype, [2, 7, 5])], inits, 17)


@pytest.mark.parametrize("body,dtype", [("tanh", np.float32), ("cumsum", np.float32), ("cumsum", np.int32),
                                        ("cumsum", np.int64)])
def test_flip_idioms_end_to_end(body, dtype):
    result = check_model(_flip_model(body, dtype))
    assert "STRIDED_SLICE" not in result.op_counts, result.op_counts
    assert result.op_counts.get("REVERSE_V2", 0) == (0 if body == "tanh" else 2), result.op_counts


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("exclusive", [0, 1])
def test_reverse_cumsum_is_a_forward_scan(dtype, exclusive):
    node = helper.make_node("CumSum", ["x", "ax"], ["y"], reverse=1, exclusive=exclusive)
    model = make_model([node], [("x", dtype, [3, 6, 4])], [("y", dtype, [3, 6, 4])], {"ax": np.array(-2, np.int64)},
                       17)
    result = check_model(model)
    assert result.op_counts == {"CUMSUM": 1, "REVERSE_V2": 2}, result.op_counts
