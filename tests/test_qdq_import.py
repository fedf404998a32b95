"""Quantized ONNX input: QDQ and QOperator models become integer LiteRT ops.

Quantized results are compared with ONNX Runtime within one quantization step (the two
runtimes round intermediate requantizations differently); integer ops with int32 results
(MatMulInteger, ConvInteger) and DynamicQuantizeLinear must match exactly.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from onnx2litert.passes.qdq import recover_weights
from tests.helpers import IR_VERSION, expect_failure

from ai_edge_litert import schema_py_generated as S

_OPNAMES = {v: k for k, v in S.BuiltinOperator.__dict__.items() if not k.startswith("_")}


def _model(nodes, inputs, outputs, inits, opset=17, ms=False):
    graph = helper.make_graph(
        nodes, "q",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(d)), s) for n, d, s in inputs],
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(d)), s) for n, d, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    opsets = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)
    if not ms:
        onnx.checker.check_model(model)
    return model


def _ops(tflite: bytes) -> list[tuple[str, list[int]]]:
    """(opcode, output tensor types) of every operator of the main subgraph."""
    m = S.ModelT.InitFromPackedBuf(tflite, 0)
    sg = m.subgraphs[0]
    return [(_OPNAMES[m.operatorCodes[o.opcodeIndex].builtinCode], [sg.tensors[i].type for i in o.outputs])
            for o in sg.operators]


def _float_compute_ops(tflite: bytes) -> list[str]:
    """Ops other than QUANTIZE/DEQUANTIZE that compute in float32 (the 'float islands')."""
    return [code for code, types in _ops(tflite)
            if code not in ("QUANTIZE", "DEQUANTIZE") and S.TensorType.FLOAT32 in types]


def _check(model, feeds, step: float, *, exact: bool = False, share: float = 1.0):
    """Convert; both LiteRT CPU paths must match ORT within one step (or exactly)."""
    result = onnx2litert.convert(model)
    ref = run_onnx(model.SerializeToString(), feeds)
    tfl = result.artifacts["float32"]
    for delegates in (True, False):
        got = run_tflite(tfl, feeds, use_default_delegates=delegates)
        for name, r in ref.items():
            g = got[name]
            assert g.shape == r.shape and g.dtype == r.dtype, (name, g.shape, r.shape, g.dtype, r.dtype)
            diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
            if exact:
                np.testing.assert_array_equal(g, r, err_msg=name)
            else:
                assert float(np.mean(diff <= step * 1.0001)) >= share, (name, delegates, diff.max(), step)
    return tfl


def _q(x, scale, zp, dtype):
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    return np.clip(np.rint(x / scale) + zp, lo, hi).astype(dtype)


def _sym_weights(rng, shape, axis=None):
    w = rng.standard_normal(shape).astype(np.float32)
    if axis is None:
        scale = np.float32(np.abs(w).max() / 127)
        return _q(w, scale, 0, np.int8), np.array(scale, np.float32)
    red = tuple(i for i in range(len(shape)) if i != axis)
    scale = (np.abs(w).max(axis=red) / 127).astype(np.float32)
    bshape = [1] * len(shape)
    bshape[axis] = -1
    return _q(w, scale.reshape(bshape), 0, np.int8), scale


_ACT = {"int8": (np.int8, -3), "uint8": (np.uint8, 125)}


def _qdq(name, scale_name, zp_name, out):
    return [helper.make_node("QuantizeLinear", [name, scale_name, zp_name], [out + "_q"]),
            helper.make_node("DequantizeLinear", [out + "_q", scale_name, zp_name], [out])]


# -- QDQ models ---------------------------------------------------------------------------------

@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("group", [1, 4])
def test_qdq_conv(act, per_channel, group):
    rng = np.random.default_rng(0)
    dt, zp = _ACT[act]
    c_out = 4 if group == 4 else 6
    wq, ws = _sym_weights(rng, (c_out, 4 // group, 3, 3), 0 if per_channel else None)
    xs, ys = np.float32(0.02), np.float32(0.05)
    bias = rng.integers(-200, 200, c_out).astype(np.int32)
    inits = {"xs": xs, "xz": np.array(zp, dt), "ys": ys, "yz": np.array(zp, dt), "wq": wq, "ws": ws,
             "wz": np.zeros(ws.shape, np.int8), "bq": bias, "bs": (xs * ws).astype(np.float32),
             "bz": np.zeros(ws.shape, np.int32)}
    axis = {"axis": 0} if per_channel else {}
    nodes = _qdq("x", "xs", "xz", "xd") + [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], **axis),
        helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["b"], **axis),
        helper.make_node("Conv", ["xd", "w", "b"], ["c"], pads=[1, 1, 1, 1], group=group),
        helper.make_node("Relu", ["c"], ["r"]),
    ] + _qdq("r", "ys", "yz", "y")
    model = _model(nodes, [("x", np.float32, [1, 4, 6, 6])], [("y", np.float32, [1, c_out, 6, 6])], inits)
    feeds = {"x": rng.standard_normal((1, 4, 6, 6)).astype(np.float32)}
    tfl = _check(model, feeds, float(ys))
    assert _float_compute_ops(tfl) == []
    codes = [c for c, _ in _ops(tfl)]
    assert codes.count("QUANTIZE") == 1 and codes.count("DEQUANTIZE") == 1


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_qdq_gemm(act, per_channel):
    rng = np.random.default_rng(1)
    dt, zp = _ACT[act]
    wq, ws = _sym_weights(rng, (5, 8), 0 if per_channel else None)
    xs, ys = np.float32(0.03), np.float32(0.1)
    inits = {"xs": xs, "xz": np.array(zp, dt), "ys": ys, "yz": np.array(zp, dt), "wq": wq, "ws": ws,
             "wz": np.zeros(ws.shape, np.int8)}
    axis = {"axis": 0} if per_channel else {}
    nodes = _qdq("x", "xs", "xz", "xd") + [
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], **axis),
        helper.make_node("Gemm", ["xd", "w"], ["g"], transB=1),
    ] + _qdq("g", "ys", "yz", "y")
    model = _model(nodes, [("x", np.float32, [3, 8])], [("y", np.float32, [3, 5])], inits)
    tfl = _check(model, {"x": rng.standard_normal((3, 8)).astype(np.float32)}, float(ys))
    assert _float_compute_ops(tfl) == []


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_qdq_binary(act, op):
    rng = np.random.default_rng(2)
    dt, zp = _ACT[act]
    inits = {"as": np.float32(0.02), "bs": np.float32(0.03), "ys": np.float32(0.04), "z": np.array(zp, dt)}
    nodes = _qdq("a", "as", "z", "ad") + _qdq("b", "bs", "z", "bd") + [
        helper.make_node(op, ["ad", "bd"], ["s"])] + _qdq("s", "ys", "z", "y")
    model = _model(nodes, [("a", np.float32, [1, 3, 4, 4]), ("b", np.float32, [1, 3, 4, 4])],
                   [("y", np.float32, [1, 3, 4, 4])], inits)
    feeds = {k: rng.standard_normal((1, 3, 4, 4)).astype(np.float32) for k in ("a", "b")}
    tfl = _check(model, feeds, 0.04)
    assert _float_compute_ops(tfl) == []


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("pool", ["MaxPool", "AveragePool", "GlobalAveragePool"])
def test_qdq_pool(act, pool):
    rng = np.random.default_rng(3)
    dt, zp = _ACT[act]
    inits = {"s": np.float32(0.02), "z": np.array(zp, dt)}
    # MaxPool: explicit pads (PADV2 with the lowest value); AveragePool: pads LiteRT's SAME computes.
    pads = [1, 1, 1, 1] if pool == "MaxPool" else [0, 0, 1, 1]
    attrs = {} if pool == "GlobalAveragePool" else {"kernel_shape": [3, 3], "strides": [2, 2], "pads": pads}
    nodes = _qdq("x", "s", "z", "xd") + [helper.make_node(pool, ["xd"], ["p"], **attrs)] + _qdq("p", "s", "z", "y")
    out = [1, 3, 1, 1] if pool == "GlobalAveragePool" else [1, 3, 4, 4]
    model = _model(nodes, [("x", np.float32, [1, 3, 8, 8])], [("y", np.float32, out)], inits)
    tfl = _check(model, {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}, 0.02)
    assert _float_compute_ops(tfl) == []


@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_qdq_concat_and_sigmoid(act):
    rng = np.random.default_rng(4)
    dt, zp = _ACT[act]
    inits = {"as": np.float32(0.02), "bs": np.float32(0.03), "cs": np.float32(0.03), "z": np.array(zp, dt),
             "ss": np.float32(1 / 255), "sz": np.array(-128 if act == "int8" else 0, dt)}
    nodes = _qdq("a", "as", "z", "ad") + _qdq("b", "bs", "z", "bd") + [
        helper.make_node("Concat", ["ad", "bd"], ["c"], axis=1)] + _qdq("c", "cs", "z", "cd") + [
        helper.make_node("Sigmoid", ["cd"], ["g"])] + _qdq("g", "ss", "sz", "y")
    model = _model(nodes, [("a", np.float32, [1, 2, 4, 4]), ("b", np.float32, [1, 3, 4, 4])],
                   [("y", np.float32, [1, 5, 4, 4])], inits)
    feeds = {"a": rng.standard_normal((1, 2, 4, 4)).astype(np.float32),
             "b": rng.standard_normal((1, 3, 4, 4)).astype(np.float32)}
    tfl = _check(model, feeds, 1 / 255)
    assert _float_compute_ops(tfl) == []


def test_quantize_dequantize_io():
    """Q and DQ alone: integer graph outputs/inputs keep their dtype and ONNX semantics."""
    rng = np.random.default_rng(5)
    inits = {"s": np.float32(0.05), "z": np.array(7, np.uint8), "s8": np.float32(0.1), "z8": np.array(-2, np.int8)}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["i", "s8", "z8"], ["d"])]
    model = _model(nodes, [("x", np.float32, [2, 5]), ("i", np.int8, [2, 5])],
                   [("q", np.uint8, [2, 5]), ("d", np.float32, [2, 5])], inits)
    feeds = {"x": rng.standard_normal((2, 5)).astype(np.float32),
             "i": rng.integers(-128, 128, (2, 5)).astype(np.int8)}
    _check(model, feeds, 1.0)  # uint8 output within one integer step; DQ output exact below
    tfl = onnx2litert.convert(model).artifacts["float32"]
    got = run_tflite(tfl, feeds)
    np.testing.assert_array_equal(got["d"], run_onnx(model.SerializeToString(), feeds)["d"])


def test_dequantize_int32_runtime():
    inits = {"s": np.float32(0.5), "z": np.array(3, np.int32)}
    model = _model([helper.make_node("DequantizeLinear", ["i", "s", "z"], ["d"])],
                   [("i", np.int32, [4])], [("d", np.float32, [4])], inits)
    _check(model, {"i": np.array([-7, 0, 3, 100000], np.int32)}, 0.0, exact=True)


def test_recover_weights_rejects_inexact():
    w = np.array([[0.1, 0.2], [0.3, 0.123456]], np.float32)
    assert recover_weights(w, 0) is None
    q = np.array([[127, -3], [5, 127]], np.int8)
    s = np.array([0.01, 0.02], np.float32)
    found = recover_weights((q.astype(np.float32) * s[:, None]).astype(np.float32), 0)
    assert found is not None and np.array_equal(found[0], q)


# -- QOperator models --------------------------------------------------------------------------

@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_qlinear_conv(act):
    rng = np.random.default_rng(6)
    dt, zp = _ACT[act]
    wq, ws = _sym_weights(rng, (4, 3, 3, 3), 0)
    inits = {"xs": np.float32(0.02), "xz": np.array(zp, dt), "wq": wq, "ws": ws, "wz": np.zeros(4, np.int8),
             "ys": np.float32(0.05), "yz": np.array(zp, dt), "b": rng.integers(-99, 99, 4).astype(np.int32)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "wq", "ws", "wz", "ys", "yz", "b"], ["y"],
                            pads=[1, 1, 1, 1], strides=[2, 2])
    model = _model([node], [("x", dt, [1, 3, 7, 7])], [("y", dt, [1, 4, 4, 4])], inits)
    info = np.iinfo(dt)
    x = rng.integers(info.min, info.max + 1, (1, 3, 7, 7)).astype(dt)
    tfl = _check(model, {"x": x}, 1.0)
    assert _float_compute_ops(tfl) == []


@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_qlinear_matmul(act):
    rng = np.random.default_rng(7)
    dt, zp = _ACT[act]
    bq, bs = _sym_weights(rng, (6, 5))
    inits = {"as": np.float32(0.02), "az": np.array(zp, dt), "bq": bq, "bs": bs, "bz": np.array(0, np.int8),
             "ys": np.float32(0.05), "yz": np.array(zp, dt)}
    node = helper.make_node("QLinearMatMul", ["a", "as", "az", "bq", "bs", "bz", "ys", "yz"], ["y"])
    model = _model([node], [("a", dt, [2, 6])], [("y", dt, [2, 5])], inits)
    info = np.iinfo(dt)
    tfl = _check(model, {"a": rng.integers(info.min, info.max + 1, (2, 6)).astype(dt)}, 1.0)
    assert _float_compute_ops(tfl) == []


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("op", ["QLinearAdd", "QLinearMul"])
def test_qlinear_binary(act, op):
    rng = np.random.default_rng(8)
    dt, zp = _ACT[act]
    inits = {"as": np.float32(0.02), "bs": np.float32(0.03), "ys": np.float32(0.04), "z": np.array(zp, dt)}
    node = helper.make_node(op, ["a", "as", "z", "b", "bs", "z", "ys", "z"], ["y"], domain="com.microsoft")
    model = _model([node], [("a", dt, [1, 3, 4]), ("b", dt, [1, 3, 4])], [("y", dt, [1, 3, 4])], inits, ms=True)
    info = np.iinfo(dt)
    feeds = {k: rng.integers(info.min, info.max + 1, (1, 3, 4)).astype(dt) for k in ("a", "b")}
    tfl = _check(model, feeds, 1.0)
    assert _float_compute_ops(tfl) == []


@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_qlinear_pools_and_concat(act):
    rng = np.random.default_rng(9)
    dt, zp = _ACT[act]
    inits = {"s": np.float32(0.02), "s2": np.float32(0.03), "z": np.array(zp, dt)}
    nodes = [
        helper.make_node("QLinearAveragePool", ["x", "s", "z", "s2", "z"], ["p"], domain="com.microsoft",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("QLinearGlobalAveragePool", ["x", "s", "z", "s", "z"], ["g"], domain="com.microsoft"),
        helper.make_node("QLinearConcat", ["s2", "z", "x", "s", "z", "x", "s", "z"], ["c"], domain="com.microsoft",
                         axis=1),
    ]
    model = _model(nodes, [("x", dt, [1, 3, 4, 4])],
                   [("p", dt, [1, 3, 2, 2]), ("g", dt, [1, 3, 1, 1]), ("c", dt, [1, 6, 4, 4])], inits, ms=True)
    info = np.iinfo(dt)
    tfl = _check(model, {"x": rng.integers(info.min, info.max + 1, (1, 3, 4, 4)).astype(dt)}, 1.0)
    assert _float_compute_ops(tfl) == []


# -- integer ops and dynamic quantization -------------------------------------------------------

def test_dynamic_quantize_linear_exact():
    rng = np.random.default_rng(10)
    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    model = _model([node], [("x", np.float32, [3, 7])],
                   [("y", np.uint8, [3, 7]), ("s", np.float32, []), ("z", np.uint8, [])], {})
    for seed in range(3):
        x = (rng.standard_normal((3, 7)) * (seed + 1) + seed - 1).astype(np.float32)
        _check(model, {"x": x}, 0.0, exact=True)


@pytest.mark.parametrize("a_dtype", ["uint8", "int8"])
@pytest.mark.parametrize("k", [16, 700])
def test_matmul_integer_exact(a_dtype, k):
    rng = np.random.default_rng(11)
    dt = np.dtype(a_dtype)
    info = np.iinfo(dt)
    b = rng.integers(-128, 128, (k, 5)).astype(np.int8)
    inits = {"b": b, "az": np.array(3 if dt == np.uint8 else -2, dt), "bz": rng.integers(-3, 3, 5).astype(np.int8)}
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"])
    model = _model([node], [("a", dt, [1, 2, k])], [("y", np.int32, [1, 2, 5])], inits)
    a = rng.integers(info.min, info.max + 1, (1, 2, k)).astype(dt)
    _check(model, {"a": a}, 0.0, exact=True)


def test_matmul_integer_runtime_zero_point():
    """DynamicQuantizeLinear feeding MatMulInteger (the dynamic-quantization pattern)."""
    rng = np.random.default_rng(12)
    b = rng.integers(-127, 128, (8, 4)).astype(np.int8)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("MatMulInteger", ["q", "b", "z"], ["y"])]
    model = _model(nodes, [("x", np.float32, [3, 8])], [("y", np.int32, [3, 4])], {"b": b})
    _check(model, {"x": rng.standard_normal((3, 8)).astype(np.float32)}, 0.0, exact=True)


def test_conv_integer_exact():
    rng = np.random.default_rng(13)
    w = rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8)
    inits = {"w": w, "xz": np.array(120, np.uint8)}
    node = helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], pads=[1, 1, 1, 1])
    model = _model([node], [("x", np.uint8, [1, 3, 5, 5])], [("y", np.int32, [1, 4, 5, 5])], inits)
    _check(model, {"x": rng.integers(0, 256, (1, 3, 5, 5)).astype(np.uint8)}, 0.0, exact=True)


# -- unsupported cases -------------------------------------------------------------------------

def test_per_axis_quantize_of_runtime_tensor_fails():
    inits = {"s": np.array([0.1, 0.2], np.float32), "z": np.zeros(2, np.int8)}
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1)
    model = _model([node], [("x", np.float32, [3, 2])], [("q", np.int8, [3, 2])], inits)
    expect_failure(model, "unsupported_attribute_value")


def test_uint8_weights_with_zero_point_stay_correct():
    """Asymmetric uint8 weights have no int8 LiteRT form: the conv stays float but exact."""
    rng = np.random.default_rng(14)
    wq = rng.integers(0, 256, (2, 3, 1, 1)).astype(np.uint8)
    inits = {"xs": np.float32(0.02), "xz": np.array(128, np.uint8), "wq": wq, "ws": np.float32(0.01),
             "wz": np.array(120, np.uint8), "ys": np.float32(0.05), "yz": np.array(128, np.uint8)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "wq", "ws", "wz", "ys", "yz"], ["y"])
    model = _model([node], [("x", np.uint8, [1, 3, 4, 4])], [("y", np.uint8, [1, 2, 4, 4])], inits)
    _check(model, {"x": rng.integers(0, 256, (1, 3, 4, 4)).astype(np.uint8)}, 1.0)
