"""Quantized ops with run-time scales / zero points / weights and 16-bit types vs ONNX Runtime
(and the ONNX reference where ONNX Runtime has no kernel): the arithmetic forms
(x - zp) * scale, saturate(round_half_even(x / scale) + zp) and the exact integer product."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from tests.helpers import check_model, expect_failure, make_model
from tests.helpers import check_reference as _check_reference

RNG = np.random.default_rng(0)


def ints(dtype, shape, rng=RNG):
    info = np.iinfo(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


def check_reference(model, feeds):
    """Compare with the ONNX reference implementation exactly (both CPU paths)."""
    _check_reference(model, feeds, tol=0.0)


# -- DequantizeLinear ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32])
@pytest.mark.parametrize("zp", [True, False])
def test_dequantize_runtime_per_tensor(dtype, zp):
    names = ["x", "s", "z"] if zp else ["x", "s"]
    inputs = [("x", dtype, [2, 5]), ("s", np.float32, [])] + ([("z", dtype, [])] if zp else [])
    model = make_model([helper.make_node("DequantizeLinear", names, ["y"])], inputs, [("y", np.float32, [2, 5])],
                       opset=21)
    feeds = {"x": ints(dtype, [2, 5]) if dtype != np.int32 else RNG.integers(-1000, 1000, [2, 5]).astype(dtype),
             "s": np.array(0.37, np.float32)}
    if zp:
        feeds["z"] = np.array(ints(dtype, [])).astype(dtype) if dtype != np.int32 else np.array(7, np.int32)
    check_model(model, feeds)


@pytest.mark.parametrize("axis", [1, -1])
def test_dequantize_runtime_per_axis(axis):
    shape = [2, 3, 4]
    n = shape[axis]
    model = make_model([helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=axis)],
                       [("x", np.uint8, shape), ("s", np.float32, [n]), ("z", np.uint8, [n])],
                       [("y", np.float32, shape)], opset=13)
    check_model(model, {"x": ints(np.uint8, shape), "s": RNG.uniform(0.1, 2, [n]).astype(np.float32),
                        "z": ints(np.uint8, [n])})


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_dequantize_16bit_constant_params(dtype):
    model = make_model([helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"])], [("x", dtype, [6])],
                       [("y", np.float32, [6])], {"s": np.float32(0.01), "z": np.array(ints(dtype, [])).astype(dtype)},
                       opset=21)
    check_model(model, {"x": ints(dtype, [6])})


def test_dequantize_float16_scale_unsupported():
    model = make_model([helper.make_node("DequantizeLinear", ["x", "s"], ["y"])],
                       [("x", np.uint8, [4]), ("s", np.float16, [])], [("y", np.float16, [4])], opset=21)
    expect_failure(model, "unsupported_dtype")


# -- QuantizeLinear ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16])
def test_quantize_runtime_params(dtype):
    model = make_model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])],
                       [("x", np.float32, [3, 4]), ("s", np.float32, []), ("z", dtype, [])], [("y", dtype, [3, 4])],
                       opset=21)
    x = (RNG.standard_normal([3, 4]) * 50).astype(np.float32)
    x[0, :3] = [0.5, 1.5, -2.5]  # ties round to even
    check_model(model, {"x": x, "s": np.array(0.5 if np.dtype(dtype).itemsize == 1 else 0.002, np.float32),
                        "z": np.array(ints(dtype, [])).astype(dtype)})


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
def test_quantize_16bit_constant_params(dtype):
    model = make_model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], [("x", np.float32, [8])],
                       [("y", dtype, [8])], {"s": np.float32(0.01), "z": np.array(ints(dtype, [])).astype(dtype)},
                       opset=21)
    check_model(model, {"x": (RNG.standard_normal(8) * 400).astype(np.float32)})


def test_quantize_runtime_per_axis():
    model = make_model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1)],
                       [("x", np.float32, [2, 3]), ("s", np.float32, [3]), ("z", np.uint8, [3])],
                       [("y", np.uint8, [2, 3])], opset=13)
    check_model(model, {"x": (RNG.standard_normal([2, 3]) * 100).astype(np.float32),
                        "s": np.array([0.5, 1.0, 2.0], np.float32), "z": np.array([0, 128, 255], np.uint8)})


def test_dynamic_quantize_linear_expanded_form():
    """The function body of DynamicQuantizeLinear: QuantizeLinear with computed scale and zero point."""
    nodes = [helper.make_node("ReduceMax", ["x"], ["mx"], keepdims=0),
             helper.make_node("Div", ["mx", "qmax"], ["s"]),
             helper.make_node("Cast", ["zf"], ["z"], to=2),
             helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])]
    model = make_model(nodes, [("x", np.float32, [6])], [("y", np.uint8, [6])],
                       {"qmax": np.float32(255), "zf": np.float32(3)}, opset=13)
    check_model(model, {"x": np.array([0, 2, -3, -2.5, 1.34, 0.5], np.float32)})


# -- QLinearMatMul ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
@pytest.mark.parametrize("shapes", [([2, 4], [4, 3]), ([2, 2, 4], [2, 4, 3]), ([3, 5], [2, 5, 2])], ids=str)
def test_qlinear_matmul_runtime_params(dtype, shapes):
    a_shape, b_shape = shapes
    out = list(np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))) + [a_shape[-2], b_shape[-1]]
    names = ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"]
    inputs = [("a", dtype, a_shape), ("sa", np.float32, [1]), ("za", dtype, [1]), ("b", dtype, b_shape),
              ("sb", np.float32, [1]), ("zb", dtype, [1]), ("sy", np.float32, [1]), ("zy", dtype, [1])]
    model = make_model([helper.make_node("QLinearMatMul", names, ["y"])], inputs, [("y", dtype, out)], opset=21)
    feeds = {"a": ints(dtype, a_shape), "b": ints(dtype, b_shape), "sa": np.array([0.0066], np.float32),
             "sb": np.array([0.00705], np.float32), "sy": np.array([0.0107], np.float32),
             "za": ints(dtype, [1]), "zb": ints(dtype, [1]), "zy": ints(dtype, [1])}
    check_reference(model, feeds)
    if len(a_shape) == len(b_shape):
        check_model(model, feeds)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_qlinear_matmul_float16_scales(dtype):
    """float16 scales: the multiplier is computed in float16 like the ONNX reference."""
    names = ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"]
    inputs = [("a", dtype, [2, 4]), ("sa", np.float16, [1]), ("za", dtype, [1]), ("b", dtype, [4, 3]),
              ("sb", np.float16, [1]), ("zb", dtype, [1]), ("sy", np.float16, [1]), ("zy", dtype, [1])]
    model = make_model([helper.make_node("QLinearMatMul", names, ["y"])], inputs, [("y", dtype, [2, 3])], opset=21)
    feeds = {"a": ints(dtype, [2, 4]), "b": ints(dtype, [4, 3]), "sa": np.array([0.0066], np.float16),
             "sb": np.array([0.00705], np.float16), "sy": np.array([0.0107], np.float16),
             "za": ints(dtype, [1]), "zb": ints(dtype, [1]), "zy": ints(dtype, [1])}
    check_reference(model, feeds)


def test_qlinear_matmul_runtime_per_column_unsupported():
    names = ["a", "sa", "za", "b", "sb", "zb", "sy", "zy"]
    inputs = [("a", np.uint8, [2, 4]), ("sa", np.float32, [1]), ("za", np.uint8, [1]), ("b", np.uint8, [4, 3]),
              ("sb", np.float32, [3]), ("zb", np.uint8, [3]), ("sy", np.float32, [1]), ("zy", np.uint8, [1])]
    model = make_model([helper.make_node("QLinearMatMul", names, ["y"])], inputs, [("y", np.uint8, [2, 3])],
                       opset=21)
    expect_failure(model, "unsupported_attribute_value")


# -- MatMulInteger / ConvInteger -------------------------------------------------------------------

def test_matmul_integer_runtime_zero_points():
    names = ["A", "B", "za", "zb"]
    inputs = [("A", np.uint8, [4, 3]), ("B", np.uint8, [3, 2]), ("za", np.uint8, [1]), ("zb", np.uint8, [1])]
    model = make_model([helper.make_node("MatMulInteger", names, ["Y"])], inputs, [("Y", np.int32, [4, 2])], opset=10)
    check_model(model, {"A": ints(np.uint8, [4, 3]), "B": ints(np.uint8, [3, 2]),
                        "za": np.array([12], np.uint8), "zb": np.array([200], np.uint8)})


def test_matmul_integer_constant_b_runtime_zero_point():
    model = make_model([helper.make_node("MatMulInteger", ["A", "B", "", "zb"], ["Y"])],
                       [("A", np.int8, [2, 5]), ("zb", np.int8, [])], [("Y", np.int32, [2, 3])],
                       {"B": ints(np.int8, [5, 3])}, opset=10)
    check_model(model, {"A": ints(np.int8, [2, 5]), "zb": np.array(-3, np.int8)})


def test_conv_integer_runtime_weights_follow_conv():
    """Run-time ConvInteger weights go through the float Conv lowering with a run-time filter."""
    names = ["x", "w", "zx", "zw"]
    inputs = [("x", np.uint8, [1, 1, 3, 3]), ("w", np.uint8, [2, 1, 2, 2]), ("zx", np.uint8, []),
              ("zw", np.uint8, [])]
    model = make_model([helper.make_node("ConvInteger", names, ["y"], pads=[1, 1, 1, 1])], inputs,
                       [("y", np.int32, [1, 2, 4, 4])], opset=10)
    feeds = {"x": ints(np.uint8, [1, 1, 3, 3]), "w": ints(np.uint8, [2, 1, 2, 2]), "zx": np.array(3, np.uint8),
             "zw": np.array(1, np.uint8)}
    check_model(model, feeds)


@pytest.mark.parametrize("runtime_params", [False, True])
def test_blocked_dequantize_linear(runtime_params):
    """Blocked DequantizeLinear (opset 21): one scale / zero point per 2 elements along axis 1."""
    scale = np.array([[0.5, 0.25], [1.0, 2.0], [0.125, 4.0]], np.float32)
    zp = np.array([[1, -2], [0, 3], [-1, 5]], np.int8)
    inputs = [("x", np.int8, [3, 4])]
    inits = {}
    if runtime_params:
        inputs += [("s", np.float32, [3, 2]), ("z", np.int8, [3, 2])]
    else:
        inits = {"s": scale, "z": zp}
    model = make_model([helper.make_node("DequantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=2)],
                       inputs, [("y", np.float32, [3, 4])], inits, opset=21)
    feeds = {"x": ints(np.int8, [3, 4])}
    if runtime_params:
        feeds.update(s=scale, z=zp)
    check_model(model, feeds)


@pytest.mark.parametrize("runtime_params", [False, True])
def test_blocked_quantize_linear(runtime_params):
    scale = np.array([[0.5, 0.25], [1.0, 2.0], [0.125, 4.0]], np.float32)
    zp = np.array([[1, 2], [0, 3], [7, 5]], np.uint8)
    inputs = [("x", np.float32, [3, 4])]
    inits = {}
    if runtime_params:
        inputs += [("s", np.float32, [3, 2]), ("z", np.uint8, [3, 2])]
    else:
        inits = {"s": scale, "z": zp}
    model = make_model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=2)],
                       inputs, [("y", np.uint8, [3, 4])], inits, opset=21)
    feeds = {"x": np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32) * 4}
    if runtime_params:
        feeds.update(s=scale, z=zp)
    check_model(model, feeds)
