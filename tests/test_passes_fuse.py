"""Unit tests of the folding, fusion and clean-up passes on hand-built IR graphs."""
from __future__ import annotations

import numpy as np
import pytest

from onnx2litert.passes.cleanup import (canonicalize_clamps, drop_reshapes_around_elementwise, relu_before_minimum, canonicalize_reshapes,
                                        drop_reshape_before_fully_connected, remove_noop_arithmetic)
from onnx2litert.passes.dce import remove_dead_ops
from onnx2litert.passes.fold import eliminate_common_ops, fold_constants, share_constants
from onnx2litert.passes.fuse import (combine_affine_chains, fold_affine_into_producer, fold_positive_scale_into_consumers,
                                     fold_pad_into_conv, fold_shift_into_consumers, fuse_activations,
                                     fuse_activations_through_concat)
from onnx2litert.passes.pipeline import optimize_subgraph
from tests.test_passes_support import Builder, check_rewrite, opcounts

rng = np.random.default_rng(1)


def _w(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _weighted(b: Builder, code: str, x_shape=(1, 5, 5, 3), channels: int = 4):
    """A weighted op of ``code`` on a new input; returns its output tensor."""
    if code == "CONV_2D":
        x = b.input("x", x_shape)
        return b.op(code, [x, b.const(_w(channels, 3, 3, x_shape[-1])), b.const(_w(channels))],
                    x_shape[:3] + (channels,), padding="SAME", strideW=1, strideH=1, fusedActivationFunction="NONE")
    if code == "DEPTHWISE_CONV_2D":
        x = b.input("x", x_shape)
        c = x_shape[-1]
        return b.op(code, [x, b.const(_w(1, 3, 3, c)), b.const(_w(c))], x_shape[:3] + (c,), padding="SAME",
                    strideW=1, strideH=1, depthMultiplier=1, fusedActivationFunction="NONE")
    if code == "FULLY_CONNECTED":
        x = b.input("x", (2, 6))
        return b.op(code, [x, b.const(_w(channels, 6)), b.const(_w(channels))], (2, channels),
                    fusedActivationFunction="NONE")
    if code == "TRANSPOSE_CONV":
        x = b.input("x", x_shape)
        out_shape = x_shape[:3] + (channels,)
        return b.op(code, [b.const(out_shape, np.int32), b.const(_w(channels, 3, 3, x_shape[-1])), x],
                    out_shape, dtype=np.float32, padding="SAME", strideW=1, strideH=1)
    if code == "CONV_3D":
        x = b.input("x", (1, 3, 4, 4, 2))
        return b.op(code, [x, b.const(_w(1, 3, 3, 2, channels)), b.const(_w(channels))], (1, 3, 4, 4, channels),
                    padding="SAME", strideD=1, strideW=1, strideH=1, fusedActivationFunction="NONE")
    raise AssertionError(code)


PRODUCERS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D"]


@pytest.mark.parametrize("producer", PRODUCERS)
def test_batchnorm_like_mul_add_folded(producer):
    b = Builder()
    y = _weighted(b, producer)
    ch = y.shape[-1]
    y = b.op("MUL", [y, b.const(rng.uniform(0.5, 2, (1,) * (y.rank - 1) + (ch,)))], y.shape,
             fusedActivationFunction="NONE")
    y = b.op("ADD", [b.const(_w(ch)), y], y.shape, fusedActivationFunction="NONE")
    y = b.op("SUB", [y, b.const(_w(ch))], y.shape, fusedActivationFunction="NONE")
    y = b.op("DIV", [y, b.const(rng.uniform(0.5, 2, (ch,)))], y.shape, fusedActivationFunction="RELU6", name="out")
    m = check_rewrite(b.model([y]), lambda sg: fold_affine_into_producer(sg) and fold_affine_into_producer(sg))
    assert sum(opcounts(m).values()) == 1
    assert m.main.operators[0].options["fusedActivationFunction"] == "RELU6"


def test_affine_not_folded_when_shared_or_activated_or_broadcasting():
    b = Builder()
    y = _weighted(b, "CONV_2D")
    m1 = b.op("MUL", [y, b.const(_w(4))], y.shape, fusedActivationFunction="NONE")
    m2 = b.op("ADD", [y, b.const(_w(4))], y.shape, fusedActivationFunction="NONE")  # y has two consumers
    m = check_rewrite(b.model([m1, m2]), fold_affine_into_producer)
    assert opcounts(m)["MUL"] == 1 and opcounts(m)["ADD"] == 1

    b = Builder()
    x = b.input("x", (1, 5, 5, 3))
    y = b.op("CONV_2D", [x, b.const(_w(4, 1, 1, 3)), b.const(_w(4))], (1, 5, 5, 4), padding="SAME",
             strideW=1, strideH=1, fusedActivationFunction="RELU")
    z = b.op("MUL", [y, b.const(_w(4))], y.shape, fusedActivationFunction="NONE")
    w = b.op("MUL", [z, b.const(_w(5, 1, 1))], (1, 5, 5, 4), fusedActivationFunction="NONE")
    m = check_rewrite(b.model([w]), fold_affine_into_producer)
    assert opcounts(m)["MUL"] == 2


@pytest.mark.parametrize("producer", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D",
                                      "ADD", "MUL", "SUB", "DIV", "MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize("act", ["RELU", "RELU6", "RELU_N1_TO_1"])
def test_activation_fused(producer, act):
    b = Builder()
    if producer in PRODUCERS:
        y = _weighted(b, producer)
    elif producer.endswith("POOL_2D"):
        x = b.input("x", (1, 4, 4, 3))
        y = b.op(producer, [x], (1, 2, 2, 3), padding="VALID", strideW=2, strideH=2, filterWidth=2, filterHeight=2,
                 fusedActivationFunction="NONE")
    else:
        x = b.input("x", (1, 4, 4, 3))
        y = b.op(producer, [x, b.const(rng.uniform(0.5, 2, (3,)))], x.shape, fusedActivationFunction="NONE")
    out = b.op(act, [y], y.shape, name="out")
    m = check_rewrite(b.model([out]), fuse_activations)
    assert sum(opcounts(m).values()) == 1
    assert m.main.operators[0].options["fusedActivationFunction"] == act


@pytest.mark.parametrize("producer, act", [("CONCATENATION", "RELU"), ("CONV_2D", "TANH"), ("RESHAPE", "RELU")])
def test_activation_not_fused_where_kernels_ignore_it(producer, act):
    b = Builder()
    if producer == "CONV_2D":
        y = _weighted(b, producer)
    elif producer == "RESHAPE":
        y = b.reshape(b.input("x", (2, 6)), (3, 4))
    else:
        x = b.input("x", (1, 4, 3))
        y = b.op(producer, [x, x], (1, 4, 6), axis=2, fusedActivationFunction="NONE")
    m = check_rewrite(b.model([b.op(act, [y], y.shape)]), fuse_activations)
    assert opcounts(m)[act] == 1


@pytest.mark.parametrize("code, size, kernel, stride, pads, folds", [
    ("CONV_2D", 6, 3, 1, (1, 1), True),
    ("CONV_2D", 6, 3, 2, (0, 1), True),
    ("CONV_2D", 6, 3, 2, (1, 1), False),   # symmetric pads are not SAME here
    ("DEPTHWISE_CONV_2D", 7, 5, 1, (2, 2), True),
    ("DEPTHWISE_CONV_2D", 7, 3, 1, (2, 2), False),
    ("MAX_POOL_2D", 6, 3, 2, (0, 1), True),
    ("MAX_POOL_2D", 5, 3, 1, (1, 1), True),
])
def test_pad_folded_into_same_padding(code, size, kernel, stride, pads, folds):
    b = Builder()
    x = b.input("x", (1, size, size, 2))
    paddings = b.const([[0, 0], list(pads), list(pads), [0, 0]], np.int32)
    padded = (1, size + sum(pads), size + sum(pads), 2)
    if code == "MAX_POOL_2D":
        p = b.op("PADV2", [x, paddings, b.const(np.finfo(np.float32).min)], padded)
        n = (padded[1] - kernel) // stride + 1
        y = b.op(code, [p], (1, n, n, 2), padding="VALID", strideW=stride, strideH=stride, filterWidth=kernel,
                 filterHeight=kernel, fusedActivationFunction="NONE")
    else:
        p = b.op("PAD", [x, paddings], padded)
        n = (padded[1] - kernel) // stride + 1
        w = _w(2, kernel, kernel, 2) if code == "CONV_2D" else _w(1, kernel, kernel, 2)
        opts = {"depthMultiplier": 1} if code == "DEPTHWISE_CONV_2D" else {}
        y = b.op(code, [p, b.const(w), b.const(_w(2))], (1, n, n, 2), padding="VALID", strideW=stride,
                 strideH=stride, fusedActivationFunction="NONE", **opts)
    m = check_rewrite(b.model([y]), fold_pad_into_conv)
    assert (opcounts(m)["PAD"] + opcounts(m)["PADV2"] == 0) == folds


def test_clamps_canonicalized_then_fused():
    b = Builder()
    y = _weighted(b, "CONV_2D")
    r = b.op("MINIMUM", [b.op("MAXIMUM", [y, b.const(0.0)], y.shape), b.const(6.0)], y.shape)
    z = b.op("ADD", [r, b.const(_w(4))], y.shape, fusedActivationFunction="NONE")
    z = b.op("MAXIMUM", [b.const([0.0]), z], y.shape)
    m = check_rewrite(b.model([z]), lambda sg: canonicalize_clamps(sg) and fuse_activations(sg))
    assert dict(opcounts(m)) == {"CONV_2D": 1, "ADD": 1}


def test_reshape_chains_noops_and_squeeze():
    b = Builder()
    x = b.input("x", (2, 3, 4))
    y = b.reshape(b.reshape(x, (6, 4)), (2, 12))
    y = b.op("EXPAND_DIMS", [y, b.const(1, np.int32)], (2, 1, 12))
    y = b.op("SQUEEZE", [y], (2, 12), squeezeDims=[1])
    y = b.reshape(y, (2, 12))
    y = b.op("ADD", [y, b.const(np.zeros(12))], y.shape, fusedActivationFunction="NONE")
    y = b.op("MUL", [b.const(1.0), y], y.shape, fusedActivationFunction="NONE", name="out")
    m = check_rewrite(b.model([y]), lambda sg: canonicalize_reshapes(sg) | remove_noop_arithmetic(sg)
                      | remove_dead_ops(sg))
    assert dict(opcounts(m)) == {"RESHAPE": 1}
    assert m.main.outputs[0].name == "out"


def test_constant_folding():
    b = Builder()
    x = b.input("x", (2, 3))
    c = b.transpose(b.const(_w(3, 2)), (1, 0))
    c = b.op("ADD", [c, b.const(1.0)], (2, 3), fusedActivationFunction="RELU")
    c = b.op("CAST", [b.op("CAST", [c], (2, 3), dtype=np.int32)], (2, 3), dtype=np.float32)
    s = b.op("SHAPE", [x], (2,), dtype=np.int32, outType="INT32")
    y = b.op("MUL", [x, c], (2, 3), fusedActivationFunction="NONE")
    y = b.op("RESHAPE", [y, s], (2, 3))
    m = check_rewrite(b.model([y]), lambda sg: fold_constants(sg) | remove_dead_ops(sg))
    assert dict(opcounts(m)) == {"MUL": 1, "RESHAPE": 1}


def test_shared_constants_and_common_ops_merged():
    b = Builder()
    x = b.input("x", (1, 2, 3, 4))
    t1 = b.transpose(x, (0, 2, 3, 1))
    t2 = b.transpose(x, (0, 2, 3, 1))
    y = b.op("ADD", [t1, t2], t1.shape, fusedActivationFunction="NONE")
    m = check_rewrite(b.model([y]), lambda sg: share_constants(sg) | eliminate_common_ops(sg))
    assert opcounts(m)["TRANSPOSE"] == 1


def test_pipeline_conv_batchnorm_relu_in_onnx_layout():
    """The lowering's shape of Conv+BN+Relu collapses to one fused CONV_2D."""
    b = Builder()
    x = b.input("x", (1, 6, 6, 3))
    t = b.transpose(x, (0, 3, 1, 2))
    c = b.op("CONV_2D", [b.transpose(t, (0, 2, 3, 1)), b.const(_w(4, 3, 3, 3)), b.const(_w(4))], (1, 6, 6, 4),
             padding="SAME", strideW=1, strideH=1, fusedActivationFunction="NONE")
    y = b.transpose(c, (0, 3, 1, 2))
    y = b.op("MUL", [y, b.const(rng.uniform(0.5, 2, (4, 1, 1)))], y.shape, fusedActivationFunction="NONE")
    y = b.op("ADD", [y, b.const(_w(4, 1, 1))], y.shape, fusedActivationFunction="NONE")
    y = b.op("RELU", [y], y.shape)
    y = b.op("MEAN", [b.transpose(y, (0, 2, 3, 1)), b.const([1, 2], np.int32)], (1, 1, 1, 4), keepDims=True)
    y = b.transpose(y, (0, 3, 1, 2))
    y = b.reshape(y, (1, 4))
    m = check_rewrite(b.model([y]), optimize_subgraph)
    assert dict(opcounts(m)) == {"CONV_2D": 1, "MEAN": 1, "RESHAPE": 1}  # output (1, 4) is a graph output


def test_activation_moves_through_concatenation_into_producers():
    b = Builder()
    x = b.input("x", (1, 4, 4, 3))
    a = b.op("CONV_2D", [x, b.const(_w(2, 1, 1, 3)), b.const(_w(2))], (1, 4, 4, 2), padding="SAME", strideW=1,
             strideH=1, fusedActivationFunction="NONE")
    c = b.op("ADD", [x, b.const(_w(3))], x.shape, fusedActivationFunction="NONE")
    y = b.op("CONCATENATION", [a, c], (1, 4, 4, 5), axis=3, fusedActivationFunction="NONE")
    m = check_rewrite(b.model([b.op("RELU6", [y], y.shape)]), fuse_activations_through_concat)
    assert opcounts(m)["RELU6"] == 0
    assert {op.options.get("fusedActivationFunction") for op in m.main.operators if op.opcode != "CONCATENATION"} \
        == {"RELU6"}


def test_flattening_reshape_dropped_before_fully_connected():
    b = Builder()
    x = b.input("x", (2, 3, 2, 2))
    f = b.reshape(x, (2, 12))
    y = b.op("FULLY_CONNECTED", [f, b.const(_w(5, 12)), b.const(_w(5))], (2, 5), fusedActivationFunction="NONE")
    m = check_rewrite(b.model([y]), drop_reshape_before_fully_connected)
    assert dict(opcounts(m)) == {"FULLY_CONNECTED": 1}


# -- CAST round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("src, mid, removed", [
    ("float32", "float64", True), ("int8", "int32", True), ("int32", "float64", True), ("bool", "int32", True),
    ("int64", "float64", False), ("float32", "float16", False), ("float16", "float32", True),
    ("int32", "int8", False), ("float16", "float64", True)])
