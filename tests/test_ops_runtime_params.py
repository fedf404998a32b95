"""Run-time (graph input) parameter tensors for tensor / indexing lowerings, and Dropout / Scatter extras.

Every parameter is a graph input fed explicitly (valid values), the node's output shape is declared
static, and LiteRT is compared with ONNX Runtime on XNNPACK and the builtin kernels (check_model).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import onnx2litert
from onnx2litert.evaluate import run_tflite

from tests.helpers import check_model, expect_failure, make_model

F32, I32, I64 = np.float32, np.int32, np.int64
RNG = np.random.default_rng(0)


def data(shape: tuple[int, ...], dtype: type = F32) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return RNG.standard_normal(shape).astype(dtype)
    return RNG.integers(-50, 50, shape).astype(dtype)


def one_node(op: str, ins: list[tuple[str, np.ndarray]], outs: list[tuple[str, type, list]], opset: int = 18,
             **attrs: object):
    """A one-node model whose inputs are all graph inputs; returns (model, feeds)."""
    node = helper.make_node(op, [n for n, _ in ins], [n for n, _, _ in outs], **attrs)
    model = make_model([node], [(n, v.dtype, list(v.shape)) for n, v in ins], outs, opset=opset)
    return model, {n: v for n, v in ins}


# -- Reshape / Squeeze / Unsqueeze: the static output shape is the result's shape ------------------------
@pytest.mark.parametrize("dtype", [F32, I32, I64])
@pytest.mark.parametrize("spec,out", [([2, 0, 4, 1], [2, 3, 4, 1]), ([-1, 4], [6, 4]), ([4, 0, -1], [4, 3, 2])])
def test_reshape_runtime_shape(dtype, spec, out):
    x = data((2, 3, 4), dtype) if spec != [4, 0, -1] else data((4, 3, 2), dtype)
    model, feeds = one_node("Reshape", [("x", x), ("s", np.array(spec, I64))], [("y", dtype, out)])
    check_model(model, feeds)


def test_reshape_runtime_shape_unknown_output_fails():
    model, _ = one_node("Reshape", [("x", data((2, 3))), ("s", np.array([3, 2], I64))], [("y", F32, None)])
    expect_failure(model, "requires_constant_input")


@pytest.mark.parametrize("axes,out", [([0], [3, 4]), ([-3], [3, 4])])
def test_squeeze_runtime_axes(axes, out):
    model, feeds = one_node("Squeeze", [("x", data((1, 3, 4))), ("a", np.array(axes, I64))], [("y", F32, out)])
    check_model(model, feeds)


@pytest.mark.parametrize("axes,out", [([0], [1, 3, 4]), ([2, 0], [1, 3, 1, 4]), ([-1, 0, 2], [1, 3, 1, 4, 1])])
def test_unsqueeze_runtime_axes(axes, out):
    model, feeds = one_node("Unsqueeze", [("x", data((3, 4))), ("a", np.array(axes, I64))], [("y", F32, out)])
    check_model(model, feeds)


# -- Split: run-time sizes are the outputs' static sizes ---------------------------------------------------
@pytest.mark.parametrize("opset", [13, 18])
def test_split_runtime_sizes(opset):
    model, feeds = one_node("Split", [("x", data((2, 6))), ("s", np.array([2, 4], I64))],
                            [("a", F32, [2, 2]), ("b", F32, [2, 4])], opset=opset, axis=-1)
    check_model(model, feeds)


# -- Slice: STRIDED_SLICE with run-time begin / end / strides ----------------------------------------------
SLICES = [
    ([0, 0, 3], [20, 10, 4], None, None, [20, 10, 1]),                        # default axes and steps
    ([0, 0], [3, 10], [0, 1], [1, 1], [3, 10, 5]),
    ([0], [-1], [1], [1], [20, 9, 5]),                                       # negative end
    ([20, 10, 4], [0, 0, 1], [0, 1, 2], [-1, -3, -2], [19, 3, 2]),          # negative steps
    ([1], [1000], [1], [1], [20, 9, 5]),                                     # end past the dim
    ([-1], [-1000], [-2], [-1], [20, 10, 5]),                                # to before index 0, axis -2
    ([2**62], [-2**62], [0], [-3], [7, 10, 5]),                              # huge int64 values clamp
    ([1, -3], [2**63 - 1, -1], [-1, 0], [2, 4], [1, 10, 2]),                 # INT64_MAX end
]


@pytest.mark.parametrize("starts,ends,axes,steps,out", SLICES)
def test_slice_runtime(starts, ends, axes, steps, out):
    x = data((20, 10, 5))
    ins = [("x", x), ("st", np.array(starts, I64)), ("en", np.array(ends, I64))]
    if axes is not None:
        ins.append(("ax", np.array(axes, I64)))
    if steps is not None:
        ins.append(("sp", np.array(steps, I64)))
    model, feeds = one_node("Slice", ins, [("y", F32, out)], opset=13)
    check_model(model, feeds)


@pytest.mark.parametrize("dtype", [I32, I64])
def test_slice_runtime_int_data_const_axes(dtype):
    node = helper.make_node("Slice", ["x", "st", "en", "ax"], ["y"])
    model = make_model([node], [("x", dtype, [4, 6]), ("st", I32, [1]), ("en", I32, [1])], [("y", dtype, [4, 3])],
                       initializers={"ax": np.array([1], I32)}, opset=13)
    check_model(model, {"x": data((4, 6), dtype), "st": np.array([-4], I32), "en": np.array([5], I32)})


def test_slice_runtime_unsupported_dtype():
    model, _ = one_node("Slice", [("x", np.zeros((4,), bool)), ("st", np.array([1], I64)), ("en", np.array([3], I64))],
                        [("y", bool, [2])], opset=13)
    expect_failure(model, "unsupported_dtype")


# -- Pad: one GATHER per axis with run-time source indices -------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
@pytest.mark.parametrize("dtype", [F32, I32, I64])
@pytest.mark.parametrize("pads", [[0, 0, 1, 3, 0, 0, 2, 0], [0, 0, 2, 1, 0, 0, 0, 2], [0, 0, -1, 2, 0, 0, 1, -2]])
def test_pad_runtime(mode, dtype, pads):
    x = data((1, 2, 4, 5), dtype)
    out = [d + b + e for d, b, e in zip(x.shape, pads[:4], pads[4:])]
    model, feeds = one_node("Pad", [("x", x), ("p", np.array(pads, I64))], [("y", dtype, out)], opset=19, mode=mode)
    check_model(model, feeds)


def test_pad_runtime_value_and_axes():
    x = data((1, 3, 4, 5))
    model, feeds = one_node("Pad", [("x", x), ("p", np.array([0, 3, 0, 4], I64)), ("v", np.array(1.5, F32)),
                                    ("a", np.array([1, -1], I64))], [("y", F32, [1, 3, 4, 12])], opset=18)
    check_model(model, feeds)


def test_pad_runtime_const_axes():
    node = helper.make_node("Pad", ["x", "p", "", "a"], ["y"], mode="edge")
    model = make_model([node], [("x", F32, [2, 3]), ("p", I64, [2])], [("y", F32, [2, 6])],
                       initializers={"a": np.array([1], I64)}, opset=18)
    check_model(model, {"x": data((2, 3)), "p": np.array([1, 2], I64)})


# -- Dropout ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset,mask", [(7, False), (10, False), (12, False), (12, True), (13, True), (22, True)])
def test_dropout_inference(opset, mask):
    outs = [("y", F32, [3, 4])] + ([("m", bool, [3, 4])] if mask else [])
    model, feeds = one_node("Dropout", [("x", data((3, 4)))], outs, opset=opset)
    check_model(model, feeds)


@pytest.mark.parametrize("opset", [7, 10])
def test_dropout_old_mask_fails(opset):
    model, _ = one_node("Dropout", [("x", data((3, 4)))], [("y", F32, [3, 4]), ("m", bool if opset >= 10 else F32,
                                                                                   [3, 4])], opset=opset)
    expect_failure(model, "unsupported_attribute_value")


def test_dropout_runtime_ratio_no_training():
    model, feeds = one_node("Dropout", [("x", data((3, 4))), ("r", np.array(0.3, F32))],
                            [("y", F32, [3, 4]), ("m", bool, [3, 4])], opset=13)
    check_model(model, feeds)


def test_dropout_training_false_and_zero_ratio():
    for ratio, training in ((0.5, False), (0.0, True)):
        node = helper.make_node("Dropout", ["x", "r", "t"], ["y", "m"])
        model = make_model([node], [("x", F32, [2, 3])], [("y", F32, [2, 3]), ("m", bool, [2, 3])],
                           initializers={"r": np.array(ratio, F32), "t": np.array(training)}, opset=13)
        check_model(model, {"x": data((2, 3))})


def test_dropout_training_fails():
    node = helper.make_node("Dropout", ["x", "r", "t"], ["y"])
    model = make_model([node], [("x", F32, [2, 3])], [("y", F32, [2, 3])],
                       initializers={"r": np.array(0.5, F32), "t": np.array(True)}, opset=13)
    expect_failure(model, "unsupported_attribute_value")
    model, _ = one_node("Dropout", [("x", data((2, 3))), ("r", np.array(0.0, F32)), ("t", np.array(False))],
                        [("y", F32, [2, 3])], opset=13)
    expect_failure(model, "requires_constant_input")


# -- TopK / OneHot: K and depth are the output's size on the axis -----------------------------------------
@pytest.mark.parametrize("axis,largest", [(-1, 1), (0, 0), (1, 1)])
def test_topk_runtime_k(axis, largest):
    x = data((4, 5))
    out = [4, 5]
    out[axis] = 3
    model, feeds = one_node("TopK", [("x", x), ("k", np.array([3], I64))],
                            [("v", F32, out), ("i", I64, out)], opset=11, axis=axis, largest=largest)
    check_model(model, feeds)


@pytest.mark.parametrize("idx_dtype", [I64, I32, F32])
@pytest.mark.parametrize("axis", [-1, 1, 0])
def test_one_hot_runtime_depth(idx_dtype, axis):
    idx = np.array([[1, 9], [-2, 12]], idx_dtype) if idx_dtype != F32 else np.array([[1.7, 9.0], [-2.0, np.nan]], F32)
    out = [2, 2]
    out.insert(axis if axis >= 0 else 2, 10)
    model, feeds = one_node("OneHot", [("i", idx), ("d", np.array(10.0, F32)), ("v", np.array([1, 3], F32))],
                            [("y", F32, out)], opset=11, axis=axis)
    check_model(model, feeds)


# -- Trilu: run-time k --------------------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [-7, -1, 0, 2, 9])
@pytest.mark.parametrize("dtype", [F32, I64])
def test_trilu_runtime_k(upper, k, dtype):
    model, feeds = one_node("Trilu", [("x", data((2, 3, 5), dtype)), ("k", np.array(k, I64))],
                            [("y", dtype, [2, 3, 5])], opset=14, upper=upper)
    check_model(model, feeds)


# -- CumSum: run-time axis ----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1, -2])
@pytest.mark.parametrize("dtype,axis_dtype", [(F32, I64), (I32, I32), (I64, I64)])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 1)])
def test_cumsum_runtime_axis(axis, dtype, axis_dtype, exclusive, reverse):
    model, feeds = one_node("CumSum", [("x", data((2, 3), dtype)), ("a", np.array(axis, axis_dtype))],
                            [("y", dtype, [2, 3])], opset=14, exclusive=exclusive, reverse=reverse)
    check_model(model, feeds)


# -- Compress: run-time condition ----------------------------------------------------------------------------
@pytest.mark.parametrize("axis,cond,out", [(0, [0, 1, 1], [2, 2]), (1, [0, 1], [3, 1]), (None, [1, 0, 0, 1, 1], [3]),
                                           (-1, [1, 1], [3, 2])])
def test_compress_runtime_condition(axis, cond, out):
    attrs = {} if axis is None else {"axis": axis}
    model, feeds = one_node("Compress", [("x", data((3, 2))), ("c", np.array(cond, bool))], [("y", F32, out)],
                            opset=11, **attrs)
    check_model(model, feeds)


# -- ScatterND / ScatterElements reductions mul / max / min (run-time indices, duplicates) -------------------
@pytest.mark.parametrize("reduction", ["mul", "max", "min"])
@pytest.mark.parametrize("dtype", [F32, I32, I64])
def test_scatter_nd_reductions(reduction, dtype):
    model, feeds = one_node("ScatterND", [("d", data((4, 3), dtype)), ("i", np.array([[0], [2], [0]], I64)),
                                          ("u", data((3, 3), dtype))], [("y", dtype, [4, 3])],
                            reduction=reduction)
    check_model(model, feeds)
    model, feeds = one_node("ScatterND", [("d", data((2, 2), dtype)), ("i", np.array([[0, 0], [1, -1], [0, 0]], I64)),
                                          ("u", data((3,), dtype))], [("y", dtype, [2, 2])], reduction=reduction)
    check_model(model, feeds)


@pytest.mark.parametrize("reduction", ["mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_elements_reductions(reduction, axis):
    model, feeds = one_node("ScatterElements", [("d", data((3, 5))), ("i", np.array([[1, -1, 1], [0, 2, 2]], I64)),
                                                ("u", data((2, 3)))], [("y", F32, [3, 5])], axis=axis,
                            reduction=reduction)
    check_model(model, feeds)


def test_scatter_reduction_too_many_updates_fails():
    model, _ = one_node("ScatterND", [("d", data((100,))), ("i", np.zeros((65, 1), I64)), ("u", data((65,)))],
                        [("y", F32, [100])], reduction="max")
    expect_failure(model, "unsupported_attribute_value")


def test_scatter_opset10():
    model, feeds = one_node("Scatter", [("d", data((3, 3))), ("i", np.array([[1, 0, 2]], I64)), ("u", data((1, 3)))],
                            [("y", F32, [3, 3])], opset=10, axis=0)
    check_model(model, feeds)


# -- Range at opset 27 (only float16 / bfloat16 and their stash_type were added) ----------------------------
@pytest.mark.parametrize("dtype,start,limit,delta", [(F32, 1.0, 5.0, 2.0), (I32, 10, 4, -3), (I64, -2, 7, 4)])
def test_range_opset27(dtype, start, limit, delta):
    n = max(int(np.ceil((limit - start) / delta)), 0)
    model, feeds = one_node("Range", [("s", np.array(start, dtype)), ("l", np.array(limit, dtype)),
                                      ("d", np.array(delta, dtype))], [("y", dtype, [n])], opset=27)
    # ONNX Runtime refuses opset 27 (not released yet): compare with the ONNX reference instead.
    expected = ReferenceEvaluator(model).run(None, feeds)[0]
    tflite = onnx2litert.convert(model).artifacts["float32"]
    for use_default_delegates in (True, False):
        got = run_tflite(tflite, feeds, use_default_delegates=use_default_delegates)["y"]
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_range_opset27_float16_fails():
    model, _ = one_node("Range", [("s", np.array(1, np.float16)), ("l", np.array(5, np.float16)),
                                  ("d", np.array(2, np.float16))], [("y", np.float16, [2])], opset=27)
    expect_failure(model, "unsupported_dtype")
