"""math_unary family: Floor, Ceil, Round, Mod, trigonometric and hyperbolic functions."""
from __future__ import annotations

import numpy as np
import pytest

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from tests.helpers import check_model, expect_failure, single_op_model

TOL = 1e-5


def _check(model, feeds):
    """check_model (default delegates, XNNPACK) plus the builtin-kernel path, both vs ONNX Runtime."""
    result = check_model(model, feeds, tol=TOL)
    expected = run_onnx(model.SerializeToString(), feeds)
    got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=False)
    for name, ref in expected.items():
        out = got[name]
        assert out.shape == ref.shape and out.dtype == ref.dtype
        if ref.dtype.kind == "f":
            bound = TOL * max(1.0, float(np.abs(ref).max()))
            err = float(np.abs(out.astype(np.float64) - ref).max())
            assert err <= bound, f"builtin kernels: max abs error {err:.3g} > {bound:.3g}"
        else:
            np.testing.assert_array_equal(out, ref)
    return result


def _uniform(lo, hi, shape=(4, 64), seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)


def _unary(op, x, opset=13):
    return _check(single_op_model(op, [("x", np.float32, list(x.shape))], opset=opset), {"x": x})


# -- rounding --------------------------------------------------------------------------------

ROUNDING = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -3.7, 0.49999997, -0.49999997, 1e7 + 1, -8.5,
                     0.0, -0.0, 4.2, 123.5], np.float32).reshape(2, 8)


@pytest.mark.parametrize("op,opset", [("Floor", 7), ("Floor", 13), ("Ceil", 13), ("Round", 11), ("Round", 22)])
def test_rounding(op, opset):
    x = np.concatenate([ROUNDING, _uniform(-10, 10, (2, 8))])
    _unary(op, x, opset)


# -- Mod -------------------------------------------------------------------------------------

def _mod_operands(dtype, seed=1):
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        a = rng.uniform(-20, 20, (3, 8)).astype(np.float32)
        b = rng.uniform(0.5, 6, (8,)).astype(np.float32) * rng.choice([-1, 1], 8).astype(np.float32)
        a[0, :4] = [6.0, -6.0, 0.0, -0.0]  # exact multiples and signed zeros
        b[:4] = [3.0, 3.0, -2.0, 2.0]
        return a, b
    a = rng.integers(-50, 51, (3, 8)).astype(dtype)
    b = rng.integers(1, 8, (8,)).astype(dtype) * rng.choice([-1, 1], 8).astype(dtype)
    a[0, :4] = [6, -6, 0, np.iinfo(dtype).min]
    b[:4] = [3, 3, -2, 7]
    return a, b


@pytest.mark.parametrize("dtype,fmod", [(np.float32, 1), (np.int32, 0), (np.int32, 1), (np.int64, 0),
                                        (np.int64, 1)])
@pytest.mark.parametrize("opset", [10, 13])
def test_mod(dtype, fmod, opset):
    a, b = _mod_operands(dtype)
    model = single_op_model("Mod", [("a", dtype, [3, 8]), ("b", dtype, [8])], opset=opset, fmod=fmod)
    _check(model, {"a": a, "b": b})


def test_mod_constant_divisor():
    a, _ = _mod_operands(np.float32)
    model = single_op_model("Mod", [("a", np.float32, [3, 8])], initializers={"b": np.array(-2.5, np.float32)},
                            fmod=1)
    _check(model, {"a": a})


def test_mod_float_fmod0_rejected():
    model = single_op_model("Mod", [("a", np.float32, [3]), ("b", np.float32, [3])], fmod=0)
    expect_failure(model, "unsupported_attribute_value")


def test_mod_unsupported_dtype():
    model = single_op_model("Mod", [("a", np.uint64, [3]), ("b", np.uint64, [3])])
    expect_failure(model, "unsupported_dtype")


# -- trigonometric ---------------------------------------------------------------------------

@pytest.mark.parametrize("op,lo,hi", [("Sin", -10, 10), ("Cos", -10, 10), ("Sin", -200, 200), ("Cos", -200, 200),
                                      ("Tan", -1.3, 1.3), ("Tan", -20, 20), ("Atan", -50, 50), ("Atan", -2, 2)])