def test_cast_round_trip_after_exact_widening_is_removed(src, mid, removed):
    from onnx2litert.ir import Operator, Subgraph, Tensor
    from onnx2litert.passes.cleanup import remove_noop_arithmetic

    x = Tensor("x", (2, 3), np.dtype(src))
    m = Tensor("m", (2, 3), np.dtype(mid))
    c = Tensor("c", (2, 3), np.dtype(src))
    y = Tensor("y", (2, 3), np.dtype(src))
    sg = Subgraph([x], [y], [Operator("CAST", [x], [m]), Operator("CAST", [m], [c]), Operator("ABS", [c], [y])])
    remove_noop_arithmetic(sg)
    assert (sg.operators[-1].inputs[0] is x) is removed
    assert (sg.count("CAST") == 1) is removed


# -- elementwise ops hoisted above BROADCAST_TO / RESHAPE -------------------------------------------------

def test_cast_and_floor_mod_hoisted_above_broadcast():
    b = Builder()
    x = b.input("x", (1, 6), np.int32)
    wide = b.op("CAST", [x], (1, 6), np.int64, inDataType="INT32", outDataType="INT64")
    col = b.reshape(wide, (1, 6, 1))
    big = b.op("BROADCAST_TO", [col, b.const([1, 6, 4], np.int32)], (1, 6, 4), np.int64)
    narrow = b.op("CAST", [big], (1, 6, 4), np.int32, inDataType="INT64", outDataType="INT32")
    y = b.op("FLOOR_MOD", [narrow, b.const(np.int32(5), np.int32)], (1, 6, 4), np.int32)
    m = check_rewrite(b.model([y]), lambda sg: optimize_subgraph(sg))
    counts = opcounts(m)
    assert counts.get("CAST", 0) == 0, counts  # the round trip met and cancelled
    ops = [op.opcode for op in m.main.operators]
    assert ops.index("FLOOR_MOD") < ops.index("BROADCAST_TO") and m.main.operators[-1].outputs[0] is y


