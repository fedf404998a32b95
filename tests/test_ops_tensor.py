"""Tensor-family lowerings: LiteRT vs ONNX Runtime on tiny models, every variant and claimed dtype."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnx2litert
from onnx import helper, numpy_helper

from onnx2litert.lower.ops.tensor import DATA, RESHAPE_DATA, onnx_pad_index, onnx_slice_bounds, reshape_target
from onnx2litert.lower.registry import REGISTRY
from tests.helpers import check_model, expect_failure, single_op_model
from tests.helpers import make_model as _make_model

F32 = np.float32
I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min
ALL = [np.dtype(d) for d in DATA]
# bfloat16 (no ONNX Runtime Python I/O) is checked against the ONNX reference in tests/test_bfloat16.py.
RESHAPE_ALL = [np.dtype(d) for d in RESHAPE_DATA if d != "bfloat16"]


def ids(dtypes: list[np.dtype]) -> list[str]:
    return [d.name for d in dtypes]


def i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


def with_inferred_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give graph outputs declared without a shape the one ONNX inference finds (the checker wants one)."""
    inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model, data_prop=True).graph.output}
    for vi in model.graph.output:
        if vi.name in inferred and inferred[vi.name].type.tensor_type.HasField("shape"):
            vi.CopyFrom(inferred[vi.name])
    return model


def make_model(*args, **kwargs) -> onnx.ModelProto:
    return with_inferred_outputs(_make_model(*args, **kwargs))


def single(op: str, x_shape: list, dtype=F32, inits: dict | None = None, opset: int = 17,
           input_names: list[str] | None = None, n_outputs: int = 1, **attrs):
    """One node whose data input ``x`` is a graph input (run-time data)."""
    return with_inferred_outputs(
        single_op_model(op, [("x", dtype, x_shape)], None, dtype, inits, opset, n_outputs, input_names, **attrs))


def lowered(model: onnx.ModelProto, feeds: dict | None = None) -> dict[str, int]:
    """Check the raw lowering (IR passes off) against ONNX Runtime; return its op counts."""
    return check_model(model, feeds, optimize=False).op_counts


# -- registry claims ----------------------------------------------------------------------------
def test_claims_are_consistent():
    """Every tensor-family lowering only claims verified dtypes it accepts."""
    for op in ("Flatten", "Reshape", "Transpose", "Concat", "Split", "Slice", "Squeeze", "Unsqueeze",
               "Pad", "Gather", "Shape", "Size", "ConstantOfShape", "Identity", "Constant"):
        entry = REGISTRY.find("", op, 17)
        assert entry is not None, op
        assert set(entry.verified) <= set(entry.dtypes), op


# -- Flatten ----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
def test_flatten_axis(axis):
    assert lowered(single("Flatten", [2, 3, 2], axis=axis, opset=13)) == {"RESHAPE": 1}


@pytest.mark.parametrize("opset", [9, 11, 13, 21])
def test_flatten_opsets(opset):
    check_model(single("Flatten", [2, 3, 2], opset=opset))


@pytest.mark.parametrize("dtype", RESHAPE_ALL, ids=ids(RESHAPE_ALL))
def test_flatten_dtypes(dtype):
    check_model(single("Flatten", [2, 3, 2], dtype, axis=2))


# -- Reshape ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6, 2), (-1, 4), (0, -1), (2, 0, 2), (3, -1, 1, 2), (12,), (-1,)])
def test_reshape_shapes(shape):
    assert lowered(single("Reshape", [2, 3, 2], inits={"s": i64(*shape)})) == {"RESHAPE": 1}


@pytest.mark.parametrize("opset", [7, 13, 14, 19, 21])
def test_reshape_opsets(opset):
    check_model(single("Reshape", [2, 3, 2], inits={"s": i64(0, 6)}, opset=opset))


def test_reshape_allowzero_without_zero():
    check_model(single("Reshape", [2, 3, 2], inits={"s": i64(3, -1)}, opset=14, allowzero=1))


