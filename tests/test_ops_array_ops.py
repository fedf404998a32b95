"""array_ops family (Scatter, Hardmax, CumProd, BitCast, ReverseSequence, Det, CenterCropPad, TensorScatter,
AffineGrid, Col2Im, MaxUnpool, LpPool): LiteRT vs ONNX Runtime."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import onnx2litert
from onnx2litert.lower.registry import REGISTRY
from tests.helpers import check_model, check_reference, expect_failure, make_model, single_op_model

F32 = np.float32
RNG = np.random.default_rng


def _node_model(op: str, inputs: list[tuple[str, type, list]], outputs: list[tuple[str, type, list | None]],
                opset: int, input_names: list[str] | None = None, initializers: dict | None = None,
                **attrs: object) -> onnx.ModelProto:
    names = input_names if input_names is not None else [n for n, _, _ in inputs] + list(initializers or {})
    node = helper.make_node(op, names, [n for n, _, _ in outputs], **attrs)
    return make_model([node], inputs, outputs, initializers, opset)


# -- registry --------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,opset", [("CumProd", 26), ("BitCast", 26), ("TensorScatter", 24), ("Scatter", 10),
                                      ("ReverseSequence", 28), ("Det", 22), ("MaxUnpool", 22), ("LpPool", 22)])
def test_registered(op: str, opset: int) -> None:
    assert REGISTRY.find("", op, opset) is not None


# -- Scatter ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("axis", [None, 1])
@pytest.mark.parametrize("const_idx", [False, True])
def test_scatter(dtype: type, axis: int | None, const_idx: bool) -> None:
    attrs = {} if axis is None else {"axis": axis}
    idx = np.array([[1, 0, 2], [0, 2, 1]], np.int64) if axis is None else np.array([[1, 3, 0], [4, 2, -2]], np.int64)
    data_shape = [3, 3] if axis is None else [2, 5]
    inputs = [("data", dtype, data_shape)] + ([] if const_idx else [("idx", np.int64, [2, 3])]) + \
        [("upd", dtype, [2, 3])]
    model = _node_model("Scatter", inputs, [("y", dtype, data_shape)], 10, input_names=["data", "idx", "upd"],
                        initializers={"idx": idx} if const_idx else None, **attrs)
    rng = RNG(0)
    feeds = {"data": (rng.standard_normal(data_shape) * 5).astype(dtype),
             "upd": (rng.standard_normal([2, 3]) * 5).astype(dtype)}
    if not const_idx:
        feeds["idx"] = idx
    check_model(model, feeds)


# -- Hardmax ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset,axis", [(11, None), (11, 0), (11, 2), (11, -1), (13, None), (13, 0), (13, 1),
                                        (13, -2)])
def test_hardmax(opset: int, axis: int | None) -> None:
    attrs = {} if axis is None else {"axis": axis}
    model = single_op_model("Hardmax", [("x", F32, [2, 3, 4])], [2, 3, 4], opset=opset, **attrs)
    x = RNG(1).integers(-2, 3, (2, 3, 4)).astype(F32)  # many ties: the first maximum wins
    check_model(model, {"x": x})


# -- CumProd ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumprod_const_axis(dtype: type, exclusive: int, reverse: int, axis: int) -> None:
    model = single_op_model("CumProd", [("x", dtype, [3, 4])], [3, 4], opset=26, input_names=["x", "axis"],
                            initializers={"axis": np.array(axis, np.int64)}, exclusive=exclusive, reverse=reverse)
    x = RNG(2).integers(-3, 4, (3, 4)).astype(dtype)
    if dtype == np.float32:
        x = (RNG(2).standard_normal((3, 4)) * 2).astype(F32)
    check_model(model, {"x": x})


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 1)])
def test_cumprod_runtime_axis(axis: int, exclusive: int, reverse: int) -> None:
    model = single_op_model("CumProd", [("x", F32, [2, 3, 2]), ("axis", np.int32, [])], [2, 3, 2], opset=26,
                            exclusive=exclusive, reverse=reverse)
    check_model(model, {"x": RNG(3).standard_normal((2, 3, 2)).astype(F32), "axis": np.array(axis, np.int32)})


@pytest.mark.parametrize("exclusive", [0, 1])
def test_cumprod_rank1_runtime_axis(exclusive: int) -> None:
    model = single_op_model("CumProd", [("x", np.int32, [5]), ("axis", np.int64, [])], [5], opset=26,
                            exclusive=exclusive)
    check_model(model, {"x": np.array([1, 2, -3, 4, 2], np.int32), "axis": np.array(0, np.int64)})


def test_cumprod_float64_refused() -> None:
    model = single_op_model("CumProd", [("x", np.float64, [5])], [5], opset=26, input_names=["x", "axis"],
                            initializers={"axis": np.array(0, np.int64)})
    expect_failure(model, "unsupported_dtype")


# -- BitCast ---------------------------------------------------------------------------------------
_BITCAST_PAIRS = [(np.float32, np.int32), (np.int32, np.float32), (np.uint32, np.int32), (np.int16, np.uint16),
                  (np.uint16, np.int16), (np.int8, np.uint8), (np.uint8, np.int8), (np.bool_, np.uint8),
                  (np.int64, np.uint64), (np.float32, np.float32)]


@pytest.mark.parametrize("src,dst", _BITCAST_PAIRS)
def test_bitcast(src: type, dst: type) -> None:
    shape = [2, 3]
    model = single_op_model("BitCast", [("x", src, shape)], shape, output_dtype=dst, opset=26,
                            to=helper.np_dtype_to_tensor_dtype(np.dtype(dst)))
    rng = RNG(4)
    if np.dtype(src) == np.bool_:
        x = rng.integers(0, 2, shape).astype(bool)
    elif np.dtype(src).kind == "f":
        x = rng.standard_normal(shape).astype(src)
    else:
        info = np.iinfo(src)
        x = rng.integers(max(info.min, -2**62), min(info.max, 2**62), shape, dtype=np.int64).astype(src)
    check_reference(model, {"x": x})
    assert np.array_equal(ReferenceEvaluator(model).run(None, {"x": x})[0], x.view(dst))


def test_bitcast_size_mismatch_fails() -> None:
    model = single_op_model("BitCast", [("x", F32, [3])], [3], output_dtype=np.int16, opset=26, to=TensorProto.INT16)
    expect_failure(model, "invalid_model")


# -- ReverseSequence -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("batch_axis,time_axis", [(0, 1), (1, 0)])
@pytest.mark.parametrize("const_lens", [False, True])
def test_reverse_sequence(dtype: type, batch_axis: int, time_axis: int, const_lens: bool) -> None:
    shape = [4, 5, 2] if batch_axis == 0 else [5, 4, 2]
    lens = np.array([1, 5, 3, 2], np.int64)
    inputs = [("x", dtype, shape)] + ([] if const_lens else [("lens", np.int64, [4])])
    model = _node_model("ReverseSequence", inputs, [("y", dtype, shape)], 10, input_names=["x", "lens"],
                        initializers={"lens": lens} if const_lens else None, batch_axis=batch_axis,
                        time_axis=time_axis)
    feeds = {"x": (RNG(5).standard_normal(shape) * 10).astype(dtype)}
    if not const_lens:
        feeds["lens"] = lens
    check_model(model, feeds)


# -- Det -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [[1, 1], [2, 2], [3, 3], [4, 2, 2], [2, 3, 3, 3]])
def test_det(shape: list[int]) -> None:
    model = single_op_model("Det", [("x", F32, shape)], shape[:-2], opset=11)
    check_model(model, {"x": RNG(6).standard_normal(shape).astype(F32)})


def test_det_4x4_fails() -> None:
    expect_failure(single_op_model("Det", [("x", F32, [4, 4])], [], opset=11), "unsupported_attribute_value")


# -- CenterCropPad ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("in_shape,target,axes", [
    ([8, 7, 3], [4, 4, 3], None), ([3, 5, 2], [6, 9, 2], None), ([7, 4, 3], [4, 9, 3], None),
    ([3, 7, 6], [4, 3], [1, 2]), ([7, 6, 3], [5, 8], [-3, -2]), ([3, 4, 2], [3, 4, 2], None)])
@pytest.mark.parametrize("const_shape", [True, False])
def test_center_crop_pad(dtype: type, in_shape: list[int], target: list[int], axes: list[int] | None,
                         const_shape: bool) -> None:
    sizes = np.array(target, np.int64)
    out_shape = list(in_shape)
    for a, s in zip(axes or range(len(in_shape)), target):
        out_shape[a] = s
    attrs = {} if axes is None else {"axes": axes}
    inputs = [("x", dtype, in_shape)] + ([] if const_shape else [("shape", np.int64, [len(target)])])
    model = _node_model("CenterCropPad", inputs, [("y", dtype, out_shape)], 18, input_names=["x", "shape"],
                        initializers={"shape": sizes} if const_shape else None, **attrs)
    feeds = {"x": (RNG(7).standard_normal(in_shape) * 20).astype(dtype)}
    if not const_shape:
        feeds["shape"] = sizes
    check_model(model, feeds)


# -- TensorScatter ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
@pytest.mark.parametrize("mode", ["linear", "circular"])
@pytest.mark.parametrize("writes", ["none", "const", "runtime"])
def test_tensor_scatter(dtype: type, mode: str, writes: str) -> None:
    past_shape, upd_shape = [2, 3, 5, 4], [2, 3, 2, 4]
    w = np.array([3, 1], np.int64) if mode == "linear" else np.array([4, 2], np.int64)
    inputs = [("past", dtype, past_shape), ("upd", dtype, upd_shape)]
    names = ["past", "upd"]
    inits = None
    if writes == "runtime":
        inputs.append(("w", np.int64, [2]))
    if writes != "none":
        names.append("w")
    if writes == "const":
        inits = {"w": w}
    model = _node_model("TensorScatter", inputs, [("y", dtype, past_shape)], 24, input_names=names,
                        initializers=inits, mode=mode)
    rng = RNG(8)
    feeds = {"past": (rng.standard_normal(past_shape) * 9).astype(dtype),
             "upd": (rng.standard_normal(upd_shape) * 9).astype(dtype)}
    if writes == "runtime":
        feeds["w"] = w
    check_model(model, feeds)


def test_tensor_scatter_axis1_3d() -> None:
    model = _node_model("TensorScatter", [("past", F32, [3, 4, 5]), ("upd", F32, [3, 2, 5]), ("w", np.int64, [3])],
                        [("y", F32, [3, 4, 5])], 24, axis=1)
    rng = RNG(9)
    check_model(model, {"past": rng.standard_normal([3, 4, 5]).astype(F32),
                        "upd": rng.standard_normal([3, 2, 5]).astype(F32), "w": np.array([0, 2, 1], np.int64)})


# -- AffineGrid ------------------------------------------------------------------------------------
@pytest.mark.parametrize("align", [0, 1])
@pytest.mark.parametrize("size", [[2, 3, 4, 5], [1, 2, 3, 4, 5]])
@pytest.mark.parametrize("const_size", [True, False])
def test_affine_grid(align: int, size: list[int], const_size: bool) -> None:
    dims = len(size) - 2
    theta_shape = [size[0], dims, dims + 1]
    out_shape = [size[0], *size[2:], dims]
    inputs = [("theta", F32, theta_shape)] + ([] if const_size else [("size", np.int64, [len(size)])])
    model = _node_model("AffineGrid", inputs, [("y", F32, out_shape)], 20, input_names=["theta", "size"],
                        initializers={"size": np.array(size, np.int64)} if const_size else None, align_corners=align)
    feeds = {"theta": RNG(10).standard_normal(theta_shape).astype(F32)}
    if not const_size:
        feeds["size"] = np.array(size, np.int64)
    check_model(model, feeds)


# -- Col2Im ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("image,block,attrs", [
    ([5, 5], [2, 2], {}), ([6, 6], [2, 2], {"dilations": [1, 2]}), ([5, 5], [3, 2], {"pads": [0, 1, 1, 0]}),
    ([5, 6], [2, 3], {"strides": [2, 3]}), ([3, 4, 5], [1, 2, 2], {})])
@pytest.mark.parametrize("const_params", [True, False])
def test_col2im(image: list[int], block: list[int], attrs: dict, const_params: bool) -> None:
    n = len(image)
    dil = attrs.get("dilations", [1] * n)
    pads = attrs.get("pads", [0] * 2 * n)
    strides = attrs.get("strides", [1] * n)
    counts = [(image[i] + pads[i] + pads[i + n] - dil[i] * (block[i] - 1) - 1) // strides[i] + 1 for i in range(n)]
    channels = 2
    in_shape = [1, channels * int(np.prod(block)), int(np.prod(counts))]
    params = {"image_shape": np.array(image, np.int64), "block_shape": np.array(block, np.int64)}
    inputs = [("x", F32, in_shape)]
    if not const_params:
        inputs += [("image_shape", np.int64, [n]), ("block_shape", np.int64, [n])]
    model = _node_model("Col2Im", inputs, [("y", F32, [1, channels, *image])], 18,
                        input_names=["x", "image_shape", "block_shape"],
                        initializers=params if const_params else None, **attrs)
    feeds = {"x": RNG(11).standard_normal(in_shape).astype(F32)}
    if not const_params:
        feeds.update(params)
    try:
        check_model(model, feeds)
    except onnx2litert.ConversionError as exc:  # a run-time block shape the shapes do not imply uniquely
        assert not const_params and exc.reason.value == "requires_constant_input"


def test_col2im_ambiguous_block_fails() -> None:
    model = _node_model("Col2Im", [("x", F32, [1, 5, 5]), ("image_shape", np.int64, [2]),
                                   ("block_shape", np.int64, [2])], [("y", F32, [1, 1, 5, 5])], 18)
    expect_failure(model, "requires_constant_input")


# -- MaxUnpool -------------------------------------------------------------------------------------
def _pool_indices(x: np.ndarray, k: int, s: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """MaxPool (2-D, no padding) values and flat indices, as ONNX MaxPool's Indices output."""
    n, c, h, w = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    vals = np.zeros((n, c, oh, ow), x.dtype)
    idx = np.zeros((n, c, oh, ow), np.int64)
    for b, ch, i, j in np.ndindex(n, c, oh, ow):
        win = x[b, ch, i * s:i * s + k, j * s:j * s + k]
        r, q = np.unravel_index(int(np.argmax(win)), win.shape)
        vals[b, ch, i, j] = win[r, q]
        idx[b, ch, i, j] = ((b * c + ch) * h + i * s + r) * w + j * s + q
    return vals, idx, [n, c, (oh - 1) * s + k, (ow - 1) * s + k]


