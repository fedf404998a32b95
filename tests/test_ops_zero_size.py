"""Zero-sized tensors: lowerings give an empty result as a constant of its static shape (exact: it has
no values) and never hand a zero-sized tensor to a LiteRT kernel. LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import onnx2litert
from tests.helpers import check_model, make_model

F32 = np.float32
I64 = np.int64


def i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def data(shape, dtype=F32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(-5, 6, shape).astype(dtype)


def node(op: str, ins: list[str], outs: list[str], **attrs) -> onnx.NodeProto:
    return helper.make_node(op, ins, outs, **attrs)


def op_counts(model: onnx.ModelProto, feeds: dict) -> dict[str, int]:
    return check_model(model, feeds, optimize=False).op_counts


# -- empty results of non-empty inputs ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [F32, np.int32, np.int64, np.bool_])
def test_slice_constant_params_empty(dtype):
    model = make_model([node("Slice", ["x", "s", "e"], ["y"])], [("x", dtype, [4, 3])], [("y", dtype, None)],
                       {"s": i64(3), "e": i64(1)}, opset=13)
    x = data((4, 3), dtype) if dtype != np.bool_ else np.ones((4, 3), bool)
    assert op_counts(model, {"x": x}) == {"RESHAPE": 1}  # the driver's copy of the empty constant


def test_slice_runtime_params_empty():
    """Run-time starts past the end: the declared output shape [2, 0, 3] is empty whatever they are."""
    model = make_model([node("Slice", ["x", "s", "e", "a", "st"], ["y"])],
                       [("x", F32, [2, 5, 3]), ("s", I64, [1]), ("e", I64, [1]), ("a", I64, [1]), ("st", I64, [1])],
                       [("y", F32, [2, 0, 3])], opset=13)
    check_model(model, {"x": data((2, 5, 3)), "s": i64(1000), "e": i64(1000), "a": i64(1), "st": i64(1)})


def test_shape_start_after_end():
    model = make_model([node("Shape", ["x"], ["y"], start=2, end=1)], [("x", F32, [3, 4, 5])],
                       [("y", I64, None)], opset=15)
    check_model(model, {"x": data((3, 4, 5))})


@pytest.mark.parametrize("dims", [[0], [2, 0]])
def test_constant_of_shape_empty(dims):
    value = helper.make_tensor("v", onnx.TensorProto.INT32, [1], [7])
    model = make_model([node("Shape", ["x"], ["s"]), node("Slice", ["s", "b", "e"], ["d"]),
                        node("Add", ["d", "z"], ["dims"]), node("ConstantOfShape", ["dims"], ["y"], value=value)],
                       [("x", F32, [len(dims)])], [("y", np.int32, [*dims])],
                       {"b": i64(0), "e": i64(1), "z": np.array(dims, np.int64) - len(dims)}, opset=13)
    check_model(model, {"x": data((len(dims),))})


def test_constant_of_shape_runtime_dims_empty():
    """Run-time dims whose declared output shape is empty (the conformance case's form)."""
    value = helper.make_tensor("v", onnx.TensorProto.INT32, [1], [0])
    model = make_model([node("ConstantOfShape", ["x"], ["y"], value=value)], [("x", I64, [1])],
                       [("y", np.int32, [0])], opset=13)
    check_model(model, {"x": i64(0)})


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_split_with_empty_chunk(opset):
    if opset < 13:
        n = node("Split", ["x"], ["a", "b", "c"], axis=1, split=[2, 0, 3])
        inits = {}
    else:
        n = node("Split", ["x", "sp"], ["a", "b", "c"], axis=1)
        inits = {"sp": i64(2, 0, 3)}
    model = make_model([n], [("x", F32, [2, 5])], [(o, F32, None) for o in "abc"], inits, opset=opset)
    assert op_counts(model, {"x": data((2, 5))}) == {"SPLIT_V": 1, "RESHAPE": 1}


def test_split_runtime_sizes_with_empty_chunks():
    model = make_model([node("Split", ["x", "sp"], ["a", "b", "c"])], [("x", F32, [4]), ("sp", I64, [3])],
                       [("a", F32, [0]), ("b", F32, [4]), ("c", F32, [0])], opset=13)
    check_model(model, {"x": data((4,)), "sp": i64(0, 4, 0)})


def test_range_empty():
    model = make_model([node("Range", ["s", "l", "d"], ["y"])], [], [("y", F32, None)],
                       {"s": np.array(3, F32), "l": np.array(1, F32), "d": np.array(1, F32)}, opset=11)
    check_model(model, {})


def test_topk_k_zero():
    model = make_model([node("TopK", ["x", "k"], ["v", "i"], axis=1)], [("x", F32, [2, 4])],
                       [("v", F32, None), ("i", I64, None)], {"k": i64(0)}, opset=11)
    check_model(model, {"x": data((2, 4))})


def test_compress_nothing_selected():
    model = make_model([node("Compress", ["x", "c"], ["y"], axis=0)], [("x", F32, [3, 2])], [("y", F32, None)],
                       {"c": np.zeros(3, bool)}, opset=11)
    check_model(model, {"x": data((3, 2))})


def test_pad_crops_to_empty():
    model = make_model([node("Pad", ["x", "p"], ["y"])], [("x", F32, [2, 3])], [("y", F32, None)],
                       {"p": i64(0, -2, 0, -1)}, opset=13)
    check_model(model, {"x": data((2, 3))})


def test_gather_empty_indices():
    model = make_model([node("Gather", ["x", "i"], ["y"], axis=1)], [("x", F32, [2, 3])], [("y", F32, None)],
                       {"i": np.zeros((0,), np.int64)}, opset=13)
    check_model(model, {"x": data((2, 3))})


def test_tile_zero_repeats():
    model = make_model([node("Tile", ["x", "r"], ["y"])], [("x", F32, [2, 3])], [("y", F32, None)],
                       {"r": i64(1, 0)}, opset=13)
    check_model(model, {"x": data((2, 3))})


def test_expand_to_empty():
    model = make_model([node("Expand", ["x", "s"], ["y"])], [("x", F32, [1, 3])], [("y", F32, None)],
                       {"s": i64(0, 3)}, opset=13)
    check_model(model, {"x": data((1, 3))})


# -- ops fed a zero-sized intermediate (Slice to nothing first) ----------------------------------
def _after_empty_slice(op: str, extra_inputs: list[str] | None = None, inits: dict | None = None,
                       out_dtype=F32, opset: int = 14, **attrs) -> onnx.ModelProto:
    """x [2, 3] -> Slice(axis 1, 0:0) -> e [2, 0] -> op -> y."""
    nodes = [node("Slice", ["x", "b", "b", "a"], ["e"]), node(op, ["e", *(extra_inputs or [])], ["y"], **attrs)]
    return make_model(nodes, [("x", F32, [2, 3])], [("y", out_dtype, None)],
                      {"b": i64(0), "a": i64(1), **(inits or {})}, opset=opset)


@pytest.mark.parametrize("op,extra,inits,attrs", [
    ("Transpose", [], {}, {}),
    ("Identity", [], {}, {}),
    ("Flatten", [], {}, {"axis": 1}),
    ("Reshape", ["s"], {"s": i64(0, 2)}, {"allowzero": 1}),
    ("Unsqueeze", ["ax"], {"ax": i64(0)}, {}),
    ("Squeeze", [], {}, {}),
    ("Trilu", [], {}, {"upper": 0}),
    ("CumSum", ["ax0"], {"ax0": i64(1)}, {}),
    ("Tile", ["r"], {"r": i64(2, 3)}, {}),
    ("Gather", ["gi"], {"gi": i64(1, 0)}, {"axis": 0}),
    ("GatherElements", ["ge"], {"ge": np.zeros((2, 0), np.int64)}, {"axis": 0}),
])
def test_op_of_empty_intermediate(op, extra, inits, attrs):
    check_model(_after_empty_slice(op, extra, inits, **attrs), {"x": data((2, 3))})


def test_concat_of_empty_and_full():
    nodes = [node("Slice", ["x", "b", "b", "a"], ["e"]), node("Concat", ["e", "x", "e"], ["y"], axis=1)]
    model = make_model(nodes, [("x", F32, [2, 3])], [("y", F32, None)], {"b": i64(0), "a": i64(1)}, opset=13)
    check_model(model, {"x": data((2, 3))})


def test_size_and_shape_of_empty_intermediate():
    nodes = [node("Slice", ["x", "b", "b", "a"], ["e"]), node("Size", ["e"], ["n"]), node("Shape", ["e"], ["s"])]
    model = make_model(nodes, [("x", F32, [2, 3])], [("n", I64, None), ("s", I64, None)],
                       {"b": i64(0), "a": i64(1)}, opset=13)
    check_model(model, {"x": data((2, 3))})


def test_pad_of_empty_intermediate_is_the_pad_value():
    model = _after_empty_slice("Pad", ["p", "v"], {"p": i64(0, 1, 0, 2), "v": np.array(1.5, F32)}, opset=13)
    check_model(model, {"x": data((2, 3))})


def test_argmax_over_non_empty_axis_of_empty_tensor():
    model = _after_empty_slice("ArgMax", [], {}, out_dtype=I64, axis=0, keepdims=1)
    check_model(model, {"x": data((2, 3))})


# -- zero-sized graph inputs (need the frontend to let them reach these ops) ----------------------
def _check_zero_input(model: onnx.ModelProto, feeds: dict) -> None:
    try:
        onnx2litert.convert(model)
    except onnx2litert.ConversionError as exc:
        if "zero-sized dim" in str(exc):
            pytest.skip(f"the frontend refuses zero-sized inputs for this op: {exc}")
        raise
    check_model(model, feeds)


def test_reshape_allowzero_of_empty_input():
    model = make_model([node("Reshape", ["x", "s"], ["y"], allowzero=1)], [("x", F32, [0, 3, 4]), ("s", I64, [3])],
                       [("y", F32, [3, 4, 0])], opset=14)
    _check_zero_input(model, {"x": np.zeros((0, 3, 4), F32), "s": i64(3, 4, 0)})


@pytest.mark.parametrize("opset", [13, 18])
def test_split_empty_input_zero_sizes(opset):
    model = make_model([node("Split", ["x", "sp"], ["a", "b", "c"])], [("x", F32, [0]), ("sp", I64, [3])],
                       [(o, F32, [0]) for o in "abc"], opset=opset)
    _check_zero_input(model, {"x": np.zeros((0,), F32), "sp": i64(0, 0, 0)})


@pytest.mark.parametrize("shape,upper", [([3, 0, 5], 0), ([0, 5], 1)])
def test_trilu_empty_input(shape, upper):
    model = make_model([node("Trilu", ["x", "k"], ["y"], upper=upper)], [("x", I64, shape), ("k", I64, [])],
                       [("y", I64, shape)], opset=14)
    _check_zero_input(model, {"x": np.zeros(shape, I64), "k": np.array(6, I64)})