def test_reshape_allowzero_with_zero_is_refused():
    # allowzero=1 makes 0 a real (empty) dimension: the element counts then cannot match. (Checked on
    # the helper: the driver writes a node whose inferred outputs are all zero-sized as empty constants
    # before any lowering sees it.)
    assert isinstance(reshape_target((2, 3), (0, 6), allowzero=True), str)
    assert reshape_target((0, 3), (3, 0), allowzero=True) == (3, 0)


@pytest.mark.parametrize("dtype", RESHAPE_ALL, ids=ids(RESHAPE_ALL))
def test_reshape_dtypes(dtype):
    check_model(single("Reshape", [2, 3, 2], dtype, inits={"s": i64(-1, 3)}))


def test_reshape_runtime_shape_requires_constant():
    model = make_model([helper.make_node("Reshape", ["x", "s"], ["y"])],
                       [("x", F32, [2, 3]), ("s", np.int64, [2])], [("y", F32, None)])
    expect_failure(model, "requires_constant_input")


def test_reshape_of_constant_feeding_output():
    """A constant data input survives folding only when the node yields a graph output."""
    c = np.arange(6, dtype=F32).reshape(2, 3)
    model = make_model([helper.make_node("Reshape", ["c", "s"], ["y"]), helper.make_node("Relu", ["x"], ["z"])],
                       [("x", F32, [2])], [("y", F32, [3, 2]), ("z", F32, [2])], {"c": c, "s": i64(3, 2)})
    check_model(model)


# -- Transpose --------------------------------------------------------------------------------
@pytest.mark.parametrize("perm", [None, (0, 2, 1), (2, 0, 1), (1, 0, 2), (0, 1, 2)])
def test_transpose_perm(perm):
    attrs = {} if perm is None else {"perm": list(perm)}
    identity = perm == (0, 1, 2)  # an identity permutation is a plain copy
    assert lowered(single("Transpose", [2, 3, 4], **attrs)) == ({"RESHAPE": 1} if identity else {"TRANSPOSE": 1})


@pytest.mark.parametrize("rank", [1, 2, 4, 5, 6])
def test_transpose_ranks(rank):
    check_model(single("Transpose", [2, 1, 3, 1, 2, 2][:rank]))


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_transpose_dtypes(dtype):
    check_model(single("Transpose", [2, 3, 4], dtype, perm=[1, 2, 0]))


def test_transpose_rank7_refused():
    expect_failure(single("Transpose", [1, 2, 1, 2, 1, 2, 1]), "unsupported_attribute_value")


@pytest.mark.parametrize("opset", [7, 13, 21])
def test_transpose_opsets(opset):
    check_model(single("Transpose", [2, 3], opset=opset, perm=[1, 0]))


# -- Concat -----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_concat_axis(axis):
    shape_b = [2, 3, 4]
    shape_b[axis] = 1
    model = make_model([helper.make_node("Concat", ["a", "b"], ["y"], axis=axis)],
                       [("a", F32, [2, 3, 4]), ("b", F32, shape_b)], [("y", F32, None)])
    assert lowered(model) == {"CONCATENATION": 1}


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_concat_dtypes_with_constant(dtype):
    c = (np.arange(4) % 2).astype(dtype).reshape(2, 2)
    model = make_model([helper.make_node("Concat", ["a", "c", "a"], ["y"], axis=1)],
                       [("a", dtype, [2, 3])], [("y", dtype, None)], {"c": c})
    check_model(model)


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_concat_opsets(opset):
    model = make_model([helper.make_node("Concat", ["a", "b"], ["y"], axis=0)],
                       [("a", F32, [1, 3]), ("b", F32, [2, 3])], [("y", F32, None)], opset=opset)
    check_model(model)