@pytest.mark.parametrize("k,s", [(2, 2), (3, 1)])  # (3, 1): overlapping windows repeat indices
@pytest.mark.parametrize("with_shape", [False, True])
def test_max_unpool(k: int, s: int, with_shape: bool) -> None:
    x = RNG(12).standard_normal((2, 2, 6, 6)).astype(F32)
    vals, idx, out_shape = _pool_indices(x, k, s)
    inputs = [("xT", F32, list(vals.shape)), ("xI", np.int64, list(idx.shape))]
    feeds = {"xT": vals, "xI": idx}
    if with_shape:
        inputs.append(("shape", np.int64, [4]))
        feeds["shape"] = np.array(out_shape, np.int64)
    model = _node_model("MaxUnpool", inputs, [("y", F32, out_shape)], 11, kernel_shape=[k, k], strides=[s, s])
    check_model(model, feeds)


def test_max_unpool_larger_output_shape_fails() -> None:
    model = _node_model("MaxUnpool", [("xT", F32, [1, 1, 2, 2]), ("xI", np.int64, [1, 1, 2, 2])],
                        [("y", F32, [1, 1, 5, 5])], 11, input_names=["xT", "xI", "shape"],
                        initializers={"shape": np.array([1, 1, 5, 5], np.int64)}, kernel_shape=[2, 2], strides=[2, 2])
    expect_failure(model, "unsupported_attribute_value")


