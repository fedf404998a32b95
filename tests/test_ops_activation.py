"""Activation family: LiteRT vs ONNX Runtime for every op, attribute variant and claimed dtype."""
from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from tests.helpers import check_model, expect_failure, make_model, single_op_model

F32, I32, I64 = np.float32, np.int32, np.int64
SHAPE = [2, 3, 4, 5]


def _x(scale: float = 3.0, shape=SHAPE, seed: int = 3) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(F32)


def _unary(op: str, opset: int = 17, dtype=F32, shape=SHAPE, **attrs):
    return single_op_model(op, [("x", dtype, shape)], shape, opset=opset, **attrs)


# -- simple builtins -----------------------------------------------------------------------------

@pytest.mark.parametrize("op,opset,opcode", [("Relu", 7, "RELU"), ("Relu", 14, "RELU"), ("Sigmoid", 7, "LOGISTIC"),
                                             ("Sigmoid", 13, "LOGISTIC"), ("Tanh", 13, "TANH"),
                                             ("HardSwish", 14, "HARD_SWISH")])
def test_builtin_float32(op, opset, opcode):
    result = check_model(_unary(op, opset), {"x": _x(4.0)})
    assert result.op_counts == {opcode: 1}


def test_relu_int32():
    x = np.random.default_rng(0).integers(-100, 100, SHAPE).astype(I32)
    assert check_model(_unary("Relu", 14, I32), {"x": x}).op_counts == {"MAXIMUM": 1}


def test_relu_int64_against_numpy():
    """ONNX Runtime has no int64 Relu kernel, so this dtype is checked against numpy (not 'verified')."""
    from onnx2litert import convert
    from onnx2litert.evaluate import run_tflite

    x = np.random.default_rng(0).integers(-100, 100, SHAPE).astype(I64)
    got = run_tflite(convert(_unary("Relu", 14, I64)).artifacts["float32"], {"x": x})["y"]
    assert got.dtype == I64
    np.testing.assert_array_equal(got, np.maximum(x, 0))


def test_relu_int8_unsupported():
    expect_failure(_unary("Relu", 14, np.int8), "unsupported_dtype")


@pytest.mark.parametrize("attrs", [{}, {"alpha": 0.2}, {"alpha": 1.5}, {"alpha": -0.3}])
def test_leaky_relu(attrs):
    assert check_model(_unary("LeakyRelu", 16, **attrs), {"x": _x()}).op_counts == {"LEAKY_RELU": 1}


# -- PRelu -------------------------------------------------------------------------------------

PRELU_CASES = [
    ([1, 3, 4, 5], [3, 1, 1]),        # per channel, as exported from PyTorch
    ([2, 3, 4, 5], [1]),              # one shared slope
    ([2, 3, 4, 5], [5]),              # trailing axis
    ([2, 3, 4, 5], [2, 3, 4, 5]),     # full shape
    ([2, 3, 4], [3, 1]),              # rank 3 (Conv1d)
    ([2, 6], [6]),                    # rank 2 (Linear)
    ([1, 3, 2, 4, 5], [3, 1, 1, 1]),  # rank 5 (Conv3d)
    ([2, 1, 2, 1, 2, 1, 3], [3]),     # rank 7: exact RELU/MINIMUM/MUL decomposition
]


@pytest.mark.parametrize("x_shape,slope_shape", PRELU_CASES, ids=str)
@pytest.mark.parametrize("opset", [7, 9, 16])
def test_prelu_const_slope(x_shape, slope_shape, opset):
    slope = np.random.default_rng(1).uniform(-0.5, 1.5, slope_shape).astype(F32)
    model = single_op_model("PRelu", [("x", F32, x_shape)], x_shape, initializers={"slope": slope}, opset=opset)
    result = check_model(model, {"x": _x(shape=x_shape)})
    assert ("PRELU" in result.op_counts) == (len(x_shape) <= 6)


@pytest.mark.parametrize("x_shape,slope_shape", [([1, 3, 4, 5], [3, 1, 1]), ([2, 3, 4], [4])], ids=str)
def test_prelu_runtime_slope(x_shape, slope_shape):
    model = single_op_model("PRelu", [("x", F32, x_shape), ("slope", F32, slope_shape)], x_shape, opset=16)
    check_model(model, {"x": _x(shape=x_shape), "slope": _x(1.0, slope_shape, seed=4)})