def test_concat_single_and_empty_inputs():
    c = np.zeros((2, 0), F32)
    model = make_model([helper.make_node("Concat", ["a", "c"], ["y"], axis=1)],
                       [("a", F32, [2, 3])], [("y", F32, None)], {"c": c})
    assert lowered(model) == {"RESHAPE": 1}


def test_concat_rank7_via_3d():
    model = make_model([helper.make_node("Concat", ["a", "b"], ["y"], axis=3)],
                       [("a", F32, [1, 2, 1, 2, 1, 2, 1]), ("b", F32, [1, 2, 1, 1, 1, 2, 1])], [("y", F32, None)])
    check_model(model)


# -- Split ------------------------------------------------------------------------------------
def split_model(x_shape, n, opset, dtype=F32, inits=None, input_names=None, **attrs):
    return single("Split", x_shape, dtype, inits, opset, input_names, n_outputs=n, **attrs)


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_split_equal_default(opset):
    assert lowered(split_model([2, 6], 3, opset, axis=1)) == {"SPLIT": 1}


@pytest.mark.parametrize("axis", [0, -1, 1])
def test_split_negative_axis(axis):
    check_model(split_model([4, 4], 2, 13, axis=axis))


@pytest.mark.parametrize("opset", [7, 11])
def test_split_attr(opset):
    assert lowered(split_model([2, 6], 3, opset, axis=1, split=[1, 2, 3])) == {"SPLIT_V": 1}


@pytest.mark.parametrize("opset", [13, 18])
def test_split_input(opset):
    assert lowered(split_model([5, 2], 2, opset, inits={"s": i64(2, 3)})) == {"SPLIT_V": 1}


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("dim,n", [(6, 3), (7, 3), (5, 2), (8, 3)])
def test_split_num_outputs(dim, n, opset):
    expected = "SPLIT" if dim % n == 0 else "SPLIT_V"
    assert lowered(split_model([2, dim], n, opset, axis=1, num_outputs=n)) == {expected: 1}


def test_split_num_outputs_empty_chunk_refused():
    # ceil(4 / 3) = 2 leaves nothing for the third output: a zero-sized tensor.
    expect_failure(split_model([4], 3, 18, num_outputs=3), "unsupported_attribute_value")


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
@pytest.mark.parametrize("uneven", [False, True])
def test_split_dtypes(dtype, uneven):
    attrs = {"split": [1, 3]} if uneven else {}
    check_model(split_model([2, 4], 2, 11, dtype, axis=1, **attrs))


def test_split_single_output():
    assert lowered(split_model([2, 4], 1, 13)) == {"RESHAPE": 1}


def test_split_runtime_sizes_require_constant():
    model = make_model([helper.make_node("Split", ["x", "s"], ["a", "b"])],
                       [("x", F32, [4]), ("s", np.int64, [2])], [("a", F32, None), ("b", F32, None)], opset=13)
    expect_failure(model, "requires_constant_input")


def test_split_indivisible_refused():
    expect_failure(split_model([5], 2, 13), "unsupported_attribute_value")


# -- Slice ------------------------------------------------------------------------------------
SLICE_CASES = [
    # starts, ends, axes, steps
    ([1], [3], [0], None),
    ([0, 1], [2, 4], None, None),
    ([-3], [-1], [1], None),
    ([1], [I64_MAX], [1], None),
    ([0], [I64_MAX], [-1], [2]),
    ([-1], [I64_MIN], [1], [-1]),
    ([4], [0], [1], [-2]),
    ([10], [-10], [1], [-1]),
    ([-100], [100], [0], [1]),
    ([2, 0], [0, 5], [1, 2], [-1, 3]),
    ([0], [3], [2], [I64_MAX]),
]


@pytest.mark.parametrize("starts,ends,axes,steps", SLICE_CASES)
def test_slice_inputs(starts, ends, axes, steps):
    inits = {"s": i64(*starts), "e": i64(*ends)}
    names = ["x", "s", "e"]
    if axes is not None or steps is not None:
        inits["a"] = i64(*(axes if axes is not None else range(len(starts))))
        names.append("a")
    if steps is not None:
        inits["st"] = i64(*steps)
        names.append("st")
    model = single("Slice", [3, 5, 4], inits=inits, input_names=names, opset=13)
    assert lowered(model) == {"STRIDED_SLICE": 1}


