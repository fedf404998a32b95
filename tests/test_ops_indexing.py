"""Indexing family: ArgMax/ArgMin, GatherND/GatherElements, ScatterND/ScatterElements, OneHot, TopK,
CumSum, Range, Tile, Expand, Trilu, EyeLike, NonZero, Compress, Unique — LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from tests.helpers import check_model, expect_failure, make_model

RNG_SEED = 0
IDX = [np.int64, np.int32]


def _rng(seed: int = RNG_SEED) -> np.random.Generator:
    return np.random.default_rng(seed)


def _data(shape, dtype, seed: int = RNG_SEED) -> np.ndarray:
    """Seeded data; integers are small so ties occur (tie-breaking is part of the semantics)."""
    rng = _rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if np.dtype(dtype).kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if np.dtype(dtype).kind == "u":
        return rng.integers(0, 6, shape).astype(dtype)
    return rng.integers(-5, 6, shape).astype(dtype)


def _node_model(op: str, inputs: list, outputs: list, inits: dict | None = None, opset: int = 17,
                node_inputs: list[str] | None = None, **attrs) -> object:
    """One node; ``inputs`` are graph inputs (name, dtype, shape); node inputs default to inputs + inits."""
    names = node_inputs if node_inputs is not None else [n for n, _, _ in inputs] + list(inits or {})
    node = helper.make_node(op, names, [n for n, _, _ in outputs], **attrs)
    return make_model([node], inputs, outputs, inits, opset)


# -- ArgMax / ArgMin -------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint8, np.int8])
@pytest.mark.parametrize("axis,keepdims,last", [(1, 1, 0), (-1, 0, 0), (0, 1, 1), (2, 0, 1)])
def test_arg(op, dtype, axis, keepdims, last):
    x = _data((3, 4, 5), dtype)
    model = _node_model(op, [("x", dtype, [3, 4, 5])], [("y", np.int64, None)], axis=axis, keepdims=keepdims,
                        select_last_index=last)
    check_model(model, {"x": x})


@pytest.mark.parametrize("opset", [7, 11])
def test_arg_old_opset(opset):
    model = _node_model("ArgMax", [("x", np.float32, [2, 6])], [("y", np.int64, None)], opset=opset, axis=1)
    check_model(model)


def test_arg_rank1_no_keepdims():
    model = _node_model("ArgMin", [("x", np.int32, [7])], [("y", np.int64, None)], keepdims=0)
    check_model(model, {"x": _data((7,), np.int32)})


def test_arg_int64_fails():
    model = _node_model("ArgMax", [("x", np.int64, [2, 3])], [("y", np.int64, None)])
    expect_failure(model, "unsupported_dtype")


# -- GatherND --------------------------------------------------------------------------------------
_GATHER_DTYPES = [np.float32, np.int32, np.int64, np.int8, np.uint8, np.bool_]


@pytest.mark.parametrize("dtype", _GATHER_DTYPES)
def test_gather_nd_dtypes(dtype):
    idx = np.array([[0, 1], [2, -1], [-3, 0]], np.int64)
    model = _node_model("GatherND", [("x", dtype, [3, 4, 2]), ("i", np.int64, [3, 2])], [("y", dtype, None)])
    check_model(model, {"x": _data((3, 4, 2), dtype), "i": idx})


@pytest.mark.parametrize("idx_dtype", [np.int64])  # ONNX GatherND takes int64 indices only
@pytest.mark.parametrize("const", [False, True])
@pytest.mark.parametrize("batch_dims", [0, 1, 2])
def test_gather_nd_batch_dims(idx_dtype, const, batch_dims):
    shape = (2, 3, 4, 5)
    rng = _rng()
    k = 2 if batch_dims < 2 else 1
    ishape = shape[:batch_dims] + (2,) * (batch_dims == 0) + (k,)
    dims = np.array(shape[batch_dims:batch_dims + k])
    idx = (rng.integers(0, 100, ishape) % dims - dims * rng.integers(0, 2, ishape)).astype(idx_dtype)
    x = _data(shape, np.float32)
    if const:
        model = _node_model("GatherND", [("x", np.float32, list(shape))], [("y", np.float32, None)],
                            {"i": idx}, batch_dims=batch_dims)
        check_model(model, {"x": x})
    else:
        model = _node_model("GatherND", [("x", np.float32, list(shape)), ("i", idx_dtype, list(ishape))],
                            [("y", np.float32, None)], batch_dims=batch_dims)
        check_model(model, {"x": x, "i": idx})


def test_gather_nd_opset11():
    idx = np.array([[1], [0]], np.int64)
    model = _node_model("GatherND", [("x", np.float32, [2, 3])], [("y", np.float32, None)], {"i": idx}, opset=11)
    check_model(model)


# -- GatherElements --------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", _GATHER_DTYPES)
def test_gather_elements_dtypes(dtype):
    idx = np.array([[0, 2, -1], [-3, 1, 1]], np.int64)
    model = _node_model("GatherElements", [("x", dtype, [3, 3]), ("i", np.int64, [2, 3])], [("y", dtype, None)])
    check_model(model, {"x": _data((3, 3), dtype), "i": idx})


@pytest.mark.parametrize("idx_dtype", IDX)
@pytest.mark.parametrize("const", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements_axes(idx_dtype, const, axis):
    shape, ishape = (3, 4, 5), [2, 3, 4]
    a = axis % 3
    ishape[a] = 6
    dim = shape[a]
    idx = (_rng().integers(-dim, dim, ishape)).astype(idx_dtype)
    x = _data(shape, np.float32)
    if const:
        model = _node_model("GatherElements", [("x", np.float32, list(shape))], [("y", np.float32, None)],
                            {"i": idx}, axis=axis)
        check_model(model, {"x": x})
    else:
        model = _node_model("GatherElements", [("x", np.float32, list(shape)), ("i", idx_dtype, ishape)],
                            [("y", np.float32, None)], axis=axis)
        check_model(model, {"x": x, "i": idx})


# -- ScatterND -------------------------------------------------------------------------------------
_SCATTER_DTYPES = [np.float32, np.int32, np.int64]


@pytest.mark.parametrize("dtype", _SCATTER_DTYPES)
@pytest.mark.parametrize("idx_dtype", [np.int64])  # ONNX ScatterND takes int64 indices only
@pytest.mark.parametrize("const", [False, True])
@pytest.mark.parametrize("reduction", ["none", "add"])
def test_scatter_nd(dtype, idx_dtype, const, reduction):
    data = _data((4, 3, 2), dtype)
    idx = np.array([[1, 0], [3, 2], [-4, -1]], idx_dtype)
    upd = _data((3, 2), dtype, seed=1)
    outputs = [("y", dtype, [4, 3, 2])]
    if const:
        model = _node_model("ScatterND", [("x", dtype, [4, 3, 2]), ("u", dtype, [3, 2])], outputs, {"i": idx},
                            opset=18, node_inputs=["x", "i", "u"], reduction=reduction)
        check_model(model, {"x": data, "u": upd})
    else:
        model = _node_model("ScatterND", [("x", dtype, [4, 3, 2]), ("i", idx_dtype, [3, 2]),
                                          ("u", dtype, [3, 2])], outputs, opset=18, reduction=reduction)
        check_model(model, {"x": data, "i": idx, "u": upd})


@pytest.mark.parametrize("opset", [11, 13])
def test_scatter_nd_full_tuples_old_opset(opset):
    idx = np.array([[0, 1], [2, 0]], np.int64)
    model = _node_model("ScatterND", [("x", np.float32, [3, 2]), ("u", np.float32, [2])],
                        [("y", np.float32, [3, 2])], {"i": idx}, opset=opset, node_inputs=["x", "i", "u"])
    check_model(model)


def test_scatter_nd_mul_fails():
    model = _node_model("ScatterND", [("x", np.float32, [3]), ("u", np.float32, [1])],
                        [("y", np.float32, [3])], {"i": np.array([[0]], np.int64)}, opset=16,
                        node_inputs=["x", "i", "u"], reduction="max")  # max / min only exist from opset 18
    expect_failure(model, "unsupported_attribute_value")


def test_scatter_nd_const_duplicates_fail():
    model = _node_model("ScatterND", [("x", np.float32, [3]), ("u", np.float32, [2])],
                        [("y", np.float32, [3])], {"i": np.array([[1], [1]], np.int64)},
                        node_inputs=["x", "i", "u"])
    expect_failure(model, "unsupported_attribute_value")


# -- ScatterElements -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", _SCATTER_DTYPES)
@pytest.mark.parametrize("idx_dtype", IDX)
@pytest.mark.parametrize("const", [False, True])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(dtype, idx_dtype, const, axis):
    data = _data((3, 4), dtype)
    # Distinct targets per column (axis 0) / row (axis 1); some negative.
    idx = np.array([[2, -1, -3, 1], [0, 0, 2, 2]], idx_dtype) if axis == 0 else \
        np.array([[3, -4, 1], [0, 1, -2]], idx_dtype)
    upd = _data(idx.shape, dtype, seed=1)
    outputs = [("y", dtype, [3, 4])]
    if const:
        model = _node_model("ScatterElements", [("x", dtype, [3, 4]), ("u", dtype, list(idx.shape))], outputs,
                            {"i": idx}, node_inputs=["x", "i", "u"], axis=axis)
        check_model(model, {"x": data, "u": upd})
    else:
        model = _node_model("ScatterElements", [("x", dtype, [3, 4]), ("i", idx_dtype, list(idx.shape)),
                                                ("u", dtype, list(idx.shape))], outputs, axis=axis)
        check_model(model, {"x": data, "i": idx, "u": upd})


@pytest.mark.parametrize("const", [False, True])
def test_scatter_elements_add_duplicates(const):
    data = _data((3, 4), np.float32)
    idx = np.array([[1, 1, 0, 2], [1, 0, 0, 2]], np.int64)  # duplicates accumulate with reduction='add'
    upd = _data((2, 4), np.float32, seed=2)
    outputs = [("y", np.float32, [3, 4])]
    if const:
        model = _node_model("ScatterElements", [("x", np.float32, [3, 4]), ("u", np.float32, [2, 4])], outputs,
                            {"i": idx}, opset=16, node_inputs=["x", "i", "u"], reduction="add")
        check_model(model, {"x": data, "u": upd})
    else:
        model = _node_model("ScatterElements", [("x", np.float32, [3, 4]), ("i", np.int64, [2, 4]),
                                                ("u", np.float32, [2, 4])], outputs, opset=16, reduction="add")
        check_model(model, {"x": data, "i": idx, "u": upd})


@pytest.mark.parametrize("dtype", _SCATTER_DTYPES)
@pytest.mark.parametrize("reduction", ["none", "add"])
def test_scatter_elements_into_zeros_is_one_scatter(dtype, reduction):
    """Constant zero data (as exported for torch.zeros(...).scatter_): one SCATTER_ND, no mask or ADD."""
    idx = np.array([[2, 0, 1, 2], [0, 1, 2, 0]], np.int64) if reduction == "none" else \
        np.array([[1, 1, 0, 2], [1, 0, 0, 2]], np.int64)  # distinct per column / duplicates that add up
    model = _node_model("ScatterElements", [("i", np.int64, [2, 4]), ("u", dtype, [2, 4])],
                        [("y", dtype, [3, 4])], {"z": np.zeros((3, 4), dtype)}, opset=16,
                        node_inputs=["z", "i", "u"], reduction=reduction)
    result = check_model(model, {"i": idx, "u": _data((2, 4), dtype, seed=3)})
    assert result.op_counts.get("SCATTER_ND") == 1 and "SELECT_V2" not in result.op_counts, result.op_counts
    assert "ADD" not in result.op_counts or result.op_counts["ADD"] == 1, result.op_counts  # the coordinates


def _row_index_model(op: str, dtype, reduction: str | None, zeros: bool) -> object:
    """torch's ``x.scatter(1, i.unsqueeze(-1).expand(-1, -1, 4), u)`` / ``x.gather(1, ...)`` idiom:
    a run-time index repeated along the trailing axis."""
    nodes = [helper.make_node("Unsqueeze", ["i", "ax"], ["i1"]),
             helper.make_node("Expand", ["i1", "shape"], ["ie"])]
    inits = {"ax": np.array([-1], np.int64), "shape": np.array([2, 3, 4], np.int64)}
    inputs = [("i", np.int64, [2, 3])]
    if op == "GatherElements":
        nodes.append(helper.make_node(op, ["x", "ie"], ["y"], axis=1))
        inputs.insert(0, ("x", dtype, [2, 5, 4]))
        return make_model(nodes, inputs, [("y", dtype, [2, 3, 4])], inits, 17)
    attrs = {} if reduction is None else {"reduction": reduction}
    nodes.append(helper.make_node(op, ["x", "ie", "u"], ["y"], axis=1, **attrs))
    if zeros:
        inits["x"] = np.zeros((2, 5, 4), dtype)
    else:
        inputs.insert(0, ("x", dtype, [2, 5, 4]))
    return make_model(nodes, inputs + [("u", dtype, [2, 3, 4])], [("y", dtype, [2, 5, 4])], inits, 18)


def _scatter_index_depth(result) -> int:
    """Length of the coordinate tuples of the (single data) SCATTER_ND / GATHER_ND in the model."""
    from ai_edge_litert import schema_py_generated as S
    model = S.ModelT.InitFromPackedBuf(bytearray(result.artifacts["float32"]), 0)
    sub = model.subgraphs[0]
    wanted = {S.BuiltinOperator.SCATTER_ND: 0, S.BuiltinOperator.GATHER_ND: 1}
    depths = set()
    for op in sub.operators:
        code = model.operatorCodes[op.opcodeIndex].builtinCode
        if code in wanted:
            depths.add(int(sub.tensors[op.inputs[wanted[code]]].shape[-1]))
    return max(depths)


@pytest.mark.parametrize("dtype", _SCATTER_DTYPES)
@pytest.mark.parametrize("reduction,zeros", [(None, False), ("none", True), ("add", False), ("add", True),
                                             ("mul", False), ("max", False)])
def test_scatter_elements_row_index(dtype, reduction, zeros):
    """An index expanded along the trailing axes scatters whole rows: (batch, row) coordinate
    pairs, no BROADCAST_TO of the index; duplicates are exercised for the reductions."""
    idx = np.array([[4, 0, 2], [1, 3, 0]], np.int64) if reduction in (None, "none") else \
        np.array([[4, 0, 4], [1, 1, 0]], np.int64)
    model = _row_index_model("ScatterElements", dtype, reduction, zeros)
    feeds = {"i": idx, "u": _data((2, 3, 4), dtype, seed=4)}
    if not zeros:
        feeds["x"] = _data((2, 5, 4), dtype, seed=5)
    result = check_model(model, feeds)
    assert "BROADCAST_TO" not in result.op_counts, result.op_counts
    assert _scatter_index_depth(result) == 2


@pytest.mark.parametrize("dtype", _GATHER_DTYPES)
def test_gather_elements_row_index(dtype):
    model = _row_index_model("GatherElements", dtype, None, False)
    result = check_model(model, {"x": _data((2, 5, 4), dtype), "i": np.array([[4, -5, 2], [1, 1, -1]], np.int64)})
    assert "BROADCAST_TO" not in result.op_counts, result.op_counts
    assert _scatter_index_depth(result) == 2


@pytest.mark.parametrize("op", ["GatherElements", "ScatterElements"])
def test_elements_const_row_index(op):
    """A constant index that repeats along the trailing axis also gathers / scatters rows."""
    idx = np.repeat(np.array([[2], [0], [3]], np.int64), 4, axis=1)
    if op == "GatherElements":
        model = _node_model(op, [("x", np.float32, [5, 4])], [("y", np.float32, [3, 4])], {"i": idx}, axis=0)
        result = check_model(model, {"x": _data((5, 4), np.float32)})
    else:
        model = _node_model(op, [("x", np.float32, [5, 4]), ("u", np.float32, [3, 4])],
                            [("y", np.float32, [5, 4])], {"i": idx}, node_inputs=["x", "i", "u"], axis=0)
        result = check_model(model, {"x": _data((5, 4), np.float32), "u": _data((3, 4), np.float32, seed=1)})
    assert _scatter_index_depth(result) == 1


def test_scatter_elements_max_fails():
    # max / min / mul apply the updates one by one; too many of them are refused.
    model = _node_model("ScatterElements", [("x", np.float32, [3]), ("u", np.float32, [65])],
                        [("y", np.float32, [3])], {"i": np.zeros(65, np.int64)}, opset=18,
                        node_inputs=["x", "i", "u"], reduction="max")
    expect_failure(model, "unsupported_attribute_value")


# -- OneHot ----------------------------------------------------------------------------------------
# (indices, depth, values) dtype combinations ONNX Runtime implements.
_ONE_HOT_TYPES = [(np.int64, np.int64, np.float32), (np.int64, np.int64, np.int64), (np.int64, np.float32, np.int32),
                  (np.int32, np.float32, np.float32), (np.int32, np.int32, np.float32)]


@pytest.mark.parametrize("idx_dtype,depth_dtype,dtype", _ONE_HOT_TYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_one_hot(idx_dtype, depth_dtype, dtype, axis):
    idx = np.array([[0, 3, -1], [-4, 5, -6]], idx_dtype)  # 5 and -6 are out of range: all off
    values = np.array([2, 7], dtype)
    model = _node_model("OneHot", [("i", idx_dtype, [2, 3])], [("y", dtype, None)],
                        {"depth": np.array(4, depth_dtype), "v": values}, opset=11, axis=axis)
    check_model(model, {"i": idx})


@pytest.mark.parametrize("opset", [9, 11])
def test_one_hot_const_indices_runtime_values(opset):
    model = _node_model("OneHot", [("v", np.float32, [2])], [("y", np.float32, [3, 3])],
                        {"i": np.array([1, -1, 0], np.int64), "depth": np.array([3], np.int64)},
                        opset=opset, node_inputs=["i", "depth", "v"])
    check_model(model, {"v": np.array([-1.5, 3.25], np.float32)})


def test_one_hot_float_indices():
    """Float indices: integral values (negative ones wrap) select a position, others give off rows."""
    model = _node_model("OneHot", [("i", np.float32, [5])], [("y", np.float32, [5, 4])],
                        {"depth": np.array(4, np.float32), "v": np.array([0, 1], np.float32)}, opset=11)
    check_model(model, {"i": np.array([1.0, -1.0, 2.5, 7.0, np.nan], np.float32)})


def test_one_hot_const_float_indices():
    model = _node_model("OneHot", [("v", np.float32, [2])], [("y", np.float32, [4, 4])],
                        {"i": np.array([1.0, -1.0, 2.5, 7.0], np.float32), "depth": np.array(4, np.float32)},
                        opset=11, node_inputs=["i", "depth", "v"])
    check_model(model, {"v": np.array([0, 1], np.float32)})


def test_one_hot_bool_indices_fail():
    model = _node_model("OneHot", [("i", np.bool_, [3])], [("y", np.float32, [3, 4])],
                        {"depth": np.array(4, np.int64), "v": np.array([0, 1], np.float32)}, opset=11)
    expect_failure(model, "unsupported_dtype")


def test_one_hot_runtime_depth_fails():
    """A run-time depth needs the static output shape (which implies it)."""
    model = _node_model("OneHot", [("i", np.int64, [3]), ("d", np.int64, [1])], [("y", np.float32, [3, None])],
                        {"v": np.array([0, 1], np.float32)})
    expect_failure(model, "requires_constant_input")


# -- TopK ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("axis", [-1, 1, 0])
@pytest.mark.parametrize("largest", [1, 0])
def test_topk(dtype, axis, largest):
    shape = (4, 5, 6)
    x = _data(shape, dtype)  # small integers: ties must keep the lower index first
    model = _node_model("TopK", [("x", dtype, list(shape))], [("v", dtype, None), ("i", np.int64, None)],
                        {"k": np.array([3], np.int64)}, opset=11, axis=axis, largest=largest)
    check_model(model, {"x": x})


@pytest.mark.parametrize("opset", [7, 10])
def test_topk_old_opsets(opset):
    if opset < 10:
        model = _node_model("TopK", [("x", np.float32, [3, 7])], [("v", np.float32, None), ("i", np.int64, None)],
                            opset=opset, k=2)
    else:
        model = _node_model("TopK", [("x", np.float32, [3, 7])], [("v", np.float32, None), ("i", np.int64, None)],
                            {"k": np.array([7], np.int64)}, opset=opset)
    check_model(model)


def test_topk_unsorted():
    """sorted=0 leaves the order unspecified: compare as sets (distinct floats, so no ties)."""
    model = _node_model("TopK", [("x", np.float32, [2, 5])], [("v", np.float32, None), ("i", np.int64, None)],
                        {"k": np.array([3], np.int64)}, opset=11, sorted=0)
    feeds = {"x": _data((2, 5), np.float32)}
    got = run_tflite(onnx2litert.convert(model).artifacts["float32"], feeds)
    ref = run_onnx(model.SerializeToString(), feeds)
    order = np.argsort(ref["i"], axis=-1)
    np.testing.assert_array_equal(np.sort(got["i"], axis=-1), np.take_along_axis(ref["i"], order, -1))
    np.testing.assert_array_equal(np.take_along_axis(feeds["x"], got["i"], -1), got["v"])


def test_topk_smallest_uint8_fails():
    model = _node_model("TopK", [("x", np.uint8, [2, 5])], [("v", np.uint8, None), ("i", np.int64, None)],
                        {"k": np.array([2], np.int64)}, opset=11, largest=0)
    expect_failure(model, "unsupported_dtype")


def test_topk_runtime_k_fails():
    model = _node_model("TopK", [("x", np.float32, [2, 5]), ("k", np.int64, [1])],
                        [("v", np.float32, [2, None]), ("i", np.int64, [2, None])], opset=11)
    expect_failure(model, "requires_constant_input")


# -- CumSum ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum(dtype, exclusive, reverse, axis):
    model = _node_model("CumSum", [("x", dtype, [3, 5])], [("y", dtype, [3, 5])],
                        {"axis": np.array(axis, np.int64)}, opset=14, exclusive=exclusive, reverse=reverse)
    check_model(model, {"x": _data((3, 5), dtype)})


def test_cumsum_opset11_int32_axis():
    model = _node_model("CumSum", [("x", np.float32, [2, 3, 4])], [("y", np.float32, [2, 3, 4])],
                        {"axis": np.array([1], np.int32)}, opset=11)
    check_model(model)


def test_cumsum_runtime_axis():
    model = _node_model("CumSum", [("x", np.float32, [3]), ("a", np.int64, [])], [("y", np.float32, [3])])
    check_model(model, {"x": np.array([1, 2, 3], np.float32), "a": np.array(-1, np.int64)})


# -- Range -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,start,limit,delta", [
    (np.float32, 0.5, 3.2, 0.3), (np.int32, 10, -2, -3), (np.int64, 1, 9, 2)])
def test_range_constant(dtype, start, limit, delta):
    """A constant Range that is a graph output (the frontend does not fold those)."""
    inits = {"s": np.array(start, dtype), "l": np.array(limit, dtype), "d": np.array(delta, dtype)}
    nodes = [helper.make_node("Range", ["s", "l", "d"], ["y"]), helper.make_node("Neg", ["x"], ["x2"])]
    model = make_model(nodes, [("x", np.float32, [1])], [("y", dtype, None), ("x2", np.float32, [1])], inits)
    check_model(model, {"x": np.ones(1, np.float32)})


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
def test_range_runtime(dtype):
    model = _node_model("Range", [("s", dtype, []), ("l", dtype, []), ("d", dtype, [])], [("y", dtype, [None])])
    feeds = {"s": np.array(1, dtype), "l": np.array(8, dtype), "d": np.array(2, dtype)}
    check_model(model, feeds)


# -- Tile / Expand ---------------------------------------------------------------------------------
_DATA_DTYPES = [np.float32, np.int32, np.int64, np.int8, np.uint8, np.bool_]


@pytest.mark.parametrize("dtype", _DATA_DTYPES)
def test_tile(dtype):
    model = _node_model("Tile", [("x", dtype, [2, 3])], [("y", dtype, None)], {"r": np.array([2, 3], np.int64)})
    check_model(model, {"x": _data((2, 3), dtype)})


@pytest.mark.parametrize("opset", [7, 13])
def test_tile_opsets(opset):
    model = _node_model("Tile", [("x", np.float32, [1, 2, 3])], [("y", np.float32, None)],
                        {"r": np.array([3, 1, 2], np.int64)}, opset=opset)
    check_model(model)


def test_tile_runtime_repeats_unknown_shape_fails():
    model = _node_model("Tile", [("x", np.float32, [2]), ("r", np.int64, [1])], [("y", np.float32, [None])])
    expect_failure(model, "dynamic_shape_unsupported")


@pytest.mark.parametrize("dtype", _DATA_DTYPES)
@pytest.mark.parametrize("shape", [[2, 3, 4], [3, 1], [1], [4, 1, 1]])
def test_expand(dtype, shape):
    model = _node_model("Expand", [("x", dtype, [3, 1])], [("y", dtype, None)], {"s": np.array(shape, np.int64)})
    check_model(model, {"x": _data((3, 1), dtype)})


def test_expand_opset8_and_runtime_shape_fails():
    model = _node_model("Expand", [("x", np.float32, [1, 4])], [("y", np.float32, None)],
                        {"s": np.array([3, 1], np.int64)}, opset=8)
    check_model(model)
    model = _node_model("Expand", [("x", np.float32, [1, 4]), ("s", np.int64, [2])], [("y", np.float32, None)])
    expect_failure(model, "requires_constant_input")


# -- Trilu / EyeLike -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.bool_])
@pytest.mark.parametrize("upper", [1, 0])
@pytest.mark.parametrize("k", [None, 0, 1, -2, 5])
def test_trilu(dtype, upper, k):
    inits = {} if k is None else {"k": np.array(k, np.int64)}
    model = _node_model("Trilu", [("x", dtype, [2, 3, 4])], [("y", dtype, [2, 3, 4])], inits, opset=14,
                        upper=upper)
    check_model(model, {"x": _data((2, 3, 4), dtype)})


def test_trilu_runtime_k():
    model = _node_model("Trilu", [("x", np.float32, [3, 3]), ("k", np.int64, [])], [("y", np.float32, [3, 3])],
                        opset=14)
    check_model(model, {"x": _data((3, 3), np.float32), "k": np.array(1, np.int64)})


@pytest.mark.parametrize("dtype", [None, np.float32, np.int32, np.int64])
@pytest.mark.parametrize("k", [0, 1, -2])
def test_eye_like(dtype, k):
    attrs = {"k": k}
    if dtype is not None:
        attrs["dtype"] = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    out_dtype = dtype or np.float32
    model = _node_model("EyeLike", [("x", np.float32, [3, 4])], [("y", out_dtype, [3, 4])], **attrs)
    check_model(model)


# -- NonZero / Compress ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_nonzero(dtype):
    x = _data((3, 4), dtype)
    if dtype != np.bool_:
        x = (x * (np.abs(x) > 1)).astype(dtype)
    model = _node_model("NonZero", [("x", dtype, [3, 4])], [("y", np.int64, [2, None])])
    check_model(model, {"x": x})


@pytest.mark.parametrize("dtype", _GATHER_DTYPES)
@pytest.mark.parametrize("axis", [None, 0, -1])
def test_compress(dtype, axis):
    cond = np.array([True, False, True], bool)
    attrs = {} if axis is None else {"axis": axis}
    model = _node_model("Compress", [("x", dtype, [3, 3])], [("y", dtype, None)], {"c": cond}, opset=11, **attrs)
    check_model(model, {"x": _data((3, 3), dtype)})


def test_compress_runtime_condition_dynamic():
    """An unknown output length stays data-dependent (shape_signature -1), like NonZero's."""
    model = _node_model("Compress", [("x", np.float32, [3]), ("c", np.bool_, [3])], [("y", np.float32, [None])])
    check_model(model, {"x": np.array([1, 2, 3], np.float32), "c": np.array([True, False, True])})