@pytest.mark.parametrize("case", ["shared", "not_scalar", "activation"])
def test_elementwise_not_hoisted(case):
    from onnx2litert.passes.cleanup import hoist_elementwise_above_broadcast

    b = Builder()
    x = b.input("x", (1, 3, 1))
    big = b.op("BROADCAST_TO", [x, b.const([1, 3, 4], np.int32)], (1, 3, 4))
    if case == "not_scalar":
        y = b.op("ADD", [big, b.const(_w(1, 3, 4))], (1, 3, 4), fusedActivationFunction="NONE")
        outs = [y]
    elif case == "activation":
        outs = [b.op("ADD", [big, b.const(np.float32(1))], (1, 3, 4), fusedActivationFunction="RELU")]
    else:
        outs = [b.op("MUL", [big, b.const(np.float32(2))], (1, 3, 4), fusedActivationFunction="NONE"), big]
    assert not hoist_elementwise_above_broadcast(b.model(outs).main)


# -- positive scale before RELU into consumers --------------------------------------------------------

def _bn_relu(b: Builder, x, scale: np.ndarray, act: str = "RELU"):
    c = x.shape[-1]
    y = b.op("MUL", [x, b.const(scale.reshape(1, 1, c))], x.shape, fusedActivationFunction="NONE")
    return b.op("ADD", [b.const(_w(1, 1, c)), y], x.shape, fusedActivationFunction=act)


