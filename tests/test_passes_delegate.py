"""Tests of the layout rules through RESHAPE, the XNNPACK-friendly rewrites and channel-permutation folding.

IR tests check the structure and that LiteRT computes the same values before and after the
rewrite (check_rewrite); end-to-end tests convert small ONNX models and compare with ONNX Runtime.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from onnx import helper

from onnx2litert.passes.delegate import (depthwise_row_bands, gather_to_slice, max_pool_pad_to_zero_pad, mirror_pad_pieces,
                                         mirror_pad_to_slices, pad_conv_output_channels, nearest_resize_to_concat,
                                         slices_to_end_as_strided_slice, split_relu_0_to_1,
                                         split_tall_depthwise, split_v_to_slices, transpose_conv_to_depth_to_space)
from onnx2litert.passes.fuse import fold_channel_permutation
from onnx2litert.passes.layout import optimize_layout, reshape_after_transpose
from onnx2litert.passes.pipeline import optimize_subgraph
from tests.helpers import check_model, make_model
from tests.test_passes_support import NCHW_TO_NHWC, NHWC_TO_NCHW, Builder, check_rewrite, opcounts

rng = np.random.default_rng(7)


def _w(*shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


# -- reshape_after_transpose ------------------------------------------------------------------------

def _factorizations(n: int) -> list[tuple[int, ...]]:
    """Ordered factorizations of n into at most 4 factors > 1, each also with a size-1 axis in front."""
    out: list[tuple[int, ...]] = []

    def rec(rem: int, cur: list[int]) -> None:
        if rem == 1 and cur:
            out.append(tuple(cur))
            out.append((1, *cur))
        if len(cur) == 4:
            return
        for d in range(2, rem + 1):
            if rem % d == 0:
                rec(rem // d, cur + [d])

    rec(n, [])
    return out


@pytest.mark.parametrize("xs", [(2, 3, 4), (1, 2, 3, 2), (2, 1, 3, 1), (4, 6)])
def test_reshape_after_transpose_is_exact_whenever_it_answers(xs):
    answered = 0
    for perm in itertools.permutations(range(len(xs))):
        for zs in _factorizations(math.prod(xs)):
            plan = reshape_after_transpose(xs, perm, zs)
            if plan is None:
                continue
            answered += 1
            x = np.arange(math.prod(xs)).reshape(xs)
            xs2, perm2 = plan
            np.testing.assert_array_equal(np.transpose(x.reshape(xs2), perm2), np.transpose(x, perm).reshape(zs))
    assert answered > 0


@pytest.mark.parametrize("xs, perm, zs, expected", [
    ((1, 56, 56, 112), NHWC_TO_NCHW, (1, 4, 28, 56, 56), ((1, 56, 56, 4, 28), (0, 3, 4, 1, 2))),  # shuffle split
    ((1, 7, 7, 16), NHWC_TO_NCHW, (1, 16, 49), ((1, 49, 16), (0, 2, 1))),  # flatten of H, W
    ((1, 7, 7, 16), NHWC_TO_NCHW, (1, 784), None),  # channel-major flatten: the data must move
    ((1, 56, 56, 4, 28), (0, 4, 3, 1, 2), (1, 112, 56, 56), None),  # merge of swapped axes
])
def test_reshape_after_transpose_cases(xs, perm, zs, expected):
    assert reshape_after_transpose(xs, perm, zs) == expected


# -- layout through RESHAPE -------------------------------------------------------------------------

def _shuffle(b: Builder, x, groups: int):
    """NCHW channel shuffle of NHWC ``x`` wrapped in layout transposes, as the lowerings emit it."""
    n, h, w, c = x.shape
    y = b.transpose(x, NHWC_TO_NCHW)
    y = b.reshape(y, (n, groups, c // groups, h, w))
    y = b.transpose(y, (0, 2, 1, 3, 4))
    y = b.reshape(y, (n, c, h, w))
    return b.transpose(y, NCHW_TO_NHWC)


def test_channel_shuffle_needs_one_transpose():
    b = Builder()
    x = b.input("x", (1, 3, 4, 6))
    y = b.op("RELU", [_shuffle(b, b.op("ABS", [x], x.shape), 2)], x.shape)
    m = check_rewrite(b.model([y]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1
    tr = next(op for op in m.main.operators if op.opcode == "TRANSPOSE")
    assert tr.inputs[0].shape == (1, 3, 4, 2, 3)  # channels-last: the shuffle swaps the two channel factors


def test_flatten_then_transpose_cancels():
    """NCHW (1, C, H*W) then transpose(0, 2, 1): the ViT patch-embedding pattern is a plain reshape."""
    b = Builder()
    x = b.input("x", (1, 3, 4, 5))
    y = b.reshape(b.transpose(x, NHWC_TO_NCHW), (1, 5, 12))
    out = b.op("TANH", [b.transpose(y, (0, 2, 1))], (1, 12, 5))
    m = check_rewrite(b.model([out]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_transpose_hoisted_above_reshape_composes():
    """T1 cannot sink (it splits a merged group), so T2 moves above the RESHAPE and joins it."""
    b = Builder()
    x = b.input("x", (1, 3, 4, 2, 5))
    y = b.transpose(x, (0, 4, 3, 1, 2))  # (1, 5, 2, 3, 4)
    y = b.reshape(y, (1, 10, 3, 4))
    out = b.op("ABS", [b.transpose(y, NCHW_TO_NHWC)], (1, 3, 4, 10))
    m = check_rewrite(b.model([out]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1


def test_sink_keeps_output_identity():
    b = Builder()
    x = b.input("x", (1, 3, 4, 6))
    y = b.reshape(b.transpose(x, NHWC_TO_NCHW), (1, 2, 3, 3, 4), )
    m = check_rewrite(b.model([y]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1


def test_transpose_with_other_users_is_not_sunk():
    b = Builder()
    x = b.input("x", (1, 3, 4, 6))
    t = b.transpose(x, NHWC_TO_NCHW)
    r = b.reshape(t, (1, 2, 3, 3, 4))
    m = check_rewrite(b.model([r, b.op("ABS", [t], t.shape)]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] <= 2


# -- MIRROR_PAD ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["REFLECT", "SYMMETRIC"])
def test_mirror_pad_pieces(mode):
    size = 5
    for before, after in [(0, 0), (1, 2), (3, 1)]:
        head, tail = mirror_pad_pieces(size, before, after, mode)
        expected = np.pad(np.arange(size), (before, after), mode="reflect" if mode == "REFLECT" else "symmetric")
        np.testing.assert_array_equal(head + list(range(size)) + tail, expected)
    assert mirror_pad_pieces(size, 5 if mode == "REFLECT" else 6, 0, mode) is None


@pytest.mark.parametrize("mode", ["REFLECT", "SYMMETRIC"])
@pytest.mark.parametrize("pads", [[[0, 0], [1, 1], [1, 1], [0, 0]], [[0, 0], [4, 4], [4, 4], [0, 0]],
                                  [[0, 0], [2, 0], [0, 3], [0, 0]], [[0, 0], [0, 0], [0, 0], [1, 2]],
                                  [[1, 0], [0, 0], [6, 1], [0, 0]]])
def test_mirror_pad_to_slices(mode, pads):
    b = Builder()
    x = b.input("x", (2, 5, 7, 3))
    shape = tuple(d + lo + hi for d, (lo, hi) in zip(x.shape, pads))
    y = b.op("MIRROR_PAD", [x, b.const(pads, np.int32)], shape, mode=mode)
    m = check_rewrite(b.model([b.op("ABS", [y], shape)]), mirror_pad_to_slices)
    counts = opcounts(m)
    assert counts["MIRROR_PAD"] == 0 and counts["CONCATENATION"] >= 1
    assert all(len(op.inputs) <= 5 for op in m.main.operators if op.opcode == "CONCATENATION")


def test_mirror_pad_too_wide_is_kept():
    b = Builder()
    x = b.input("x", (1, 2, 3, 1))
    y = b.op("MIRROR_PAD", [x, b.const([[0, 0], [2, 0], [0, 0], [0, 0]], np.int32)], (1, 4, 3, 1), mode="REFLECT")
    m = b.model([y])
    assert not mirror_pad_to_slices(m.main)


# -- RELU_0_TO_1, PADV2, RESIZE_NEAREST_NEIGHBOR, SPLIT_V --------------------------------------------

def test_relu_0_to_1_split():
    b = Builder()
    x = b.input("x", (1, 4, 4, 3))
    y = b.op("RELU_0_TO_1", [b.op("MUL", [x, b.const(0.3)], x.shape, fusedActivationFunction="NONE")], x.shape)
    m = check_rewrite(b.model([y]), split_relu_0_to_1)
    assert opcounts(m)["RELU_0_TO_1"] == 0 and opcounts(m)["MINIMUM"] == 1
    # Through the pipeline, the RELU fuses into the MUL and no RELU_0_TO_1 comes back.
    optimize_subgraph(m.main)
    assert opcounts(m)["RELU_0_TO_1"] == 0 and opcounts(m)["RELU"] == 0


def _pool_after_pad(b: Builder, x, pads, kernel=3, stride=2):
    h = x.shape[1] + sum(pads[1])
    w = x.shape[2] + sum(pads[2])
    y = b.op("PADV2", [x, b.const(pads, np.int32), b.const(np.finfo(np.float32).min)],
             (1, h, w, x.shape[3]))
    oh, ow = (h - kernel) // stride + 1, (w - kernel) // stride + 1
    return b.op("MAX_POOL_2D", [y], (1, oh, ow, x.shape[3]), padding="VALID", strideH=stride, strideW=stride,
                filterHeight=kernel, filterWidth=kernel, fusedActivationFunction="NONE")


@pytest.mark.parametrize("producer", ["RELU", "RELU6", "LOGISTIC", "fused"])
def test_max_pool_pad_of_non_negative_becomes_zero_pad(producer):
    b = Builder()
    x = b.input("x", (1, 8, 9, 3))
    if producer == "fused":
        x = b.op("ADD", [x, b.const(0.5)], x.shape, fusedActivationFunction="RELU")
    else:
        x = b.op(producer, [x], x.shape)
    m = check_rewrite(b.model([_pool_after_pad(b, x, [[0, 0], [1, 0], [1, 1], [0, 0]])]), max_pool_pad_to_zero_pad)
    assert opcounts(m)["PADV2"] == 0 and opcounts(m)["PAD"] == 1


@pytest.mark.parametrize("case", ["signed_input", "window_all_padding"])
def test_max_pool_pad_kept(case):
    b = Builder()
    x = b.input("x", (1, 8, 8, 3))
    if case == "signed_input":
        out = _pool_after_pad(b, b.op("TANH", [x], x.shape), [[0, 0], [1, 0], [1, 0], [0, 0]])
    else:  # a 2x2 window over 2 rows of padding would see only zeros instead of the lowest value
        out = _pool_after_pad(b, b.op("RELU", [x], x.shape), [[0, 0], [2, 0], [0, 0], [0, 0]], kernel=2, stride=2)
    m = b.model([out])
    assert not max_pool_pad_to_zero_pad(m.main)


@pytest.mark.parametrize("scale", [(2, 2), (3, 2), (1, 4), (2, 1), (5, 5)])
@pytest.mark.parametrize("half_pixel", [False, True])
def test_nearest_resize_to_concat(scale, half_pixel):
    b = Builder()
    x = b.input("x", (1, 3, 4, 2))
    size = (3 * scale[0], 4 * scale[1])
    y = b.op("RESIZE_NEAREST_NEIGHBOR", [x, b.const(size, np.int32)], (1, *size, 2), alignCorners=False,
             halfPixelCenters=half_pixel)
    m = check_rewrite(b.model([y]), nearest_resize_to_concat)
    assert opcounts(m)["RESIZE_NEAREST_NEIGHBOR"] == 0


@pytest.mark.parametrize("case", ["align_corners", "fractional", "factor_6"])
def test_nearest_resize_kept(case):
    b = Builder()
    x = b.input("x", (1, 2, 3, 1))
    size = {"align_corners": (4, 6), "fractional": (3, 6), "factor_6": (12, 3)}[case]
    y = b.op("RESIZE_NEAREST_NEIGHBOR", [x, b.const(size, np.int32)], (1, *size, 1),
             alignCorners=case == "align_corners", halfPixelCenters=False)
    assert not nearest_resize_to_concat(b.model([y]).main)


@pytest.mark.parametrize("axis", [1, -1])
def test_split_v_to_slices(axis):
    b = Builder()
    x = b.input("x", (1, 6, 5))
    sizes = [1, 3, 2] if axis == 1 else [4, 1]
    shapes = [(1, s, 5) if axis == 1 else (1, 6, s) for s in sizes]
    outs = b.multi("SPLIT_V", [x, b.const(sizes, np.int32), b.const(axis, np.int32)], shapes, numSplits=len(sizes))
    m = check_rewrite(b.model([b.op("ABS", [o], o.shape) for o in outs]), split_v_to_slices)
    assert opcounts(m)["SPLIT_V"] == 0 and opcounts(m)["SLICE"] == len(sizes)


# -- TRANSPOSE_CONV with kernel == stride ---------------------------------------------------------

def _transpose_conv(b: Builder, x, c_out: int, k: int, s: int, padding: str = "VALID", bias: bool = True,
                    act: str = "NONE"):
    n, h, w, c_in = x.shape
    oh, ow = (h - 1) * s + k, (w - 1) * s + k
    if padding == "SAME":
        oh, ow = h * s, w * s
    shape = (n, oh, ow, c_out)
    inputs = [b.const(shape, np.int32), b.const(_w(c_out, k, k, c_in)), x]
    if bias:
        inputs.append(b.const(_w(c_out)))
    return b.op("TRANSPOSE_CONV", inputs, shape, np.float32, padding=padding, strideH=s, strideW=s,
                fusedActivationFunction=act)


@pytest.mark.parametrize("s,padding,bias,act,batch", [(2, "VALID", True, "NONE", 1), (2, "SAME", False, "RELU", 2),
                                                      (3, "VALID", True, "RELU6", 1)])
def test_transpose_conv_to_depth_to_space(s, padding, bias, act, batch):
    b = Builder()
    x = b.input("x", (batch, 3, 4, 5))
    m = check_rewrite(b.model([_transpose_conv(b, x, 6, s, s, padding, bias, act)]), transpose_conv_to_depth_to_space)
    counts = opcounts(m)
    assert counts["TRANSPOSE_CONV"] == 0 and counts["CONV_2D"] == 1 and counts["DEPTH_TO_SPACE"] == 1


@pytest.mark.parametrize("case", ["overlap", "non_square_stride"])
def test_transpose_conv_kept(case):
    b = Builder()
    x = b.input("x", (1, 3, 4, 5))
    if case == "overlap":  # kernel 3 > stride 2: output pixels sum several taps
        y = _transpose_conv(b, x, 2, 3, 2)
    else:
        y = b.op("TRANSPOSE_CONV", [b.const((1, 6, 4, 2), np.int32), b.const(_w(2, 2, 1, 5)), x],
                 (1, 6, 4, 2), np.float32, padding="VALID", strideH=2, strideW=1, fusedActivationFunction="NONE")
    assert not transpose_conv_to_depth_to_space(b.model([y]).main)


# -- GATHER of constant consecutive indices -------------------------------------------------------------

@pytest.mark.parametrize("indices,axis", [(2, 0), (4, 2), ([1, 2, 3], 1), ([0], 3), ([2, 3], 2)])
def test_gather_to_slice(indices, axis):
    b = Builder()
    x = b.input("x", (3, 4, 5, 2))
    idx = np.asarray(indices, np.int32)
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    y = b.op("GATHER", [x, b.const(idx, np.int32)], shape, np.float32, axis=axis, batchDims=0)
    m = check_rewrite(b.model([b.op("TANH", [y], shape)]), gather_to_slice)
    counts = opcounts(m)
    assert counts.get("GATHER", 0) == 0 and counts["SLICE"] == 1
    assert counts.get("RESHAPE", 0) == (idx.ndim == 0)


@pytest.mark.parametrize("indices", [[0, 2], [2, 1], [[0, 1]]])
def test_gather_kept(indices):
    b = Builder()
    x = b.input("x", (3, 4))
    idx = np.asarray(indices, np.int32)
    y = b.op("GATHER", [x, b.const(idx, np.int32)], idx.shape + (4,), np.float32, axis=0, batchDims=0)
    assert not gather_to_slice(b.model([y]).main)


def test_e2e_attention_qkv_picks_are_slices():
    """q, k, v picked from one projection by Gather (as exported by timm): no GATHER left for XNNPACK to refuse."""
    inits = {"w": _w(8, 24), "shape": np.array([1, 5, 3, 2, 4], np.int64), "i0": np.array(0, np.int64),
             "i1": np.array(1, np.int64), "i2": np.array(2, np.int64)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["qkv"]), helper.make_node("Reshape", ["qkv", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 3, 1, 4]),
             helper.make_node("Gather", ["t", "i0"], ["q"], axis=0), helper.make_node("Gather", ["t", "i1"], ["k"], axis=0),
             helper.make_node("Gather", ["t", "i2"], ["v"], axis=0),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [1, 5, 8])], [("y", np.float32, [1, 2, 5, 4])], inits)
    counts = check_model(model).op_counts
    assert counts.get("GATHER", 0) == 0, counts


# -- DEPTHWISE_CONV_2D with more than 25 taps ----------------------------------------------------------

def test_depthwise_row_bands():
    assert depthwise_row_bands(7, 7) == [(0, 3), (3, 3), (6, 1)]
    assert depthwise_row_bands(11, 3) == [(0, 8), (8, 3)]
    assert depthwise_row_bands(9, 9) == [(0, 2), (2, 2), (4, 2), (6, 2), (8, 1)]


def _depthwise(b: Builder, x, kh: int, kw: int, stride: int = 1, padding: str = "SAME", mult: int = 1,
               bias: bool = True, act: str = "NONE"):
    n, h, w, c = x.shape
    if padding == "SAME":
        oh, ow = -(-h // stride), -(-w // stride)
    else:
        oh, ow = (h - kh) // stride + 1, (w - kw) // stride + 1
    inputs = [x, b.const(_w(1, kh, kw, c * mult))] + ([b.const(_w(c * mult))] if bias else [])
    return b.op("DEPTHWISE_CONV_2D", inputs, (n, oh, ow, c * mult), padding=padding, strideH=stride, strideW=stride,
                dilationHFactor=1, dilationWFactor=1, depthMultiplier=mult, fusedActivationFunction=act)


@pytest.mark.parametrize("kh,kw,stride,padding,mult,bias,act", [
    (7, 7, 1, "SAME", 1, True, "NONE"), (7, 7, 2, "SAME", 1, True, "RELU6"), (9, 9, 1, "VALID", 2, True, "RELU"),
    (11, 3, 3, "SAME", 1, True, "NONE"), (6, 5, 2, "VALID", 1, True, "NONE")])
def test_split_tall_depthwise(kh, kw, stride, padding, mult, bias, act):
    b = Builder()
    x = b.input("x", (2, 13, 12, 4))
    m = check_rewrite(b.model([_depthwise(b, x, kh, kw, stride, padding, mult, bias, act)]), split_tall_depthwise)
    counts = opcounts(m)
    assert counts["DEPTHWISE_CONV_2D"] == len(depthwise_row_bands(kh, kw))
    assert counts["ADD"] == counts["DEPTHWISE_CONV_2D"] - 1
    assert counts.get("PAD", 0) == (padding == "SAME")


@pytest.mark.parametrize("case", ["small_kernel", "wide_kernel", "dilated"])
def test_depthwise_kept(case):
    b = Builder()
    x = b.input("x", (1, 30, 30, 4))
    if case == "small_kernel":
        y = _depthwise(b, x, 5, 5)
    elif case == "wide_kernel":  # one row is already more than 25 taps
        y = _depthwise(b, x, 2, 27, padding="VALID")
    else:
        y = b.op("DEPTHWISE_CONV_2D", [x, b.const(_w(1, 7, 7, 4)), b.const(_w(4))], (1, 30, 30, 4), padding="SAME",
                 strideH=1, strideW=1, dilationHFactor=2, dilationWFactor=2, depthMultiplier=1,
                 fusedActivationFunction="NONE")
    assert not split_tall_depthwise(b.model([y]).main)


def test_e2e_depthwise_7x7_with_batchnorm_and_relu():
    c = 8
    inits = {"w": _w(c, 1, 7, 7), "b": _w(c), "scale": np.abs(_w(c)) + 0.5, "shift": _w(c), "mean": _w(c),
             "var": np.abs(_w(c)) + 0.5}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=c, pads=[3, 3, 3, 3]),
             helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [1, c, 14, 14])], [("y", np.float32, [1, c, 14, 14])], inits)
    counts = check_model(model).op_counts
    assert counts.get("DEPTHWISE_CONV_2D", 0) == 3 and counts.get("ADD", 0) == 2, counts
    assert counts.get("MUL", 0) == 0 and counts.get("RELU", 0) == 0, counts  # BN folded, RELU fused into the ADD


# -- channel permutations -----------------------------------------------------------------------------

def _conv(b: Builder, x, cout: int, cin_per_group: int | None = None):
    cin = cin_per_group or x.shape[3]
    return b.op("CONV_2D", [x, b.const(_w(cout, 3, 3, cin)), b.const(_w(cout))], x.shape[:3] + (cout,),
                padding="SAME", strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1,
                fusedActivationFunction="NONE")


def _crd_chain(b: Builder, y, blocks: int):
    """DepthToSpace CRD reordering of NHWC channels (c, i, j) -> (i, j, c), as RESHAPE/TRANSPOSE/RESHAPE."""
    n, h, w, c = y.shape
    r = b.reshape(y, (n, h, w, c // blocks, blocks))
    return b.reshape(b.transpose(r, (0, 1, 2, 4, 3)), (n, h, w, c))


def test_channel_permutation_folds_into_producer_conv():
    b = Builder()
    x = b.input("x", (1, 5, 5, 3))
    y = _crd_chain(b, _conv(b, x, 12), 4)
    out = b.op("DEPTH_TO_SPACE", [y], (1, 10, 10, 3), blockSize=2)
    m = check_rewrite(b.model([out]), fold_channel_permutation)
    assert opcounts(m)["TRANSPOSE"] == 0 and opcounts(m)["RESHAPE"] == 0


def test_channel_permutation_folds_into_consumer_convs():
    b = Builder()
    x = b.input("x", (1, 5, 5, 6))
    y = _crd_chain(b, b.op("TANH", [x], x.shape), 2)
    m = check_rewrite(b.model([_conv(b, y, 4), _conv(b, y, 2)]), fold_channel_permutation)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_channel_permutation_not_folded_into_grouped_conv():
    b = Builder()
    x = b.input("x", (1, 5, 5, 4))
    y = _crd_chain(b, _conv(b, x, 8, cin_per_group=2), 2)  # 2 groups
    m = b.model([b.op("ABS", [y], y.shape)])
    assert not fold_channel_permutation(m.main)


# -- end to end -------------------------------------------------------------------------------------

def _shufflenet_unit(c: int = 8, groups: int = 2):
    inits = {"w1": _w(c, c // groups, 1, 1), "b1": _w(c), "w2": _w(c, 1, 3, 3), "w3": _w(c, c // groups, 1, 1),
             "shape1": np.array([1, groups, c // groups, 6, 6], np.int64), "shape2": np.array([1, c, 6, 6], np.int64)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], group=groups),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Reshape", ["r1", "shape1"], ["s1"]),
             helper.make_node("Transpose", ["s1"], ["s2"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["s2", "shape2"], ["s3"]),
             helper.make_node("Conv", ["s3", "w2"], ["c2"], group=c, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c2", "w3"], ["c3"], group=groups), helper.make_node("Add", ["c3", "x"], ["y"])]
    return make_model(nodes, [("x", np.float32, [1, c, 6, 6])], [("y", np.float32, [1, c, 6, 6])], inits)


def test_e2e_channel_shuffle():
    model = _shufflenet_unit()
    counts = check_model(model).op_counts
    assert counts.get("TRANSPOSE", 0) == 1 + 1, counts  # the shuffle and the 4-D output
    kept = check_model(model, keep_all_inputs_layout=True).op_counts
    assert kept.get("TRANSPOSE", 0) <= 1 + 1 + 1, kept  # and the input


def test_e2e_reflect_pad_conv_and_nearest_upsample():
    inits = {"w": _w(4, 3, 3, 3), "pads": np.array([0, 0, 2, 2, 0, 0, 2, 2], np.int64),
             "scales": np.array([1, 1, 2, 2], np.float32)}
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], mode="reflect"),
             helper.make_node("Conv", ["p", "w"], ["c"], pads=[0, 0, 0, 0]),
             helper.make_node("Resize", ["c", "", "scales"], ["y"], mode="nearest")]
    model = make_model(nodes, [("x", np.float32, [1, 3, 6, 6])], [("y", np.float32, [1, 4, 8, 8])], inits)
    counts = check_model(model).op_counts
    assert counts.get("MIRROR_PAD", 0) == 0 and counts.get("RESIZE_NEAREST_NEIGHBOR", 0) == 0, counts


def test_e2e_depth_to_space_crd_and_clip():
    inits = {"w": _w(12, 3, 3, 3), "lo": np.float32(0), "hi": np.float32(1)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("DepthToSpace", ["c"], ["d"], blocksize=2, mode="CRD"),
             helper.make_node("Clip", ["d", "lo", "hi"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [1, 3, 5, 5])], [("y", np.float32, [1, 3, 10, 10])], inits)
    counts = check_model(model).op_counts
    assert counts.get("TRANSPOSE", 0) <= 1 and counts.get("RELU_0_TO_1", 0) == 0, counts


def test_e2e_max_pool_with_leading_pads_after_relu():
    inits = {"w": _w(4, 3, 3, 3)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    model = make_model(nodes, [("x", np.float32, [1, 3, 8, 8])], [("y", np.float32, [1, 4, 4, 4])], inits)
    counts = check_model(model).op_counts
    assert counts.get("PADV2", 0) == 0, counts


def test_fan_out_push_through_split_branches_that_meet_again():
    """A transposed tensor sliced into parts that are recombined: one transpose at the end, not one per part."""
    b = Builder()
    x = b.input("x", (1, 8, 6))
    t = b.transpose(x, (0, 2, 1))  # (1, 6, 8)
    box, cls = b.multi("SPLIT_V", [t, b.const([4, 2], np.int32), b.const(1, np.int32)], [(1, 4, 8), (1, 2, 8)],
                       numSplits=2)
    xy = b.op("LOGISTIC", [b.op("SLICE", [box, b.const([0, 0, 0], np.int32), b.const([1, 2, 8], np.int32)],
                                (1, 2, 8))], (1, 2, 8))
    wh = b.op("EXP", [b.op("SLICE", [box, b.const([0, 2, 0], np.int32), b.const([1, 2, 8], np.int32)],
                           (1, 2, 8))], (1, 2, 8))
    lo = b.op("SUB", [xy, wh], (1, 2, 8), fusedActivationFunction="NONE")
    hi = b.op("ADD", [xy, wh], (1, 2, 8), fusedActivationFunction="NONE")
    out = b.op("CONCATENATION", [lo, hi, b.op("TANH", [cls], cls.shape)], (1, 6, 8), axis=1,
               fusedActivationFunction="NONE")
    m = check_rewrite(b.model([out]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1
    assert m.main.operators[-1].opcode == "TRANSPOSE" and m.main.operators[-1].outputs[0] is out


# -- CONV_2D output channels padded (opt-in x86 tuning) ---------------------------------------------

def _conv_k(b: Builder, x, cout: int, k: int, act: str = "NONE", bias: bool = True):
    inputs = [x, b.const(_w(cout, k, k, x.shape[-1]))] + ([b.const(_w(cout))] if bias else [])
    return b.op("CONV_2D", inputs, x.shape[:3] + (cout,), padding="SAME", strideH=1, strideW=1,
                dilationHFactor=1, dilationWFactor=1, fusedActivationFunction=act)


@pytest.mark.parametrize("cout,act", [(24, "RELU"), (17, "NONE"), (31, "RELU6")])
def test_pad_conv_output_channels(cout, act):
    b = Builder()
    x = b.input("x", (1, 9, 8, 5))
    m = check_rewrite(b.model([_conv_k(b, x, cout, 3, act)]), lambda sg: pad_conv_output_channels(sg, 32))
    assert opcounts(m) == {"CONV_2D": 1, "SLICE": 1}
    conv = next(op for op in m.main.operators if op.opcode == "CONV_2D")
    assert conv.outputs[0].shape[-1] == 32 and conv.options["fusedActivationFunction"] == act


@pytest.mark.parametrize("cout,k,bias", [(24, 1, True), (16, 3, True), (32, 3, True), (40, 3, True), (24, 3, False)])
def test_pad_conv_output_channels_kept(cout, k, bias):
    """1x1 kernels, counts outside (16, 32), and a convolution without bias are left alone."""
    b = Builder()
    x = b.input("x", (1, 9, 8, 5))
    assert not pad_conv_output_channels(b.model([_conv_k(b, x, cout, k, bias=bias)]).main, 32)


def test_pad_conv_output_channels_option_end_to_end():
    """Off by default; with the option, Conv(24, 3x3)+BN+Relu computes 32 channels and matches ORT."""
    c = 6
    inits = {"w": _w(24, c, 3, 3), "b": _w(24), "scale": np.abs(_w(24)) + 0.5, "shift": _w(24), "mean": _w(24),
             "var": np.abs(_w(24)) + 0.5}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [1, c, 10, 12])], [("y", np.float32, [1, 24, 10, 12])], inits, 17)
    assert "SLICE" not in check_model(model).op_counts
    counts = check_model(model, pad_conv_output_channels_to=32).op_counts
    # the pass's "to the end" SLICE leaves the pipeline as a STRIDED_SLICE with an end mask (delegated)
    assert counts["CONV_2D"] == 1 and counts["STRIDED_SLICE"] == 1 and "SLICE" not in counts
    assert "RELU" not in counts and "MUL" not in counts


@pytest.mark.parametrize("value", [-1, 1, 33])
def test_pad_conv_output_channels_option_checked(value):
    import onnx2litert
    with pytest.raises(onnx2litert.ConversionError, match="pad_conv_output_channels_to"):
        onnx2litert.ConversionOptions(pad_conv_output_channels_to=value)


# -- SLICE "to the end" -> STRIDED_SLICE with an end mask ------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int8])
@pytest.mark.parametrize("begin,size", [([0, 1, 0, 2], [-1, 3, -1, -1]), ([0, 0, 2, 0], [1, -1, 2, 4])])
def test_slices_to_end_as_strided_slice(dtype, begin, size):
    b = Builder()
    x = b.input("x", (2, 5, 4, 6), dtype)
    shape = tuple(d - s if n == -1 else n for d, s, n in zip(x.shape, begin, size))
    y = b.op("SLICE", [x, b.const(begin, np.int32), b.const(size, np.int32)], shape)
    m = check_rewrite(b.model([y]), slices_to_end_as_strided_slice)
    (op,) = m.main.operators
    assert op.opcode == "STRIDED_SLICE"
    assert op.options["endMask"] == sum(1 << i for i, n in enumerate(size) if n == -1)


def test_slice_with_explicit_sizes_is_kept():
    b = Builder()
    x = b.input("x", (2, 5, 4))
    y = b.op("SLICE", [x, b.const([0, 1, 0], np.int32), b.const([2, 3, 4], np.int32)], (2, 3, 4))
    assert not slices_to_end_as_strided_slice(b.model([y]).main)
