"""Reduce* lowerings (Mean, Sum, Max, Min, Prod, L2) vs ONNX Runtime, every axes/opset form."""
from __future__ import annotations

import numpy as np
import pytest

import onnx2litert
from onnx2litert.lower.ops.reduce import normalize_axes, reduced_shape
from tests.helpers import check_model, expect_failure, single_op_model

F32 = np.float32
OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2"]
INT_OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"]
SHAPE = [2, 3, 4]


def lowered_ops(model) -> dict[str, int]:
    """Op counts straight out of the lowering (no optimization passes), for structure checks."""
    return onnx2litert.convert(model, optimize=False).op_counts


def axes_are_input(op: str, opset: int) -> bool:
    return opset >= (13 if op == "ReduceSum" else 18)


def reduce_model(op, opset, axes=None, keepdims=None, noop=None, shape=SHAPE, dtype=F32):
    """A one-node Reduce model; ``axes`` goes to the attribute or the input as the opset wants."""
    attrs = {}
    if keepdims is not None:
        attrs["keepdims"] = keepdims
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    inits = {}
    names = ["x"]
    if axes is not None:
        if axes_are_input(op, opset):
            inits["axes"] = np.array(axes, np.int64)
            names.append("axes")
        else:
            attrs["axes"] = axes
    if noop and not axes:
        out = list(shape)
    else:
        norm = normalize_axes(axes if axes else range(len(shape)), len(shape))
        out = list(reduced_shape(tuple(shape), norm, bool(1 if keepdims is None else keepdims)))
    return single_op_model(op, [("x", dtype, shape)], out, initializers=inits, opset=opset, input_names=names,
                           **attrs)


AXES = [None, [1], [-1], [0, 2], [2, 0, 1]]


@pytest.mark.parametrize("keepdims", [None, 0])  # None = the default (1)
@pytest.mark.parametrize("axes", AXES, ids=lambda a: f"axes{a}")
@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("op", OPS)
def test_reduce_float(op, opset, axes, keepdims):
    check_model(reduce_model(op, opset, axes, keepdims))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("opset", [7, 21])
def test_reduce_opset_ends(op, opset):
    check_model(reduce_model(op, opset, [1], 0))
    check_model(reduce_model(op, opset, None, 1))


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("op", OPS)
def test_reduce_empty_axes_input_reduces_all(op, keepdims):
    """An empty axes input with noop_with_empty_axes=0 reduces over every axis."""
    check_model(reduce_model(op, 18, [], keepdims, noop=0))


@pytest.mark.parametrize("with_empty_input", [False, True])
@pytest.mark.parametrize("op", OPS)
def test_reduce_noop_with_empty_axes(op, with_empty_input):
    """noop_with_empty_axes=1 and no (or empty) axes: identity (ReduceL2: |x|)."""
    opset = 13 if op == "ReduceSum" else 18
    model = reduce_model(op, opset, [] if with_empty_input else None, noop=1)
    check_model(model)
    assert set(lowered_ops(model)) == ({"ABS"} if op == "ReduceL2" else {"RESHAPE"})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
def test_reduce_noop_flag_with_axes(op):
    check_model(reduce_model(op, 18, [0, 2], 0, noop=1))


@pytest.mark.parametrize("shape,axes", [([1, 3, 4, 5], [2, 3]), ([2, 3, 2, 2, 2], [1, 3]), ([6], [0])],
                         ids=["4d-spatial", "5d", "1d"])
@pytest.mark.parametrize("op", OPS)
def test_reduce_other_ranks(op, shape, axes):
    check_model(reduce_model(op, 13, axes, 1, shape=shape))
    check_model(reduce_model(op, 13, axes, 0, shape=shape))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", [None, [1], [0, 2]], ids=lambda a: f"axes{a}")
@pytest.mark.parametrize("op", INT_OPS)
def test_reduce_int(op, axes, keepdims, dtype):
    check_model(reduce_model(op, 13, axes, keepdims, dtype=dtype))


@pytest.mark.parametrize("axes", [None, [1], [0, 2]], ids=lambda a: f"axes{a}")
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_bool(op, keepdims, axes):
    """Opset 20 allows bool for ReduceMax/ReduceMin (logical any/all)."""
    check_model(reduce_model(op, 20, axes, keepdims, dtype=np.bool_))


@pytest.mark.parametrize("op,dtype", [("ReduceMax", np.uint8), ("ReduceSum", np.float64), ("ReduceMean", np.float16)])
def test_reduce_unverified_dtype_fails(op, dtype):
    expect_failure(reduce_model(op, 13, [1], 1, dtype=dtype), "unsupported_dtype")


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_reduce_mean_int_rounding(dtype):
    """Integer means truncate toward zero in both runtimes (-1.5 -> -1, 1.5 -> 1, -0.5 -> 0)."""
    x = np.array([[-1, -2], [1, 2], [-1, 0], [7, -2]], dtype)
    model = reduce_model("ReduceMean", 13, [1], 0, shape=[4, 2], dtype=dtype)
    check_model(model, {"x": x})


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_reduce_l2_int_unsupported(dtype):
    expect_failure(reduce_model("ReduceL2", 13, [1], 1, dtype=dtype), "unsupported_dtype")


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean"])
def test_reduce_runtime_axes_fail(op):
    opset = 13 if op == "ReduceSum" else 18
    model = single_op_model(op, [("x", F32, SHAPE), ("axes", np.int64, [1])], None, opset=opset)
    expect_failure(model, "requires_constant_input")


def test_helpers():
    assert normalize_axes([-1, 0], 3) == (0, 2)
    assert normalize_axes([3], 3) is None
    assert normalize_axes([1, -2], 3) is None
    assert reduced_shape((2, 3, 4), (0, 2), True) == (1, 3, 1)
    assert reduced_shape((2, 3, 4), (0, 2), False) == (3,)