def _conv_on(b: Builder, x, c_out: int, k: int):
    return b.op("CONV_2D", [x, b.const(_w(c_out, k, k, x.shape[-1])), b.const(_w(c_out))], x.shape[:3] + (c_out,),
                padding="SAME", strideW=1, strideH=1, dilationHFactor=1, dilationWFactor=1,
                fusedActivationFunction="NONE")


@pytest.mark.parametrize("act", ["RELU", "NONE"])
def test_positive_scale_folds_into_consumer_convs(act):
    b = Builder()
    x = b.input("x", (1, 5, 6, 4))
    y = _bn_relu(b, x, rng.uniform(0.2, 3.0, 4).astype(np.float32), act)
    m = check_rewrite(b.model([_conv_on(b, y, 3, 3), _conv_on(b, y, 2, 1)]), fold_positive_scale_into_consumers)
    counts = opcounts(m)
    assert counts["MUL"] == 0 and counts["ADD"] == 1


def test_positive_scale_folds_into_fully_connected():
    b = Builder()
    x = b.input("x", (2, 6))
    y = b.op("MUL", [b.const(rng.uniform(0.2, 3.0, 6).astype(np.float32)), x], x.shape, fusedActivationFunction="NONE")
    y = b.op("ADD", [y, b.const(_w(6))], x.shape, fusedActivationFunction="RELU")
    out = b.op("FULLY_CONNECTED", [y, b.const(_w(3, 6)), b.const(_w(3))], (2, 3), fusedActivationFunction="NONE")
    m = check_rewrite(b.model([out]), fold_positive_scale_into_consumers)
    assert opcounts(m)["MUL"] == 0


