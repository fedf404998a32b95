"""Types without LiteRT kernels computed exactly in a wider type, and ops of opsets newer than ORT runs.

Oracle: ONNX Runtime where it has a kernel for the op and type, else the ONNX reference evaluator
(``onnx.reference``), always compared exactly for integer/bool outputs (floats: tests.helpers bound).
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from tests.helpers import _assert_match, expect_failure, make_model, single_op_model

SMALL_INTS = [np.int8, np.uint8, np.int16, np.uint16, np.uint32, np.uint64]
ARITH_TYPES = SMALL_INTS + [np.float16]


def _reference(model, feeds):
    """ORT's outputs, or the ONNX reference evaluator's when ORT has no kernel (or opset)."""
    try:
        return run_onnx(model.SerializeToString(), feeds), "ort"
    except Exception:  # noqa: BLE001 - ORT reports missing kernels/opsets with several exception types
        outs = ReferenceEvaluator(model).run(None, feeds)
        return {o.name: np.asarray(v) for o, v in zip(model.graph.output, outs)}, "reference"


def check(model, feeds, tol: float = 1e-5):
    """Convert; run on XNNPACK and builtin kernels; compare with ORT or the ONNX reference."""
    expected, _ = _reference(model, feeds)
    result = onnx2litert.convert(model)
    for delegates in (True, False):
        _assert_match(expected, run_tflite(result.artifacts["float32"], feeds, use_default_delegates=delegates), tol)
    return result


def _ints(rng, dtype, shape, lo=None, hi=None):
    info = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    x = rng.integers(lo, hi, shape, endpoint=True, dtype=dtype)
    return x


def _values(dtype, shape, seed=0, nonzero=False):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        x = (rng.standard_normal(shape) * 8).astype(dtype)
    else:
        x = _ints(rng, dtype, shape)
        x.reshape(-1)[:2] = [np.iinfo(dtype).min, np.iinfo(dtype).max]  # wrap-around at both ends
    if nonzero:
        x[x == 0] = 1
    return x


def _binary(op, dtype, a_shape=(2, 3, 4), b_shape=(3, 1), opset=14, out_dtype=None):
    out = list(np.broadcast_shapes(a_shape, b_shape))
    return single_op_model(op, [("a", dtype, list(a_shape)), ("b", dtype, list(b_shape))], out,
                           output_dtype=out_dtype, opset=opset)


# -- Add / Sub / Mul / Div -------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
@pytest.mark.parametrize("dtype", ARITH_TYPES, ids=lambda d: np.dtype(d).name)
def test_arith_widened(op, dtype):
    feeds = {"a": _values(dtype, (2, 3, 4), 1), "b": _values(dtype, (3, 1), 2)}
    check(_binary(op, dtype), feeds)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.float16], ids=lambda d: np.dtype(d).name)
def test_div_widened(dtype):
    a = _values(dtype, (2, 3, 4), 3)
    b = _values(dtype, (3, 1), 4, nonzero=True)
    if np.dtype(dtype).kind == "i":
        a.reshape(-1)[0] = np.iinfo(dtype).min
        b.reshape(-1)[0] = -1  # min / -1 wraps
    check(_binary("Div", dtype), {"a": a, "b": b})


def test_arith_widened_constant_operand():
    model = single_op_model("Add", [("a", np.uint8, [2, 3])], [2, 3], initializers={"b": np.array([250, 7, 0], np.uint8)},
                            opset=14)
    check(model, {"a": _values(np.uint8, (2, 3), 5)})


# -- Max / Min -----------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dtype", ARITH_TYPES, ids=lambda d: np.dtype(d).name)
def test_minmax_widened(op, dtype):
    shapes = [(2, 3, 4), (3, 1), (4,)]
    inputs = [(f"x{i}", dtype, list(s)) for i, s in enumerate(shapes)]
    feeds = {f"x{i}": _values(dtype, s, 10 + i) for i, s in enumerate(shapes)}
    check(single_op_model(op, inputs, [2, 3, 4], opset=13), feeds)


def test_max_float64_unsupported():
    expect_failure(_binary("Max", np.float64, opset=13), "unsupported_dtype")


# -- comparisons ---------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"])
@pytest.mark.parametrize("dtype", ARITH_TYPES, ids=lambda d: np.dtype(d).name)
def test_compare_widened(op, dtype):
    a = _values(dtype, (2, 3, 4), 20)
    b = _values(dtype, (3, 1), 21)
    a[0, :, 0] = b[:, 0]  # ties
    check(_binary(op, dtype, opset=19 if op == "Equal" else 16, out_dtype=np.bool_), {"a": a, "b": b})


def test_compare_uint64_top_bit():
    """Values on both sides of 2^63 (negative when read as int64)."""
    a = np.array([0, 1, 2**63, 2**64 - 1, 2**63 - 1, 5], np.uint64)
    b = np.array([2**63, 1, 0, 2**64 - 2, 2**63, 5], np.uint64)
    for op in ["Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal"]:
        check(_binary(op, np.uint64, (6,), (6,), opset=16, out_dtype=np.bool_), {"a": a, "b": b})
    for op in ["Max", "Min"]:
        check(_binary(op, np.uint64, (6,), (6,), opset=13), {"a": a, "b": b})


# -- Where, Clip, IsNaN, IsInf ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype", SMALL_INTS + [np.int64, np.float16, np.float64], ids=lambda d: np.dtype(d).name)
def test_where_dtypes(dtype):
    model = single_op_model("Where", [("c", np.bool_, [3, 1]), ("a", dtype, [3, 4]), ("b", dtype, [4])], [3, 4],
                            output_dtype=dtype, opset=16)
    rng = np.random.default_rng(3)
    check(model, {"c": rng.integers(0, 2, (3, 1)).astype(bool), "a": _values(dtype, (3, 4), 4),
                  "b": _values(dtype, (4,), 5)})


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.uint32, np.float16],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("bounds", ["both", "min", "max", "runtime"])
def test_clip_widened(dtype, bounds):
    x = _values(dtype, (3, 4), 30)
    lo, hi = np.array(2, dtype), np.array(90, dtype)
    if bounds == "runtime":
        model = single_op_model("Clip", [("x", dtype, [3, 4]), ("lo", dtype, []), ("hi", dtype, [])], [3, 4], opset=13)
        check(model, {"x": x, "lo": lo, "hi": hi})
        return
    inits = {"lo": lo, "hi": hi} if bounds == "both" else ({"lo": lo} if bounds == "min" else {"": None, "hi": hi})
    names = ["x"] + (["lo", "hi"] if bounds == "both" else (["lo"] if bounds == "min" else ["", "hi"]))
    inits = {k: v for k, v in inits.items() if k}
    model = single_op_model("Clip", [("x", dtype, [3, 4])], [3, 4], initializers=inits, input_names=names, opset=13)
    check(model, {"x": x})


@pytest.mark.parametrize("dtype", [np.float16, np.float64], ids=lambda d: np.dtype(d).name)
def test_isnan_widened(dtype):
    x = np.array([1.0, np.nan, -np.inf, np.inf, 0.0, -3.5], dtype)
    check(single_op_model("IsNaN", [("x", dtype, [6])], [6], output_dtype=np.bool_, opset=20), {"x": x})


@pytest.mark.parametrize("attrs", [{}, {"detect_negative": 0}, {"detect_positive": 0}])
def test_isinf_float16(attrs):
    x = np.array([1.0, np.nan, -np.inf, np.inf, 65504.0, -3.5], np.float16)
    check(single_op_model("IsInf", [("x", np.float16, [6])], [6], output_dtype=np.bool_, opset=20, **attrs),
          {"x": x})


def test_isinf_float64_unsupported():
    model = single_op_model("IsInf", [("x", np.float64, [6])], [6], output_dtype=np.bool_, opset=20)
    expect_failure(model, "unsupported_dtype")


# -- Mod ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.uint32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_widened(dtype, fmod):
    a = _values(dtype, (3, 4), 40)
    b = _values(dtype, (4,), 41, nonzero=True)
    model = single_op_model("Mod", [("a", dtype, [3, 4]), ("b", dtype, [4])], [3, 4], opset=13, fmod=fmod)
    check(model, {"a": a, "b": b})


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_opset28_floats(dtype, fmod):
    """Opset 28 defines fmod=0 for floats, with IEEE special cases (checked against the reference)."""
    a = np.array([5.5, -5.5, 5.5, -5.5, 0.0, np.inf, 3.0, 2.0, -2.0, np.nan, 7.25, -0.75], dtype)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0, 2.0, 0.0, np.inf, np.inf, 1.0, 0.5, 3.0], dtype)
    model = single_op_model("Mod", [("a", dtype, [12]), ("b", dtype, [12])], [12], opset=28, fmod=fmod)
    check(model, {"a": a, "b": b})


def test_mod_float_fmod0_before_opset28_unsupported():
    model = single_op_model("Mod", [("a", np.float32, [3]), ("b", np.float32, [3])], [3], opset=13, fmod=0)
    expect_failure(model, "unsupported_attribute_value")


@pytest.mark.parametrize("dtype", [np.uint64, np.float64], ids=lambda d: np.dtype(d).name)
def test_mod_unsupported_dtype(dtype):
    model = single_op_model("Mod", [("a", dtype, [3]), ("b", dtype, [3])], [3], opset=13, fmod=1)
    expect_failure(model, "unsupported_dtype")


# -- Cast / CastLike at every definition -------------------------------------------------------------

CASTLIKE_PAIRS = [(np.float32, np.float16), (np.float16, np.float32), (np.float32, np.float64),
                  (np.float64, np.float32), (np.float32, np.int32), (np.int64, np.float32), (np.int32, np.int8),
                  (np.uint8, np.float32), (np.float32, np.bool_)]


def _cast_values(src):
    x = np.array([[0.0, -0.7, 0.7, 3.9], [-100.5, 42.0, 1e-3, 7.25]])
    if np.dtype(src).kind in "iu":
        return np.abs(x).astype(src) if np.dtype(src).kind == "u" else x.astype(src)
    return x.astype(src)


@pytest.mark.parametrize("opset", [15, 19, 21, 23, 24, 25])
@pytest.mark.parametrize("src,dst", CASTLIKE_PAIRS, ids=lambda d: np.dtype(d).name)
def test_castlike(opset, src, dst):
    model = make_model([helper.make_node("CastLike", ["x", "like"], ["y"])],
                       [("x", src, [2, 4]), ("like", dst, [1])], [("y", dst, [2, 4])], opset=opset)
    check(model, {"x": _cast_values(src), "like": np.zeros(1, dst)})


def test_castlike_constant_like():
    model = make_model([helper.make_node("CastLike", ["x", "like"], ["y"])], [("x", np.float32, [2, 4])],
                       [("y", np.float16, [2, 4])], {"like": np.zeros(1, np.float16)}, opset=19)
    result = check(model, {"x": _cast_values(np.float32)})
    assert result.op_counts == {"CAST": 1}


@pytest.mark.parametrize("opset", [24, 25, 28])
@pytest.mark.parametrize("src,dst", CASTLIKE_PAIRS, ids=lambda d: np.dtype(d).name)
def test_cast_newer_opsets(opset, src, dst):
    model = single_op_model("Cast", [("x", src, [2, 4])], [2, 4], output_dtype=dst, opset=opset,
                            to=helper.np_dtype_to_tensor_dtype(np.dtype(dst)))
    check(model, {"x": _cast_values(src)})


@pytest.mark.parametrize("mode", ["down", "nearest"])
def test_cast_round_mode_irrelevant_for_non_float8(mode):
    model = single_op_model("Cast", [("x", np.float32, [2, 4])], [2, 4], output_dtype=np.float16, opset=24,
                            to=TensorProto.FLOAT16, round_mode=mode)
    check(model, {"x": _cast_values(np.float32)})


def test_cast_bad_round_mode():
    model = single_op_model("Cast", [("x", np.float32, [2, 4])], [2, 4], output_dtype=np.float16, opset=24,
                            to=TensorProto.FLOAT16)
    model.graph.node[0].attribute.append(helper.make_attribute("round_mode", "sideways"))
    expect_failure(model, "unsupported_attribute_value")


def test_castlike_unsupported_target():
    model = make_model([helper.make_node("CastLike", ["x", "like"], ["y"])],
                       [("x", np.float32, [2, 4]), ("like", np.uint64, [1])], [("y", np.uint64, [2, 4])], opset=19)
    expect_failure(model, "unsupported_dtype")
