"""Reductions with runtime axes and zero-sized inputs vs ONNX Runtime (XNNPACK and builtin kernels).

Runtime axes are used as the static output shape implies them (only reduced axes of size > 1
matter); when the shape leaves them ambiguous they are passed to the LiteRT kernels at run time.
A reduction of a zero-sized input is the constant identity of the reduction.
"""
from __future__ import annotations

import numpy as np
import pytest

import onnx2litert
from onnx2litert.lower.ops.reduce import implied_axes
from tests.helpers import check_model, expect_failure, make_model, single_op_model
from onnx import helper

F32 = np.float32
ALL_OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
           "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


def opset_for(op: str) -> int:
    return 13 if op == "ReduceSum" else 18


def runtime_axes_model(op: str, in_shape: list[int], out_shape: list[int], n_axes: int, keepdims: int,
                       noop: int = 0, dtype=F32):
    """One Reduce node whose axes are a graph input; the output shape is declared."""
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims, noop_with_empty_axes=noop)
    return make_model([node], [("x", dtype, in_shape), ("axes", np.int64, [n_axes])], [("y", dtype, out_shape)],
                      opset=opset_for(op))


def feeds(op: str, shape: list[int], axes: list[int], seed: int = 0, dtype=F32) -> dict[str, np.ndarray]:
    x = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if op == "ReduceLogSum":
        x = np.abs(x) + dtype(0.5)
    return {"x": x, "axes": np.array(axes, np.int64)}


def lowered_ops(model) -> dict[str, int]:
    return onnx2litert.convert(model, optimize=False).op_counts


@pytest.mark.parametrize("case", [
    ([2, 3, 4], [2, 1, 4], [1], 1), ([2, 3, 4], [2, 1, 4], [-2], 1), ([2, 3, 4], [1, 1, 1], [], 1),
    ([2, 3, 4], [4], [0, 1], 0), ([2, 3, 4], [3], [-1, 0], 0), ([2, 1, 4], [2, 4], [1], 0),
    ([2, 3, 4], [], [0, 1, 2], 0)], ids=str)
@pytest.mark.parametrize("op", ALL_OPS)
def test_runtime_axes_implied_by_shape(op, case):
    """keepdims or an unambiguous output shape: the axes are read off the shapes."""
    in_shape, out_shape, axes, keepdims = case
    model = runtime_axes_model(op, in_shape, out_shape, len(axes), keepdims)
    check_model(model, feeds(op, in_shape, axes))
    assert "CAST" not in lowered_ops(model)


@pytest.mark.parametrize("axes", [[1], [2], [-1], [-2], [2, 2]], ids=str)
@pytest.mark.parametrize("op", [o for o in ALL_OPS if o != "ReduceLogSumExp"])
def test_runtime_axes_passed_to_kernel(op, axes):
    """(3, 2, 2) -> (3, 2) does not say which axis is reduced: the kernel reads the axes input."""
    model = runtime_axes_model(op, [3, 2, 2], [3, 2], len(axes), 0)
    check_model(model, feeds(op, [3, 2, 2], axes))
    assert "CAST" in lowered_ops(model)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceProd"])
def test_runtime_axes_int(op, dtype):
    x = np.random.default_rng(1).integers(-4, 5, [3, 2, 2]).astype(dtype)
    check_model(runtime_axes_model(op, [3, 2, 2], [3, 2], 1, 0, dtype=dtype),
                {"x": x, "axes": np.array([-1], np.int64)})
    check_model(runtime_axes_model(op, [3, 2, 2], [1, 2, 1], 2, 1, dtype=dtype),
                {"x": x, "axes": np.array([0, 2], np.int64)})


def test_runtime_axes_log_sum_exp_ambiguous_fails():
    expect_failure(runtime_axes_model("ReduceLogSumExp", [3, 2, 2], [3, 2], 1, 0), "requires_constant_input")


def test_runtime_axes_unknown_output_shape_fails():
    model = single_op_model("ReduceSum", [("x", F32, [2, 3, 4]), ("axes", np.int64, [1])], None, opset=13)
    model.graph.output[0].type.tensor_type.ClearField("shape")
    expect_failure(model, "requires_constant_input")


@pytest.mark.parametrize("op", ALL_OPS)
def test_empty_axes_input_noop(op):
    """An axes input of static shape (0,) is empty whatever it holds: with noop nothing is reduced."""
    model = runtime_axes_model(op, [3, 2, 2], [3, 2, 2], 0, 1, noop=1)
    check_model(model, feeds(op, [3, 2, 2], []))