@pytest.mark.parametrize("case", ["negative_scale", "zero_scale", "relu6", "graph_output", "pool_consumer"])
def test_positive_scale_kept(case):
    b = Builder()
    x = b.input("x", (1, 5, 6, 4))
    scale = rng.uniform(0.2, 3.0, 4).astype(np.float32)
    if case in ("negative_scale", "zero_scale"):
        scale[1] = -0.5 if case == "negative_scale" else 0.0
    y = _bn_relu(b, x, scale, "RELU6" if case == "relu6" else "RELU")
    outs = [_conv_on(b, y, 3, 3)]
    if case == "graph_output":
        outs.append(y)
    elif case == "pool_consumer":
        outs.append(b.op("MAX_POOL_2D", [y], (1, 2, 3, 4), padding="VALID", strideH=2, strideW=2, filterHeight=2,
                         filterWidth=2, fusedActivationFunction="NONE"))
    assert not fold_positive_scale_into_consumers(b.model(outs).main)


def test_positive_scale_folds_through_maximum():
    """max(s*x, f) = s*max(x, f/s): the MUL goes into the consumer conv, the floor is divided by s."""
    b = Builder()
    x = b.input("x", (1, 5, 6, 4))
    y = b.op("MUL", [x, b.const(rng.uniform(0.2, 3.0, 4).astype(np.float32).reshape(1, 1, 4))], x.shape,
             fusedActivationFunction="NONE")
    y = b.op("MAXIMUM", [y, b.const(_w(1, 1, 4))], x.shape)
    m = check_rewrite(b.model([_conv_on(b, y, 3, 3)]), fold_positive_scale_into_consumers)
    assert opcounts(m) == {"MAXIMUM": 1, "CONV_2D": 1}