@pytest.mark.parametrize("opset", [10, 11, 13])
def test_slice_opsets(opset):
    check_model(single("Slice", [3, 5], inits={"s": i64(1), "e": i64(-1), "a": i64(1)}, opset=opset))


@pytest.mark.parametrize("axes", [None, [1], [-1, 0]])
def test_slice_attrs_opset7(axes):
    starts, ends = ([1], [4]) if axes == [1] else ([1, 0], [3, 2])
    if axes is None:
        starts, ends = [1, 2], [3, 1000]
    attrs = {"starts": starts, "ends": ends}
    if axes is not None:
        attrs["axes"] = axes
    check_model(single("Slice", [3, 5], opset=7, **attrs))


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_slice_dtypes(dtype):
    inits = {"s": i64(2, 0), "e": i64(I64_MIN, 3), "a": i64(0, 1), "st": i64(-1, 2)}
    check_model(single("Slice", [3, 4], dtype, inits=inits))


def test_slice_rank6():
    inits = {"s": i64(1, -1), "e": i64(2, I64_MIN), "a": i64(0, 5), "st": i64(1, -2)}
    check_model(single("Slice", [2, 1, 2, 1, 2, 3], inits=inits))


def test_slice_runtime_starts_require_constant():
    model = make_model([helper.make_node("Slice", ["x", "s", "e"], ["y"])],
                       [("x", F32, [4]), ("s", np.int64, [1])], [("y", F32, None)], {"e": i64(3)})
    expect_failure(model, "requires_constant_input")


def test_slice_empty_is_an_empty_constant():
    # An empty result has no values: the lowering writes an empty constant (the driver copies it out).
    assert lowered(single("Slice", [4], inits={"s": i64(3), "e": i64(1)})) == {"RESHAPE": 1}


@pytest.mark.parametrize("dim", [1, 4, 5])
@pytest.mark.parametrize("start", [-7, -1, 0, 2, 9, I64_MAX, I64_MIN])
@pytest.mark.parametrize("end", [-7, -1, 0, 3, 9, I64_MAX, I64_MIN])
@pytest.mark.parametrize("step", [1, 2, -1, -3])
def test_slice_bounds_match_spec(dim, start, end, step):
    """The clamping helper agrees with a literal reading of the ONNX Slice spec."""
    s = start + dim if start < 0 else start
    e = end + dim if end < 0 else end
    if step > 0:
        s, e = min(max(s, 0), dim), min(max(e, 0), dim)
        expected = list(range(s, e, step))
    else:
        s, e = min(max(s, 0), dim - 1), min(max(e, -1), dim - 1)
        expected = list(range(s, e, step))
    b, e2, count = onnx_slice_bounds(start, end, step, dim)
    assert count == len(expected)
    assert list(range(b, e2, step)) == expected


# -- Squeeze / Unsqueeze -------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [7, 11, 13, 21])
@pytest.mark.parametrize("axes", [None, [0], [-1], [0, 2]])
def test_squeeze(opset, axes):
    if axes is None:
        model = single("Squeeze", [1, 3, 1], opset=opset)
    elif opset < 13:
        if min(axes) < 0 and opset < 11:
            pytest.skip("negative axes arrived in opset 11")
        model = single("Squeeze", [1, 3, 1], opset=opset, axes=axes)
    else:
        model = single("Squeeze", [1, 3, 1], inits={"a": i64(*axes)}, opset=opset)
    assert lowered(model) == {"RESHAPE": 1}