# -- LpPool ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,attrs", [
    ([1, 2, 9], {"kernel_shape": [3], "p": 3}),
    ([1, 2, 9], {"kernel_shape": [2], "strides": [2], "pads": [1, 0]}),
    ([2, 3, 7, 6], {"kernel_shape": [2, 2]}),
    ([1, 2, 7, 6], {"kernel_shape": [3, 2], "p": 1, "strides": [2, 1], "pads": [1, 0, 1, 1]}),
    ([1, 2, 7, 7], {"kernel_shape": [3, 3], "p": 3, "auto_pad": "SAME_UPPER"}),
    ([1, 2, 7, 7], {"kernel_shape": [2, 2], "p": 4, "auto_pad": "SAME_LOWER"}),
    ([1, 1, 7, 7], {"kernel_shape": [2, 2], "dilations": [2, 2], "p": 2}),
    ([1, 1, 7, 7], {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ([1, 2, 4, 5, 4], {"kernel_shape": [2, 2, 2], "p": 3}),
    ([1, 1, 5, 5, 5], {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2], "pads": [1, 0, 1, 0, 1, 0]}),
])
def test_lp_pool(shape: list[int], attrs: dict) -> None:
    model = single_op_model("LpPool", [("x", F32, shape)], None, opset=18, **attrs)
    check_model(model, {"x": RNG(13).standard_normal(shape).astype(F32)})


def test_lp_pool_opset11() -> None:
    model = single_op_model("LpPool", [("x", F32, [1, 2, 6, 6])], None, opset=11, kernel_shape=[3, 3], p=3,
                            pads=[1, 1, 1, 1], strides=[2, 2])
    check_model(model, {"x": RNG(14).standard_normal([1, 2, 6, 6]).astype(F32)})


def test_lp_pool_4d_spatial_fails() -> None:
    model = single_op_model("LpPool", [("x", F32, [1, 1, 3, 3, 3, 3])], [1, 1, 2, 2, 2, 2], opset=18,
                            kernel_shape=[2, 2, 2, 2])
    expect_failure(model, "unsupported_attribute_value")