@pytest.mark.parametrize("op", ALL_OPS)
def test_empty_axes_input_reduces_all(op):
    model = runtime_axes_model(op, [3, 2, 2], [1, 1, 1], 0, 1)
    check_model(model, feeds(op, [3, 2, 2], []))


@pytest.mark.parametrize("op", [o for o in ALL_OPS if o != "ReduceMean"])
def test_zero_sized_input(op):
    """Reducing an empty set gives the identity: 0, 1, -inf, +inf, -inf (log sums)."""
    model = runtime_axes_model(op, [2, 0, 4], [2, 1, 4], 1, 1)
    check_model(model, feeds(op, [2, 0, 4], [1]))


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_zero_sized_input_bool(op):
    node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)
    model = make_model([node], [("x", np.bool_, [2, 0, 3])], [("y", np.bool_, [2, 3])],
                       initializers={"axes": np.array([1], np.int64)}, opset=20)
    # ONNX Runtime refuses this case; the ONNX spec (and its reference) give the bool identity.
    x = np.zeros([2, 0, 3], np.bool_)
    artifact = onnx2litert.convert(model).artifacts["float32"]
    for delegates in (True, False):
        got = onnx2litert.run_tflite(artifact, {"x": x}, use_default_delegates=delegates)["y"]
        np.testing.assert_array_equal(got, np.full([2, 3], op == "ReduceMin"))


def test_zero_sized_input_int_sum():
    node = helper.make_node("ReduceSum", ["x"], ["y"], keepdims=1)
    model = make_model([node], [("x", np.int32, [0, 3])], [("y", np.int32, [1, 1])], opset=11)
    check_model(model, {"x": np.zeros([0, 3], np.int32)})


def test_zero_sized_input_mean_fails():
    """ONNX leaves the mean of an empty set undefined (the reference gives NaN, ONNX Runtime 0)."""
    expect_failure(runtime_axes_model("ReduceMean", [2, 0, 4], [2, 1, 4], 1, 1), "unsupported_attribute_value")


def test_zero_sized_input_int_max_fails():
    node = helper.make_node("ReduceMax", ["x"], ["y"], keepdims=1)
    model = make_model([node], [("x", np.int32, [0, 3])], [("y", np.int32, [1, 1])], opset=11)
    expect_failure(model, "unsupported_attribute_value")


def test_zero_sized_output():
    """A zero-sized axis that is not reduced: the output is zero-sized too."""
    model = runtime_axes_model("ReduceSum", [2, 0, 4], [2, 0, 1], 1, 1)
    check_model(model, feeds("ReduceSum", [2, 0, 4], [2]))


def test_zero_sized_through_elementwise():
    """Abs of a zero-sized tensor feeding a reduction (the expanded ReduceL1)."""
    nodes = [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("ReduceSum", ["a"], ["y"], keepdims=1, axes=[1])]
    model = make_model(nodes, [("x", F32, [2, 0, 4])], [("y", F32, [2, 1, 4])], opset=11)
    check_model(model, {"x": np.zeros([2, 0, 4], F32)})


def test_zero_sized_output_is_an_empty_constant():
    """An op whose outputs are all zero-sized computes nothing: its output is an empty constant."""
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F32, [2, 0, 4])], [("y", F32, [2, 0, 4])])
    check_model(model, {"x": np.zeros([2, 0, 4], F32)})


def test_zero_sized_input_needs_an_opt_in():
    """A lowering that would compute a non-empty result from a zero-sized input must opt in."""
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", F32, [2, 0])], [("y", F32, [2, 3])],
                       {"w": np.zeros((0, 3), F32)})
    exc = expect_failure(model, "unsupported_attribute_value")
    assert "zero-sized" in str(exc)


def test_implied_axes():
    assert implied_axes((2, 3, 4), (2, 1, 4), True) == (1,)
    assert implied_axes((2, 1, 4), (1, 1, 4), True) == (0,)
    assert implied_axes((2, 3, 4), (2, 3, 4), True) == ()
    assert implied_axes((2, 3, 4), (2, 2, 4), True) is None
    assert implied_axes((2, 3, 4), (2, 4), False) == (1,)
    assert implied_axes((2, 1, 4), (2, 4), False) == ()
    assert implied_axes((3, 2, 2), (3, 2), False) is None
    assert implied_axes((2, 1, 1), (2, 1), False) == ()
    assert implied_axes((2, 3), (2, 3, 1), False) is None