# -- Elu / Selu --------------------------------------------------------------------------------

_ELU_DECOMPOSED = {"ELU", "MINIMUM", "MUL", "RELU", "ADD"}


@pytest.mark.parametrize("alpha,opcodes", [(None, {"ELU"}), (1.0, {"ELU"}), (0.5, _ELU_DECOMPOSED),
                                           (2.0, _ELU_DECOMPOSED)])
def test_elu(alpha, opcodes):
    attrs = {} if alpha is None else {"alpha": alpha}
    result = check_model(_unary("Elu", 7, **attrs), {"x": _x(5.0)})
    assert set(result.op_counts) == opcodes


@pytest.mark.parametrize("attrs", [{}, {"alpha": 2.0, "gamma": 0.5}, {"alpha": 0.1}])
def test_selu(attrs):
    check_model(_unary("Selu", 7, **attrs), {"x": _x(5.0)})


# -- Clip --------------------------------------------------------------------------------------

CLIP_ATTR_CASES = [({"min": 0.0, "max": 6.0}, "RELU6"), ({"min": -1.0, "max": 1.0}, "RELU_N1_TO_1"),
                   ({"min": 0.0}, "RELU"), ({"min": -0.5, "max": 0.7}, "MINIMUM"), ({"max": 0.3}, "MINIMUM"),
                   ({"min": -0.2}, "MAXIMUM"), ({}, "MINIMUM")]  # Clip-6 defaults: the float32 limits


@pytest.mark.parametrize("attrs,opcode", CLIP_ATTR_CASES, ids=str)
def test_clip_opset6_attributes(attrs, opcode):
    result = check_model(_unary("Clip", 7, **attrs), {"x": _x(4.0)})
    assert opcode in result.op_counts


CLIP_INPUT_CASES = [(0.0, 6.0, "RELU6"), (-1.0, 1.0, "RELU_N1_TO_1"), (0.0, None, "RELU"),
                    (0.0, math.inf, "RELU"), (-0.5, 0.7, "MINIMUM"), (None, 0.3, "MINIMUM"), (-0.2, None, "MAXIMUM"),
                    (None, None, "RESHAPE"), (0.2, -0.1, "MINIMUM"),  # min > max: every value becomes max
                    (-math.inf, math.inf, "RESHAPE")]


@pytest.mark.parametrize("lo,hi,opcode", CLIP_INPUT_CASES, ids=str)
@pytest.mark.parametrize("opset", [11, 13])
def test_clip_const_inputs(lo, hi, opcode, opset):
    inits = {}
    names = ["x", "", ""]
    if lo is not None:
        inits["lo"], names[1] = np.array(lo, F32), "lo"
    if hi is not None:
        inits["hi"], names[2] = np.array(hi, F32), "hi"
    while names[-1] == "":
        names.pop()
    model = single_op_model("Clip", [("x", F32, SHAPE)], SHAPE, initializers=inits, input_names=names, opset=opset)
    result = check_model(model, {"x": _x(4.0)})
    assert opcode in result.op_counts


@pytest.mark.parametrize("which", ["min", "max", "both"])
def test_clip_runtime_bounds(which):
    inputs = [("x", F32, SHAPE)]
    names = ["x", "", ""]
    feeds = {"x": _x(4.0)}
    if which in ("min", "both"):
        inputs.append(("lo", F32, []))
        names[1], feeds["lo"] = "lo", np.array(-0.5, F32)
    if which in ("max", "both"):
        inputs.append(("hi", F32, []))
        names[2], feeds["hi"] = "hi", np.array(1.25, F32)
    while names[-1] == "":
        names.pop()
    model = single_op_model("Clip", inputs, SHAPE, input_names=names, opset=13)
    check_model(model, feeds)