# -- chains of elementwise ops by constants -------------------------------------------------------------

def _affine(b: Builder, x, opcode: str, c: np.ndarray, act: str = "NONE", const_first: bool = False):
    ins = [b.const(c), x] if const_first else [x, b.const(c)]
    return b.op(opcode, ins, x.shape, fusedActivationFunction=act)


@pytest.mark.parametrize("chain,expected", [
    ([("ADD", False), ("ADD", False)], {"ADD": 1}),
    ([("MUL", False), ("MUL", True)], {"MUL": 1}),
    ([("ADD", False), ("MUL", False)], {"MUL": 1, "ADD": 1}),                       # MUL moved first
    ([("MUL", False), ("SUB", True), ("DIV", False), ("ADD", False)], {"MUL": 1, "ADD": 1}),  # c - x, x / c
    ([("SUB", False), ("ADD", False), ("MUL", False)], {"MUL": 1, "ADD": 1}),
])
@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6"])
def test_affine_chain_combined(chain, expected, act):
    b = Builder()
    x = b.input("x", (1, 4, 5, 6))
    y = x
    for i, (opcode, const_first) in enumerate(chain):
        c = rng.uniform(0.5, 2.0, (1, 1, 6) if i % 2 else (6,)).astype(np.float32)
        y = _affine(b, y, opcode, c, act if i == len(chain) - 1 else "NONE", const_first)
    m = check_rewrite(b.model([y]), combine_affine_chains)
    assert opcounts(m) == expected
    assert m.main.operators[-1].options["fusedActivationFunction"] == act


@pytest.mark.parametrize("case", ["canonical", "shared_link", "activation_inside", "widening", "divide_by_zero",
                                  "constant_divided"])