@pytest.mark.parametrize("opset", [7, 11, 13, 21])
@pytest.mark.parametrize("axes", [[0], [-1], [0, 3], [1, -1]])
def test_unsqueeze(opset, axes):
    if opset < 13:
        if min(axes) < 0 and opset < 11:
            pytest.skip("negative axes arrived in opset 11")
        model = single("Unsqueeze", [2, 3], opset=opset, axes=axes)
    else:
        model = single("Unsqueeze", [2, 3], inits={"a": i64(*axes)}, opset=opset)
    assert lowered(model) == {"RESHAPE": 1}


@pytest.mark.parametrize("dtype", RESHAPE_ALL, ids=ids(RESHAPE_ALL))
def test_squeeze_unsqueeze_dtypes(dtype):
    nodes = [helper.make_node("Unsqueeze", ["x", "a"], ["u"]), helper.make_node("Squeeze", ["u", "b"], ["y"])]
    model = make_model(nodes, [("x", dtype, [2, 3])], [("y", dtype, None)], {"a": i64(0, 3), "b": i64(0)}, opset=13)
    assert lowered(model) == {"RESHAPE": 2}
    check_model(model)


def test_squeeze_runtime_axes_require_constant():
    model = make_model([helper.make_node("Squeeze", ["x", "a"], ["y"])],
                       [("x", F32, [1, 3]), ("a", np.int64, [1])], [("y", F32, None)], opset=13)
    expect_failure(model, "requires_constant_input")


# -- Pad --------------------------------------------------------------------------------------
@pytest.mark.parametrize("pads", [[0, 1, 2, 0], [1, 1, 1, 1], [0, -1, 1, 0], [-1, 1, 0, -1], [0, 0, 0, 0]])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes(pads, mode):
    check_model(single("Pad", [3, 4], inits={"p": i64(*pads)}, opset=19, mode=mode))


@pytest.mark.parametrize("mode", ["constant", "edge", "wrap"])
def test_pad_wide_and_cropping(mode):
    """Negative pads crop first; edge / wrap pads may exceed the (cropped) dimension."""
    check_model(single("Pad", [3, 4], inits={"p": i64(-1, 5, 0, -2)}, opset=19, mode=mode))


def test_pad_ops_emitted():
    assert lowered(single("Pad", [3, 4], inits={"p": i64(0, 1, 2, 0)})) == {"PAD": 1}
    assert lowered(single("Pad", [3, 4], inits={"p": i64(0, 1, 2, 0), "v": np.array(1.5, F32)})) \
        == {"PADV2": 1}
    assert lowered(single("Pad", [3, 4], inits={"p": i64(0, 1, 2, 0)}, mode="reflect")) \
        == {"MIRROR_PAD": 1}
    assert lowered(single("Pad", [3, 4], inits={"p": i64(0, 1, 2, 0)}, mode="edge")) == {"GATHER": 2}
    assert lowered(single("Pad", [3, 4], inits={"p": i64(0, -1, 2, 0)})) \
        == {"PAD": 1, "STRIDED_SLICE": 1}


@pytest.mark.parametrize("value", [0.0, 1.5, -2.0])
@pytest.mark.parametrize("opset", [7, 10])
def test_pad_attrs_before_11(value, opset):
    check_model(single("Pad", [2, 3], opset=opset, pads=[0, 1, 1, 0], value=value))


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_pad_mode_attr_before_11(mode):
    check_model(single("Pad", [3, 3], opset=7, pads=[1, 0, 0, 2], mode=mode))


@pytest.mark.parametrize("opset", [11, 13, 18, 21])
def test_pad_constant_value_input(opset):
    check_model(single("Pad", [2, 3], inits={"p": i64(1, 0, 0, 2), "v": np.array(3.0, F32)}, opset=opset))


def test_pad_runtime_constant_value():
    model = make_model([helper.make_node("Pad", ["x", "p", "v"], ["y"])],
                       [("x", F32, [2, 3]), ("v", F32, [])], [("y", F32, None)], {"p": i64(1, 0, 0, 2)})
    check_model(model)


