"""Unit tests of the transpose optimizer on hand-built IR graphs (structure + LiteRT results)."""
from __future__ import annotations

import numpy as np
import pytest

from onnx2litert.passes.layout import optimize_layout, transposed_elements
from tests.test_passes_support import NCHW_TO_NHWC, NHWC_TO_NCHW, Builder, check_rewrite, opcounts

P, INV = NHWC_TO_NCHW, NCHW_TO_NHWC
rng = np.random.default_rng(0)


def test_inverse_pair_cancels_through_unary_chain():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    y = b.transpose(x, P)
    for code in ("RELU", "TANH", "ABS", "NEG", "LOGISTIC"):
        y = b.op(code, [y], y.shape)
    out = b.op("RELU6", [b.transpose(y, INV)], (1, 4, 5, 3), name="out")
    m = check_rewrite(b.model([out]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0
    assert m.main.outputs[0].name == "out"


@pytest.mark.parametrize("code", ["ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "PRELU"])
@pytest.mark.parametrize("cshape", [(3, 1, 1), (1, 3, 1, 1), (), (1,), (5,), (3, 4, 5)])
def test_binary_with_constant_operand(code, cshape):
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    y = b.transpose(x, P)  # (1, 3, 4, 5)
    c = b.const(rng.uniform(0.5, 2.0, cshape))
    y = b.op(code, [y, c], y.shape)
    out = b.transpose(y, INV)
    m = check_rewrite(b.model([out]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_binary_with_both_operands_transposed():
    b = Builder()
    x1, x2 = b.input("x1", (1, 4, 5, 3)), b.input("x2", (1, 4, 5, 3))
    s = b.op("ADD", [b.transpose(x1, P), b.transpose(x2, P)], (1, 3, 4, 5), fusedActivationFunction="RELU")
    m = check_rewrite(b.model([b.op("RELU", [b.transpose(s, INV)], (1, 4, 5, 3))]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_binary_with_plain_operand_gets_inverse_transpose():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    z = b.input("z", (1, 3, 4, 5))  # ONNX layout, not a transpose
    s = b.op("MUL", [b.transpose(x, P), z], (1, 3, 4, 5))
    out = b.transpose(s, INV)
    m = check_rewrite(b.model([out]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1
    tr = next(op for op in m.main.operators if op.opcode == "TRANSPOSE")
    assert tr.inputs[0] is z


def test_small_plain_operand_becomes_reshape():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    z = b.input("z", (1, 3, 1, 1))
    s = b.op("ADD", [b.transpose(x, P), z], (1, 3, 4, 5))
    m = check_rewrite(b.model([b.transpose(s, INV)]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0 and opcounts(m)["RESHAPE"] == 1


def test_push_refused_when_it_adds_more_than_it_removes():
    b = Builder()
    x = b.input("x", (1, 1, 1, 3))
    z = b.input("z", (1, 3, 4, 5))
    s = b.op("ADD", [b.transpose(x, (0, 3, 2, 1)), z], (1, 3, 4, 5))
    m = b.model([s])
    before = transposed_elements(m.main)
    check_rewrite(m, optimize_layout)
    assert transposed_elements(m.main) <= before


def test_fan_out_to_outputs_is_not_duplicated():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    t = b.transpose(x, P)
    o1, o2 = b.op("RELU", [t], t.shape, name="o1"), b.op("TANH", [t], t.shape, name="o2")
    m = check_rewrite(b.model([o1, o2]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1


def test_fan_out_cancels_on_every_branch():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    t = b.transpose(x, P)
    r1 = b.transpose(b.op("RELU", [t], t.shape), INV)
    r2 = b.transpose(b.op("TANH", [t], t.shape), INV)
    s = b.op("ADD", [t, b.transpose(b.op("ADD", [r1, r2], r1.shape), P)], t.shape, name="sum")
    m = check_rewrite(b.model([s]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1  # only the NCHW graph output remains
    assert m.main.outputs[0].name == "sum"


def test_graph_output_inside_chain_keeps_identity():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    mid = b.op("RELU", [b.transpose(x, P)], (1, 3, 4, 5), name="mid")
    out = b.op("RELU6", [b.transpose(mid, INV)], (1, 4, 5, 3), name="out")
    m = check_rewrite(b.model([mid, out]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1


@pytest.mark.parametrize("axis", [1, -3, 2, 3, 0])
def test_concatenation_axis_remapped(axis):
    b = Builder()
    x1, x2 = b.input("x1", (1, 4, 5, 3)), b.input("x2", (1, 4, 5, 3))
    t1, t2 = b.transpose(x1, P), b.transpose(x2, P)
    shape = list(t1.shape)
    shape[axis] *= 2
    y = b.op("CONCATENATION", [t1, t2], tuple(shape), axis=axis)
    m = check_rewrite(b.model([b.transpose(y, INV)]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_split_and_split_v_axis_remapped():
    b = Builder()
    x = b.input("x", (1, 4, 5, 4))
    t = b.transpose(x, P)  # (1, 4, 4, 5), split the channels (axis 1)
    a, c = b.multi("SPLIT", [b.const(1, np.int32), t], [(1, 2, 4, 5)] * 2, numSplits=2)
    d, e = b.multi("SPLIT_V", [t, b.const([1, 3], np.int32), b.const([1], np.int32)], [(1, 1, 4, 5), (1, 3, 4, 5)],
                   numSplits=2)
    outs = [b.transpose(v, INV) for v in (a, c, d, e)]
    m = check_rewrite(b.model(outs), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


@pytest.mark.parametrize("code", ["PAD", "PADV2", "MIRROR_PAD"])
def test_pad_paddings_permuted(code):
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    pads = b.const([[0, 0], [0, 0], [1, 2], [2, 1]], np.int32)
    inputs = [b.transpose(x, P), pads] + ([b.const(-1.5)] if code == "PADV2" else [])
    opts = {"mode": "REFLECT"} if code == "MIRROR_PAD" else {}
    y = b.op(code, inputs, (1, 3, 7, 8), **opts)
    m = check_rewrite(b.model([b.transpose(y, INV)]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


@pytest.mark.parametrize("code", ["MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"])
@pytest.mark.parametrize("keep", [True, False])
def test_reductions_axes_remapped(code, keep):
    b = Builder()
    x = b.input("x", (2, 4, 5, 3))
    t = b.transpose(x, P)  # (2, 3, 4, 5)
    shape = (2, 3, 1, 1) if keep else (2, 3)
    y = b.op(code, [t, b.const([2, 3], np.int32)], shape, keepDims=keep)
    y = b.op("RELU", [y], shape, name="out")
    m = b.model([y])
    check_rewrite(m, optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0  # the remaining layout change only moves size-1 dims


def test_reduction_over_channels_keeps_spatial_transposed():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    y = b.op("MEAN", [b.transpose(x, P), b.const([1], np.int32)], (1, 4, 5), keepDims=False)
    m = check_rewrite(b.model([y]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0  # (1,4,5) is already in the right order


@pytest.mark.parametrize("code", ["SOFTMAX", "LOG_SOFTMAX"])
def test_softmax_only_when_last_axis_stays(code):
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    opts = {"beta": 1.0} if code == "SOFTMAX" else {}
    y1 = b.op(code, [b.transpose(x, (1, 0, 2, 3))], (4, 1, 5, 3), **opts)
    y2 = b.op(code, [b.transpose(x, P)], (1, 3, 4, 5), **opts)
    m = check_rewrite(b.model([b.transpose(y1, (1, 0, 2, 3)), b.transpose(y2, INV)]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 2  # y1 pushed and cancelled, y2 kept its pair
    assert opcounts(m)[code] == 2


def test_slices_params_permuted():
    b = Builder()
    x = b.input("x", (1, 6, 5, 4))
    t = b.transpose(x, P)  # (1, 4, 6, 5)
    s1 = b.op("SLICE", [t, b.const([0, 1, 2, 0], np.int32), b.const([1, 2, -1, 3], np.int32)], (1, 2, 4, 3))
    s2 = b.op("STRIDED_SLICE", [t, b.const([0, 1, 0, 4], np.int32), b.const([1, 4, 6, 0], np.int32),
                                b.const([1, 2, 1, -1], np.int32)], (1, 2, 6, 4), beginMask=4, endMask=4)
    s3 = b.op("STRIDED_SLICE", [t, b.const([0, 1, 0, 0], np.int32), b.const([1, 2, 6, 5], np.int32),
                                b.const([1, 1, 1, 1], np.int32)], (1, 6, 5), shrinkAxisMask=2)
    m = check_rewrite(b.model([b.transpose(s1, INV), b.transpose(s2, INV), b.op("RELU", [s3], s3.shape)]),
                      optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


@pytest.mark.parametrize("code", ["REVERSE_V2", "CUMSUM"])
def test_axis_ops_axis_remapped(code):
    b = Builder()
    x = b.input("x", (1, 6, 5, 4))
    t = b.transpose(x, P)  # (1, 4, 6, 5): axis 2 is x's axis 1
    axis = b.const([2], np.int32) if code == "REVERSE_V2" else b.const(np.int32(2), np.int32)
    opts = {"exclusive": False, "reverse": False} if code == "CUMSUM" else {}
    y = b.op(code, [t, axis], t.shape, **opts)
    m = check_rewrite(b.model([b.transpose(y, INV)]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_unit_dim_transpose_absorbed_by_reshape_and_emitted_as_reshape():
    b = Builder()
    x = b.input("x", (2, 1, 1, 8))
    t = b.transpose(x, P)  # (2, 8, 1, 1): only size-1 dims move
    r = b.reshape(t, (2, 8))
    x2 = b.input("x2", (2, 1, 1, 8))
    t2 = b.op("RELU", [b.transpose(x2, P)], (2, 8, 1, 1), name="o2")
    m = check_rewrite(b.model([r, t2]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_transpose_folded_into_fully_connected_weights():
    b = Builder()
    x = b.input("x", (2, 3, 4, 5))
    t = b.transpose(x, P)  # (2, 5, 3, 4) NCHW view of an NHWC tensor
    f = b.reshape(t, (2, 60))
    y = b.op("FULLY_CONNECTED", [f, b.const(rng.standard_normal((7, 60))), b.const(rng.standard_normal(7))],
             (2, 7), fusedActivationFunction="NONE")
    m = check_rewrite(b.model([y]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_compose_fold_constant_and_identity():
    b = Builder()
    x = b.input("x", (2, 3, 4, 5))
    y = b.transpose(b.transpose(x, (1, 0, 2, 3)), (0, 2, 1, 3))  # composes to one transpose
    c = b.transpose(b.const(rng.standard_normal((5, 4, 3, 2))), (3, 2, 1, 0))
    z = b.op("ADD", [x, c], x.shape)
    w = b.transpose(z, (0, 1, 2, 3))
    m = check_rewrite(b.model([y, w]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 1


def test_quantize_dequantize_and_cast_are_transparent():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    t = b.op("CAST", [b.transpose(x, P)], (1, 3, 4, 5), dtype=np.int32)
    t = b.op("CAST", [t], (1, 3, 4, 5), dtype=np.float32)
    m = check_rewrite(b.model([b.transpose(t, INV)]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0


def test_rank3_channels_last():
    b = Builder()
    x = b.input("x", (2, 7, 3))
    t = b.transpose(x, (0, 2, 1))
    y = b.op("MUL", [t, b.const(rng.standard_normal((3, 1)))], (2, 3, 7))
    y = b.op("ADD", [y, b.const(rng.standard_normal((3, 1)))], (2, 3, 7))
    m = check_rewrite(b.model([b.transpose(y, (0, 2, 1))]), optimize_layout)
    assert opcounts(m)["TRANSPOSE"] == 0