@pytest.mark.parametrize("dtype", [I32, I64])
@pytest.mark.parametrize("lo,hi", [(0, 6), (-3, 40), (None, 10), (-20, None)], ids=str)
def test_clip_int(dtype, lo, hi):
    inits, names = {}, ["x", "", ""]
    if lo is not None:
        inits["lo"], names[1] = np.array(lo, dtype), "lo"
    if hi is not None:
        inits["hi"], names[2] = np.array(hi, dtype), "hi"
    while names[-1] == "":
        names.pop()
    model = single_op_model("Clip", [("x", dtype, SHAPE)], SHAPE, initializers=inits, input_names=names, opset=13)
    x = np.random.default_rng(0).integers(-100, 100, SHAPE).astype(dtype)
    check_model(model, {"x": x})


def test_clip_uint64_unsupported():
    model = single_op_model("Clip", [("x", np.uint64, SHAPE)], SHAPE, opset=13)
    expect_failure(model, "unsupported_dtype")


# -- HardSigmoid, Softplus, Mish, Gelu ---------------------------------------------------------

@pytest.mark.parametrize("attrs", [{}, {"alpha": 0.25, "beta": 0.4}, {"alpha": 1.0 / 6.0, "beta": 0.5}])
def test_hard_sigmoid(attrs):
    check_model(_unary("HardSigmoid", 7, **attrs), {"x": _x(5.0)})


def _wide_range() -> np.ndarray:
    """Values from -100 to 100 including tiny magnitudes, as a [4, 251] tensor."""
    x = np.concatenate([np.linspace(-100.0, 100.0, 501), np.geomspace(1e-6, 1.0, 251), -np.geomspace(1e-6, 1.0, 252)])
    return x.astype(F32).reshape(4, 251)


@pytest.mark.parametrize("op,opset", [("Softplus", 7), ("Softplus", 17), ("Mish", 18)])
def test_softplus_mish_wide_range(op, opset):
    check_model(_unary(op, opset, shape=[4, 251]), {"x": _wide_range()})


@pytest.mark.parametrize("op,opset", [("Softplus", 7), ("Mish", 18)])
def test_softplus_mish_normal_range(op, opset):
    """Values near zero, where max|ref| is small, so the absolute bound is tightest."""
    check_model(_unary(op, opset), {"x": _x(2.0)})


@pytest.mark.parametrize("approximate", [None, "none", "tanh"])
def test_gelu(approximate):
    attrs = {} if approximate is None else {"approximate": approximate}
    result = check_model(_unary("Gelu", 20, **attrs), {"x": _x(3.0)})
    assert result.op_counts == {"GELU": 1}


def test_gelu_invalid_approximate():
    expect_failure(_unary("Gelu", 20, approximate="sigmoid"), "unsupported_attribute_value")


# -- Erf ---------------------------------------------------------------------------------------

def test_erf_matches_ort():
    check_model(_unary("Erf", 13, shape=[4, 251]), {"x": _wide_range()})
    check_model(_unary("Erf", 9), {"x": _x(1.5)})


def test_erf_accuracy_against_exact():
    """Max abs error below 1e-6 against float64 erf across [-12, 12] and tiny magnitudes."""
    from onnx2litert import convert
    from onnx2litert.evaluate import run_tflite

    x = np.concatenate([np.linspace(-12.0, 12.0, 96001), np.geomspace(1e-30, 1e-2, 2000),
                        -np.geomspace(1e-30, 1e-2, 2000), [0.0, 1e30, -1e30, 3.4e38]]).astype(F32)
    model = _unary("Erf", 13, shape=[x.size])
    got = run_tflite(convert(model).artifacts["float32"], {"x": x})["y"].astype(np.float64)
    exact = np.array([math.erf(float(v)) for v in x])
    err = np.abs(got - exact)
    assert err.max() < 1e-6, f"max error {err.max():.3g} at x={x[err.argmax()]}"
    # small arguments keep their relative accuracy too (erf(x) ~ 2x/sqrt(pi))
    tiny = np.abs(x) < 1e-2
    rel = err[tiny] / np.maximum(np.abs(exact[tiny]), 1e-38)
    assert rel.max() < 1e-6


def test_erf_int_unsupported():
    expect_failure(_unary("Erf", 13, I32), "unsupported_dtype")