@pytest.mark.parametrize("axes", [[1], [-1], [0, 1], [1, 0]])
@pytest.mark.parametrize("mode", ["constant", "edge"])
def test_pad_axes_opset18(axes, mode):
    pads = list(range(1, len(axes) + 1)) * 2
    inits = {"p": i64(*pads), "v": np.array(2.0, F32), "a": i64(*axes)}
    names = ["x", "p", "v" if mode == "constant" else "", "a"]
    check_model(single("Pad", [2, 3, 2], inits=inits, input_names=names, opset=18, mode=mode))


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
def test_pad_dtypes(dtype, mode):
    check_model(single("Pad", [3, 3], dtype, inits={"p": i64(1, 0, 1, 2)}, mode=mode))


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_pad_dtypes_nonzero_value(dtype):
    value = np.array(True if dtype == np.bool_ else 3, dtype)
    check_model(single("Pad", [3, 3], dtype, inits={"p": i64(1, 0, 1, 2), "v": value}))


def test_pad_rank5_and_6():
    check_model(single("Pad", [1, 2, 1, 2, 2], inits={"p": i64(0, 1, 0, 0, 1, 0, 0, 1, 0, 1),
                                                       "v": np.array(1.0, F32)}))
    check_model(single("Pad", [1, 2, 1, 2, 1, 2], inits={"p": i64(0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1)}))


def test_pad_rank6_nonzero_value_refused():
    model = single("Pad", [1, 2, 1, 2, 1, 2], inits={"p": i64(*([0, 1] * 6)), "v": np.array(1.0, F32)})
    expect_failure(model, "unsupported_attribute_value")


@pytest.mark.parametrize("pads", [[2, 0, 0, 0], [0, 2, 0, -2]])
def test_pad_reflect_too_wide_refused(pads):
    # ONNX Runtime refuses these too: a reflect pad must be smaller than the cropped dimension.
    expect_failure(single("Pad", [2, 4], inits={"p": i64(*pads)}, mode="reflect"), "unsupported_attribute_value")


def test_pad_runtime_pads_require_constant():
    model = make_model([helper.make_node("Pad", ["x", "p"], ["y"])],
                       [("x", F32, [2, 3]), ("p", np.int64, [4])], [("y", F32, None)])
    expect_failure(model, "requires_constant_input")


def test_pad_index_helper():
    assert onnx_pad_index(2, 1, 3, "edge").tolist() == [0, 0, 0, 1, 2, 2]
    assert onnx_pad_index(2, 1, 3, "wrap").tolist() == [1, 2, 0, 1, 2, 0]
    assert onnx_pad_index(-1, 2, 4, "edge").tolist() == [1, 2, 3, 3, 3]


# -- Gather -----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
@pytest.mark.parametrize("indices", [[0, 2], [-1, 0, -2], [[1, -1], [0, 1]], 1, -2])
def test_gather_constant_indices(axis, indices):
    model = single("Gather", [3, 3, 4], inits={"i": np.array(indices, np.int64)}, axis=axis)
    assert lowered(model) == {"GATHER": 1}


def _gather_runtime_model(idx_dtype, idx_shape, axis):
    model = make_model([helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)],
                       [("x", F32, [3, 4]), ("i", idx_dtype, idx_shape)], [("y", F32, None)])
    dim = 3 if axis == 0 else 4
    rng = np.random.default_rng(1)
    # Every valid index, negative ones included, appears at least once across the cases.
    values = np.resize(np.arange(-dim, dim), int(np.prod(idx_shape, dtype=np.int64)))
    feeds = {"x": rng.standard_normal((3, 4)).astype(F32),
             "i": rng.permutation(values).reshape(idx_shape).astype(idx_dtype)}
    return model, feeds


@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("idx_shape", [[3], [2, 4]])
@pytest.mark.parametrize("axis", [0, -1])
def test_gather_runtime_indices(idx_dtype, idx_shape, axis):
    model, feeds = _gather_runtime_model(idx_dtype, idx_shape, axis)
    assert lowered(model, feeds) == {"FLOOR_MOD": 1, "GATHER": 1}