def test_nonzero_consumer_with_static_shape_needs_fails_clearly():
    """A consumer of a data-dependent shape must opt in; others refuse with dynamic_shape_unsupported."""
    nodes = [helper.make_node("NonZero", ["x"], ["n"]), helper.make_node("Transpose", ["n"], ["t"]),
             helper.make_node("GatherND", ["x", "t"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [3, 4])], [("y", np.float32, [None])])
    expect_failure(model, "dynamic_shape_unsupported")


# -- Unique ----------------------------------------------------------------------------------------
_UNIQUE_DTYPES = [np.float32, np.int64, np.int8]
_UNIQUE_OUTS = ["y", "indices", "inverse", "counts"]


def _unique_model(shape, dtype, outputs=None, opset: int = 11, **attrs):
    outputs = outputs or _UNIQUE_OUTS
    outs = [(o, dtype if o == "y" else np.int64, None) for o in outputs]
    node = helper.make_node("Unique", ["x"], [o if o in outputs else "" for o in _UNIQUE_OUTS[:1 + max(
        _UNIQUE_OUTS.index(o) for o in outputs)]], **attrs)
    return make_model([node], [("x", dtype, list(shape))], outs, None, opset)


def _few_values(shape, dtype, seed: int = RNG_SEED) -> np.ndarray:
    """Seeded values from a small set, so slices repeat."""
    return _rng(seed).integers(-2, 3, shape).astype(dtype)