def test_gelu_from_erf_pattern():
    """The pre-opset-20 GELU export pattern: 0.5 * x * (1 + erf(x / sqrt(2)))."""
    nodes = [helper.make_node("Div", ["x", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    model = make_model(nodes, [("x", F32, SHAPE)], [("y", F32, SHAPE)],
                       {"sqrt2": np.array(math.sqrt(2.0), F32), "one": np.array(1.0, F32),
                        "half": np.array(0.5, F32)}, opset=17)
    check_model(model, {"x": _x(3.0)})


# -- relative accuracy of Softplus / Mish for negative inputs --------------------------------------

@pytest.mark.parametrize("op,opset", [("Softplus", 7), ("Mish", 18)])
def test_softplus_mish_relative_accuracy_negative(op, opset):
    """For x in [-20, -1] the results are tiny (~e^x): check them to 1e-5 *relative* error on both
    CPU paths (XNNPACK's LOG near 1 and log(1 + u) rounding would lose it)."""
    x = -np.geomspace(1.0, 20.0, 200).astype(F32).reshape(1, 200)
    model = _unary(op, opset, shape=[1, 200])
    expected = run_onnx(model.SerializeToString(), {"x": x})["y"].astype(np.float64)
    result = onnx2litert.convert(model)
    for delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], {"x": x}, use_default_delegates=delegates)["y"]
        assert np.max(np.abs(got - expected) / np.abs(expected)) < 1e-5


# -- Celu, ThresholdedRelu, Shrink, Softsign, Swish --------------------------------------------------

@pytest.mark.parametrize("attrs", [{}, {"alpha": 2.0}, {"alpha": 0.3}])
def test_celu(attrs):
    check_model(_unary("Celu", 12, **attrs), {"x": _x(4.0)})


def test_celu_float16_against_reference():
    """ORT has no float16 Celu kernel: float16 is checked against the ONNX reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    x = _x(3.0).astype(np.float16)
    model = _unary("Celu", 12, dtype=np.float16)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    result = onnx2litert.convert(model)
    for delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], {"x": x}, use_default_delegates=delegates)["y"]
        assert got.dtype == np.float16
        np.testing.assert_allclose(got.astype(F32), expected.astype(F32), rtol=2e-3, atol=1e-3)


def test_celu_zero_alpha_unsupported():
    expect_failure(_unary("Celu", 12, alpha=0.0), "unsupported_attribute_value")


@pytest.mark.parametrize("opset", [10, 22])
@pytest.mark.parametrize("attrs", [{}, {"alpha": 0.5}, {"alpha": -1.0}])
def test_thresholded_relu(opset, attrs):
    x = _x(2.0)
    x.reshape(-1)[:2] = [attrs.get("alpha", 1.0), 0.0]  # exactly at the threshold: 0
    check_model(_unary("ThresholdedRelu", opset, **attrs), {"x": x})


@pytest.mark.parametrize("attrs", [{}, {"lambd": 1.5}, {"lambd": 1.5, "bias": 1.5}, {"bias": 0.25}])
def test_shrink(attrs):
    x = _x(2.0)
    lambd = attrs.get("lambd", 0.5)
    x.reshape(-1)[:3] = [lambd, -lambd, 0.0]
    check_model(_unary("Shrink", 9, **attrs), {"x": x})


@pytest.mark.parametrize("opset", [7, 22])
def test_softsign(opset):
    x = _x(5.0)
    x.reshape(-1)[:3] = [0.0, 1e30, -1e30]
    check_model(_unary("Softsign", opset), {"x": x})


@pytest.mark.parametrize("attrs", [{}, {"alpha": 1.702}, {"alpha": -0.5}])
def test_swish_against_reference(attrs):
    """Swish is new in opset 24 (newer than ONNX Runtime runs): checked against the ONNX reference."""
    from onnx.reference import ReferenceEvaluator

    x = _x(4.0)
    model = _unary("Swish", 24, **attrs)
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    result = onnx2litert.convert(model)
    for delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], {"x": x}, use_default_delegates=delegates)["y"]
        bound = 1e-5 * max(1.0, float(np.abs(expected).max()))
        assert float(np.max(np.abs(got - expected))) <= bound


def test_swish_not_used_before_opset24():
    """Swish did not exist at opset 23: the opset-24 lowering must not serve an older model."""
    from onnx2litert.lower.registry import REGISTRY

    assert REGISTRY.find("", "Swish", 23) is None
    assert REGISTRY.find("", "Swish", 24) is not None