@pytest.mark.parametrize("idx_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("index", [-3, -1, 0, 2])
def test_gather_runtime_scalar_index(idx_dtype, index):
    """A scalar run-time index drops the axis. Run directly: tests.helpers' runner feeds 0-d inputs as (1,)."""
    from ai_edge_litert.interpreter import Interpreter

    from onnx2litert.evaluate import run_onnx

    model, feeds = _gather_runtime_model(idx_dtype, [], 0)
    feeds["i"] = np.array(index, idx_dtype)
    res = onnx2litert.convert(model)
    expected = run_onnx(model.SerializeToString(), feeds)["y"]
    got = Interpreter(model_content=res.artifacts["float32"]).get_signature_runner("serving_default")(**feeds)["y"]
    assert got.shape == expected.shape == (4,)
    np.testing.assert_array_equal(got, expected)


def test_gather_constant_table_runtime_indices():
    table = np.arange(12, dtype=F32).reshape(4, 3)
    model = make_model([helper.make_node("Gather", ["t", "i"], ["y"])],
                       [("i", np.int64, [2, 3])], [("y", F32, None)], {"t": table})
    check_model(model, {"i": np.array([[0, -1, 3], [-4, 2, 1]], np.int64)})


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_gather_dtypes(dtype):
    check_model(single("Gather", [3, 4], dtype, inits={"i": i64(2, -1, 0)}, axis=1))


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_gather_opsets(opset):
    check_model(single("Gather", [3, 4], inits={"i": i64(2, 0)}, opset=opset))


def test_gather_out_of_range_constant_refused():
    expect_failure(single("Gather", [3, 4], inits={"i": i64(3)}), "unsupported_attribute_value")


# -- Shape / Size -------------------------------------------------------------------------------
def shape_model(op: str, dtype=F32, opset: int = 17, **attrs):
    """Shape/Size whose result is a graph output (the frontend keeps those) and also feeds an Add."""
    nodes = [helper.make_node(op, ["x"], ["s"], **attrs), helper.make_node("Add", ["s", "one"], ["y"])]
    return make_model(nodes, [("x", dtype, [2, 3, 4])], [("s", np.int64, None), ("y", np.int64, None)],
                      {"one": np.array(1, np.int64)}, opset=opset)


@pytest.mark.parametrize("start,end", [(None, None), (1, None), (None, -1), (-2, 3), (-10, 10), (0, 1)])
def test_shape_start_end(start, end):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    assert lowered(shape_model("Shape", opset=15, **attrs)).get("SHAPE") == 1


@pytest.mark.parametrize("opset", [7, 13, 15, 19, 21])
def test_shape_opsets(opset):
    check_model(shape_model("Shape", opset=opset))


@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_shape_size_dtypes(dtype):
    check_model(shape_model("Shape", dtype))
    assert lowered(shape_model("Size", dtype)).get("REDUCE_PROD") == 1


@pytest.mark.parametrize("op", ["Shape", "Size"])
def test_shape_of_static_input_folds_away(op):
    """Not a graph output: the frontend folds Shape/Size of a static input into a constant."""
    nodes = [helper.make_node(op, ["x"], ["s"]), helper.make_node("Cast", ["s"], ["c"], to=1),
             helper.make_node("Add", ["x", "c"], ["y"])]
    shape = [2, 3] if op == "Size" else [2, 2]
    model = make_model(nodes, [("x", F32, shape)], [("y", F32, None)])
    assert lowered(model) == {"ADD": 1}


def test_shape_feeding_reshape_folds():
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Reshape", ["z", "s"], ["y"])]
    model = make_model(nodes, [("x", F32, [2, 3]), ("z", F32, [6])], [("y", F32, None)])
    assert lowered(model) == {"RESHAPE": 1}


# -- ConstantOfShape ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL, ids=ids(ALL))
def test_constant_of_shape_runtime_dims(dtype):
    """The dims come from a kept (graph-output) Shape, so they are computed at run time -> FILL."""
    value = numpy_helper.from_array(np.array([1 if dtype != np.bool_ else True], dtype), "value")
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["y"], value=value)]
    model = make_model(nodes, [("x", F32, [2, 3])], [("s", np.int64, None), ("y", dtype, None)])
    assert lowered(model) == {"FILL": 1, "SHAPE": 1}