def test_trig(op, lo, hi):
    _unary(op, _uniform(lo, hi), opset=7)


@pytest.mark.parametrize("op", ["Asin", "Acos"])
def test_asin_acos(op):
    x = _uniform(-1, 1)
    x[0, :8] = [-1.0, 1.0, 0.0, -0.0, 0.99999994, -0.99999994, 0.5, -0.5]
    _unary(op, x, opset=7)


def test_tan_near_poles_and_large():
    poles = (np.arange(-6, 7) + 0.5) * np.pi
    x = np.concatenate([poles, np.nextafter(poles, 0), poles + 1e-3, [5000.3, -8000.1, 9000.7, 2e4]])
    _unary("Tan", x.astype(np.float32).reshape(1, -1))


def test_atan_extremes():
    t8 = np.float32(0.41421356)
    x = np.array([[0.0, -0.0, 1e-30, -1e-30, 1e30, -1e30, 3e38, 1.0, -1.0, np.inf, -np.inf,
                   np.nextafter(np.float32(1), 2), np.nextafter(np.float32(1), 0), t8, np.nextafter(t8, 1),
                   1 / t8, -t8]], np.float32)
    _unary("Atan", x)
    nan = np.array([[np.nan, 2.0]], np.float32)  # check_model matches NaN with NaN on both kernel paths
    check_model(single_op_model("Atan", [("x", np.float32, [1, 2])], opset=7), {"x": nan})


def test_atan_relative_accuracy():
    """The polynomial keeps float32-rounding accuracy relative to the value, from 1e-30 to 1e30."""
    mags = np.logspace(-30, 30, 2000).astype(np.float32)
    x = np.concatenate([mags, -mags]).reshape(1, -1)
    model = single_op_model("Atan", [("x", np.float32, list(x.shape))], opset=7)
    ref = np.arctan(x.astype(np.float64))
    data = onnx2litert.convert(model).artifacts["float32"]
    for delegates in (True, False):
        got = run_tflite(data, {"x": x}, use_default_delegates=delegates)["y"].astype(np.float64)
        assert np.max(np.abs(got - ref) / np.abs(ref)) <= 4e-7


# -- hyperbolic ------------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["Sinh", "Cosh"])
@pytest.mark.parametrize("lo,hi", [(-3, 3), (-1e-3, 1e-3), (-89, 89)])
def test_sinh_cosh(op, lo, hi):
    _unary(op, _uniform(lo, hi), opset=9)


@pytest.mark.parametrize("op", ["Sinh", "Cosh"])
def test_sinh_cosh_near_overflow(op):
    # e^x overflows float32 above 88.72 but sinh/cosh stay finite up to 89.41.
    x = np.array([[88.0, 88.8, 89.0, 89.4, -88.9, -89.4, 0.0, -0.0]], np.float32)
    _unary(op, x)


@pytest.mark.parametrize("lo,hi", [(-5, 5), (-1e-3, 1e-3), (-1e6, 1e6)])
def test_asinh(lo, hi):
    x = _uniform(lo, hi)
    _unary("Asinh", x, opset=9)


def test_asinh_extremes():
    _unary("Asinh", np.array([[0.0, -0.0, 1e-30, -1e-30, 1048576.0, 1048577.0, 1e30, -3e38]], np.float32))


@pytest.mark.parametrize("lo,hi", [(1, 5), (1, 1.001), (1, 1e8)])
def test_acosh(lo, hi):
    x = _uniform(lo, hi)
    x[0, :4] = [1.0, 1048576.0, 1048577.0, 3e38]
    _unary("Acosh", x, opset=9)


@pytest.mark.parametrize("lo,hi", [(-0.999, 0.999), (-1e-3, 1e-3)])
def test_atanh(lo, hi):
    x = _uniform(lo, hi)
    x[0, :4] = [0.0, -0.0, 0.99999994, -0.99999994]
    _unary("Atanh", x, opset=9)


@pytest.mark.parametrize("op", ["Sin", "Asinh", "Mod"])
def test_unsupported_float64(op):
    inputs = [("a", np.float64, [3])] + ([("b", np.float64, [3])] if op == "Mod" else [])
    attrs = {"fmod": 1} if op == "Mod" else {}
    expect_failure(single_op_model(op, inputs, **attrs), "unsupported_dtype")