@pytest.mark.parametrize("dtype", _UNIQUE_DTYPES)
@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("shape", [(6,), (2, 3, 4), (1,)])
def test_unique_flattened(dtype, sorted_, shape):
    model = _unique_model(shape, dtype, sorted=sorted_)
    check_model(model, {"x": _few_values(shape, dtype)})


@pytest.mark.parametrize("dtype", _UNIQUE_DTYPES)
@pytest.mark.parametrize("sorted_", [0, 1])
@pytest.mark.parametrize("shape,axis", [((5, 2), 0), ((3, 5), -1), ((2, 5, 2), 1), ((2, 2, 4), 2), ((5,), 0)])
def test_unique_axis(dtype, sorted_, shape, axis):
    x = _rng(1).integers(0, 2, shape).astype(dtype)  # two values: many repeated slices
    check_model(_unique_model(shape, dtype, axis=axis, sorted=sorted_), {"x": x})


def test_unique_lexicographic_order_beyond_first_element():
    """Slices tied on their first elements are ordered by later ones."""
    x = np.array([[1, 2, 0], [1, 1, 5], [0, 9, 9], [1, 1, 5], [1, 2, -1]], np.float32)
    check_model(_unique_model(x.shape, np.float32, axis=0, sorted=1), {"x": x})


def test_unique_default_sorted_and_signed_zero():
    x = np.array([0.0, -0.0, 3.5, -1.0, 3.5, np.inf, -np.inf], np.float32)
    check_model(_unique_model(x.shape, np.float32), {"x": x})


@pytest.mark.parametrize("outputs", [["y"], ["y", "counts"], ["y", "inverse"]])
def test_unique_optional_outputs(outputs):
    x = _few_values((7,), np.float32)
    check_model(_unique_model((7,), np.float32, outputs, sorted=1), {"x": x})


def test_unique_all_equal_and_all_distinct():
    check_model(_unique_model((5,), np.int64), {"x": np.full(5, 3, np.int64)})
    check_model(_unique_model((5,), np.int64, sorted=0), {"x": np.array([4, -1, 2, 0, 3], np.int64)})


def test_unique_dynamic_outputs_are_marked():
    result = onnx2litert.convert(_unique_model((4,), np.float32))
    assert result.op_counts.get("SLICE", 0) >= 1


def test_unique_too_many_pairs_refused():
    expect_failure(_unique_model((2048,), np.float32), "unsupported_attribute_value")


def test_unique_unsupported_dtype():
    expect_failure(_unique_model((4,), np.int32), "unsupported_dtype")