@pytest.mark.parametrize("opset", [9, 20, 21])
def test_constant_of_shape_default_value_output(opset):
    """A constant dims input on a graph output is kept by the frontend and lowered to FILL."""
    nodes = [helper.make_node("ConstantOfShape", ["d"], ["c"]), helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", F32, [2])], [("c", F32, None), ("y", F32, None)], {"d": i64(2, 3)}, opset=opset)
    assert lowered(model) == {"FILL": 1, "RELU": 1}


def test_constant_of_shape_folded_into_add():
    value = numpy_helper.from_array(np.array([2.5], F32), "value")
    nodes = [helper.make_node("ConstantOfShape", ["d"], ["c"], value=value), helper.make_node("Add", ["x", "c"], ["y"])]
    model = make_model(nodes, [("x", F32, [2, 3])], [("y", F32, None)], {"d": i64(2, 3)})
    assert lowered(model) == {"ADD": 1}


# -- Identity / Constant ------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", RESHAPE_ALL, ids=ids(RESHAPE_ALL))
def test_identity_output(dtype):
    assert lowered(single("Identity", [2, 3], dtype)) == {"RESHAPE": 1}


@pytest.mark.parametrize("opset", [7, 13, 14, 16, 19, 21])
def test_identity_opsets(opset):
    check_model(single("Identity", [2, 3], opset=opset))


def test_identity_inside_graph_is_removed():
    nodes = [helper.make_node("Identity", ["x"], ["i"]), helper.make_node("Relu", ["i"], ["y"])]
    model = make_model(nodes, [("x", F32, [2, 3])], [("y", F32, None)])
    assert lowered(model) == {"RELU": 1}


CONSTANT_ATTRS = [
    {"value": numpy_helper.from_array(np.arange(6, dtype=F32).reshape(2, 3), "v")},
    {"value": numpy_helper.from_array(np.array([[True, False]]), "v")},
    {"value": numpy_helper.from_array(np.array([1, -2], np.int32), "v")},
    {"value": numpy_helper.from_array(np.array([1, -2], np.int8), "v")},
    {"value": numpy_helper.from_array(np.array([1, 2], np.uint8), "v")},
    {"value": numpy_helper.from_array(np.array([1.5, -2], np.float16), "v")},
    {"value_float": 1.5},
    {"value_floats": [1.0, 2.0]},
    {"value_int": 7},
    {"value_ints": [1, 2, 3]},
]


@pytest.mark.parametrize("attrs", CONSTANT_ATTRS, ids=lambda a: next(iter(a)))
def test_constant_as_graph_output(attrs):
    nodes = [helper.make_node("Constant", [], ["c"], **attrs), helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", F32, [2])], [("c", _const_dtype(attrs), None), ("y", F32, None)],
                       opset=13)
    assert lowered(model) == {"RELU": 1, "RESHAPE": 1}


def _const_dtype(attrs: dict) -> np.dtype:
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"]).dtype
    return np.dtype(F32 if "value_float" in attrs or "value_floats" in attrs else np.int64)


def test_constant_string_refused():
    nodes = [helper.make_node("Constant", [], ["c"], value_string="hi"), helper.make_node("Relu", ["x"], ["y"])]
    model = make_model(nodes, [("x", F32, [2])], [("c", np.str_, None), ("y", F32, None)], opset=13)
    expect_failure(model, "unsupported_attribute_value")