def test_affine_chain_kept(case):
    b = Builder()
    x = b.input("x", (1, 4, 5, 6))
    c = rng.uniform(0.5, 2.0, 6).astype(np.float32)
    outs = []
    if case == "canonical":
        y = _affine(b, _affine(b, x, "MUL", c), "ADD", c)
    elif case in ("shared_link", "activation_inside"):
        inner = _affine(b, x, "ADD", c, "RELU" if case == "activation_inside" else "NONE")
        y = _affine(b, inner, "ADD", c)
        outs = [inner] if case == "shared_link" else []
    elif case == "widening":  # the constant broadcasts x to a bigger shape
        inner = _affine(b, b.input("v", (1, 1, 5, 6)), "ADD", c)
        y = b.op("ADD", [inner, b.const(rng.standard_normal((1, 4, 5, 6)).astype(np.float32))], (1, 4, 5, 6),
                 fusedActivationFunction="NONE")
    elif case == "divide_by_zero":
        c[2] = 0.0
        y = _affine(b, _affine(b, x, "ADD", c), "DIV", c)
    else:  # c / x is not affine in x
        y = _affine(b, _affine(b, x, "ADD", c), "DIV", c, const_first=True)
    assert not combine_affine_chains(b.model([y] + outs).main)


# -- a RELU'd shift into the biases of consumers that see no padding ------------------------------------

def _conv_valid(b: Builder, x, c_out: int, k: int, padding: str = "VALID"):
    h, w = x.shape[1:3]
    shape = (1, h - k + 1, w - k + 1, c_out) if padding == "VALID" else x.shape[:3] + (c_out,)
    return b.op("CONV_2D", [x, b.const(_w(c_out, k, k, x.shape[-1])), b.const(_w(c_out))], shape, padding=padding, strideW=1, strideH=1, dilationHFactor=1,
                dilationWFactor=1, fusedActivationFunction="NONE")


@pytest.mark.parametrize("act", ["RELU", "NONE"])
@pytest.mark.parametrize("consumers", ["conv1x1_same", "conv3x3_valid", "two_convs", "fully_connected",
                                       "fully_connected_without_bias"])
def test_shift_folds_into_consumers(consumers, act):
    b = Builder()
    if consumers.startswith("fully_connected"):
        x = b.input("x", (3, 6))
        y = b.op("ADD", [x, b.const(_w(6))], x.shape, fusedActivationFunction=act)
        bias = [None] if consumers.endswith("without_bias") else [b.const(_w(4))]
        outs = [b.op("FULLY_CONNECTED", [y, b.const(_w(4, 6))] + bias, (3, 4), fusedActivationFunction="NONE")]
    else:
        x = b.input("x", (1, 6, 7, 5))
        y = b.op("ADD", [b.const(_w(1, 1, 5)), x], x.shape, fusedActivationFunction=act)
        if consumers == "conv1x1_same":
            outs = [_conv_valid(b, y, 3, 1, padding="SAME")]
        elif consumers == "conv3x3_valid":
            outs = [_conv_valid(b, y, 3, 3)]
        else:
            outs = [_conv_valid(b, y, 3, 3), _conv_valid(b, y, 2, 1, padding="SAME")]
    m = check_rewrite(b.model(outs), fold_shift_into_consumers)
    counts = opcounts(m)
    assert counts["ADD"] == 0 and counts["MAXIMUM"] == (act == "RELU")


@pytest.mark.parametrize("shape", [(3, 6), (1, 5, 6)])
def test_layernorm_gamma_beta_fold_into_the_next_fully_connected(shape):
    """MUL(x, gamma) -> ADD(beta) -> FC: gamma (any sign) scales the FC's weights, beta moves into its bias
    (a token sequence [1, T, C] too: FULLY_CONNECTED reads it as (-1, C))."""
    b = Builder()
    x = b.input("x", shape)
    gamma = rng.uniform(0.5, 2.0, 6).astype(np.float32) * np.array([1, -1, 1, -1, 1, 1], np.float32)
    y = b.op("MUL", [x, b.const(gamma)], x.shape, fusedActivationFunction="NONE")
    y = b.op("ADD", [y, b.const(_w(6))], x.shape, fusedActivationFunction="NONE")
    out = b.op("FULLY_CONNECTED", [y, b.const(_w(4, 6)), b.const(_w(4))], shape[:-1] + (4,),
               fusedActivationFunction="NONE", keepNumDims=len(shape) > 2)
    m = check_rewrite(b.model([out]), lambda sg: fold_positive_scale_into_consumers(sg) and fold_shift_into_consumers(sg))
    assert opcounts(m) == {"FULLY_CONNECTED": 1}


@pytest.mark.parametrize("case", ["zero_padding", "relu6", "pool_consumer", "graph_output", "zero_shift"])
def test_shift_kept(case):
    b = Builder()
    x = b.input("x", (1, 6, 7, 5))
    shift = np.zeros((1, 1, 5), np.float32) if case == "zero_shift" else _w(1, 1, 5)
    act = "RELU6" if case == "relu6" else "RELU"
    y = b.op("ADD", [x, b.const(shift)], x.shape, fusedActivationFunction=act)
    outs = [_conv_valid(b, y, 3, 3, padding="SAME" if case == "zero_padding" else "VALID")]
    if case == "pool_consumer":
        outs.append(b.op("MAX_POOL_2D", [y], (1, 3, 3, 5), padding="VALID", strideH=2, strideW=2, filterHeight=2,
                         filterWidth=2, fusedActivationFunction="NONE"))
    elif case == "graph_output":
        outs.append(y)
    assert not fold_shift_into_consumers(b.model(outs).main)


# -- reshapes around elementwise chains ---------------------------------------------------------------

def test_reshapes_around_scalar_elementwise_chain_dropped():
    b = Builder()
    x = b.input("x", (1, 1, 1, 8))
    y = b.reshape(b.op("ABS", [x], x.shape), (1, 8, 1, 1))
    y = b.op("ADD", [y, b.const(3.0)], y.shape, fusedActivationFunction="NONE")
    y = b.op("MINIMUM", [b.const([6.0]), y], y.shape)
    y = b.op("RELU", [y], y.shape)
    y = b.reshape(y, (1, 1, 1, 8))
    out = b.op("MUL", [y, b.const(_w(8))], y.shape, fusedActivationFunction="NONE")
    m = check_rewrite(b.model([out]), drop_reshapes_around_elementwise)
    assert opcounts(m)["RESHAPE"] == 0


@pytest.mark.parametrize("case", ["channel_const", "other_shape", "wide_scalar"])
def test_reshapes_around_elementwise_kept(case):
    b = Builder()
    x = b.input("x", (2, 8))
    y = b.reshape(x, (2, 8, 1, 1))
    if case == "channel_const":  # a per-channel constant broadcasts differently once the shape changes
        y = b.op("ADD", [y, b.const(_w(8, 1, 1))], y.shape, fusedActivationFunction="NONE")
    elif case == "wide_scalar":  # a rank-4 scalar would make the rank-2 result rank 4
        y = b.op("ADD", [y, b.const(np.ones((1, 1, 1, 1)))], y.shape, fusedActivationFunction="NONE")
    else:
        y = b.op("RELU", [y], y.shape)
    y = b.reshape(y, (4, 4) if case == "other_shape" else (2, 8))
    assert not drop_reshapes_around_elementwise(b.model([y]).main)


# -- RELU after MINIMUM -------------------------------------------------------------------------------

@pytest.mark.parametrize("bound", [1.0, 0.0, 6.0])
def test_relu_moves_before_minimum_and_fuses(bound):
    b = Builder()
    y = _conv_on(b, b.input("x", (1, 4, 5, 3)), 4, 3)
    y = b.op("MINIMUM", [y, b.const(bound)], y.shape)
    m = check_rewrite(b.model([b.op("RELU", [y], y.shape)]), relu_before_minimum)
    assert [op.opcode for op in m.main.operators] == ["CONV_2D", "RELU", "MINIMUM"]
    optimize_subgraph(m.main)
    assert opcounts(m)["RELU"] == 0


def test_relu_after_negative_minimum_kept():
    b = Builder()
    x = b.input("x", (1, 4, 5, 3))
    y = b.op("RELU", [b.op("MINIMUM", [x, b.const(-1.0)], x.shape)], x.shape)
    assert not relu_before_minimum(b.model([y]).main)
