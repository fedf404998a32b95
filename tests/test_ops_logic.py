"""Logic family: comparisons, boolean ops, Where, IsNaN/IsInf, Sign, BitShift, Bitwise*."""
from __future__ import annotations

import numpy as np
import pytest

import onnx2litert
from onnx2litert.evaluate import run_onnx, run_tflite
from tests.helpers import check_model, expect_failure, single_op_model

CMP_DTYPES = [np.float32, np.int32, np.int64]
BIT_DTYPES = [np.int8, np.int16, np.int32, np.uint8, np.uint16, np.uint32]


def _check(model, feeds):
    """check_model (default delegates) plus the builtin-kernel path, both against ONNX Runtime."""
    result = check_model(model, feeds)
    expected = run_onnx(model.SerializeToString(), feeds)
    got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=False)
    for name, ref in expected.items():
        assert got[name].dtype == ref.dtype
        np.testing.assert_array_equal(got[name], ref, err_msg=name)
    return result


def _values(rng, dtype, shape):
    """Small values with many ties (so == / <= cases occur)."""
    if np.dtype(dtype) == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(-3, 4, shape).astype(dtype)


# -- comparisons -----------------------------------------------------------------------------

@pytest.mark.parametrize("op,opset", [("Equal", 11), ("Equal", 19), ("Greater", 9), ("Less", 13),
                                      ("GreaterOrEqual", 12), ("LessOrEqual", 16)])
@pytest.mark.parametrize("dtype", CMP_DTYPES)
def test_compare(op, opset, dtype):
    rng = np.random.default_rng(1)
    model = single_op_model(op, [("a", dtype, [2, 1, 4]), ("b", dtype, [3, 1])], output_dtype=np.bool_,
                            opset=opset)
    _check(model, {"a": _values(rng, dtype, (2, 1, 4)), "b": _values(rng, dtype, (3, 1))})


def test_equal_bool_and_float_specials():
    rng = np.random.default_rng(2)
    model = single_op_model("Equal", [("a", np.bool_, [2, 3]), ("b", np.bool_, [3])], output_dtype=np.bool_)
    _check(model, {"a": _values(rng, np.bool_, (2, 3)), "b": _values(rng, np.bool_, (3,))})
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0], np.float32)
    model = single_op_model("Less", [("a", np.float32, [6]), ("b", np.float32, [6])], output_dtype=np.bool_)
    _check(model, {"a": special, "b": special[::-1].copy()})


def test_compare_constant_operand():
    model = single_op_model("Greater", [("a", np.float32, [2, 3])], output_dtype=np.bool_,
                            initializers={"b": np.array([0.0, 0.5, -0.5], np.float32)})
    _check(model, {"a": np.random.default_rng(3).standard_normal((2, 3)).astype(np.float32)})


def test_compare_unsupported_dtype():
    # float64 has no comparison kernel, and float32 would merge distinct values.
    model = single_op_model("Less", [("a", np.float64, [3]), ("b", np.float64, [3])], output_dtype=np.bool_)
    expect_failure(model, "unsupported_dtype")


# -- boolean logic ---------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logical_binary(op):
    rng = np.random.default_rng(4)
    model = single_op_model(op, [("a", np.bool_, [2, 1, 3]), ("b", np.bool_, [4, 1])], output_dtype=np.bool_)
    _check(model, {"a": _values(rng, np.bool_, (2, 1, 3)), "b": _values(rng, np.bool_, (4, 1))})


def test_not():
    model = single_op_model("Not", [("a", np.bool_, [2, 3])])
    _check(model, {"a": np.array([[True, False, True], [False, False, True]])})


# -- Where -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", CMP_DTYPES)
def test_where_broadcast(dtype):
    rng = np.random.default_rng(5)
    model = single_op_model("Where", [("c", np.bool_, [2, 1, 3]), ("x", dtype, [4, 1]), ("z", dtype, [3])],
                            output_dtype=dtype)
    _check(model, {"c": _values(rng, np.bool_, (2, 1, 3)), "x": _values(rng, dtype, (4, 1)),
                   "z": _values(rng, dtype, (3,))})


def test_where_constant_branch():
    model = single_op_model("Where", [("c", np.bool_, [2, 3]), ("x", np.float32, [2, 3])], output_dtype=np.float32,
                            initializers={"z": np.array(-1.0, np.float32)})
    rng = np.random.default_rng(6)
    _check(model, {"c": _values(rng, np.bool_, (2, 3)), "x": rng.standard_normal((2, 3)).astype(np.float32)})


def test_where_bool_against_numpy():
    # ONNX Runtime has no bool Where kernel: compare with numpy instead.
    model = single_op_model("Where", [("c", np.bool_, [2, 3]), ("x", np.bool_, [3]), ("z", np.bool_, [2, 1])],
                            output_dtype=np.bool_)
    rng = np.random.default_rng(7)
    feeds = {"c": _values(rng, np.bool_, (2, 3)), "x": _values(rng, np.bool_, (3,)),
             "z": _values(rng, np.bool_, (2, 1))}
    result = onnx2litert.convert(model)
    for delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=delegates)["y"]
        np.testing.assert_array_equal(got, np.where(feeds["c"], feeds["x"], feeds["z"]))


# -- IsNaN / IsInf / Sign --------------------------------------------------------------------

SPECIALS = np.array([[np.nan, np.inf, -np.inf, 0.0], [-0.0, 1.5, -2.0, 3e38]], np.float32)


def test_isnan():
    model = single_op_model("IsNaN", [("x", np.float32, [2, 4])], output_dtype=np.bool_, opset=13)
    _check(model, {"x": SPECIALS})


@pytest.mark.parametrize("pos,neg", [(1, 1), (1, 0), (0, 1), (0, 0)])
def test_isinf(pos, neg):
    model = single_op_model("IsInf", [("x", np.float32, [2, 4])], output_dtype=np.bool_, opset=10,
                            detect_positive=pos, detect_negative=neg)
    _check(model, {"x": SPECIALS})


def test_isinf_default_attributes():
    model = single_op_model("IsInf", [("x", np.float32, [2, 4])], output_dtype=np.bool_, opset=20)
    _check(model, {"x": SPECIALS})


@pytest.mark.parametrize("dtype", CMP_DTYPES)
def test_sign(dtype):
    if dtype == np.float32:
        x = np.array([[-2.5, -0.0, 0.0, 1e-30], [7.0, -1e-30, np.inf, -np.inf]], np.float32)
    else:
        info = np.iinfo(dtype)
        x = np.array([[info.min, -1, 0, 1], [info.max, -7, 5, 0]], dtype)
    _check(single_op_model("Sign", [("x", dtype, [2, 4])]), {"x": x})


# -- BitShift --------------------------------------------------------------------------------

SHIFT_DTYPES = [np.uint8, np.uint32]  # ONNX Runtime has no uint16 BitShift kernel (tested vs numpy)


def _shift_feeds(dtype, rng, k_shape=(4,), in_range=True):
    width = np.dtype(dtype).itemsize * 8
    x = rng.integers(0, np.iinfo(dtype).max, (3, 4), endpoint=True).astype(dtype)
    hi = width - 1 if in_range else width + 5
    k = rng.integers(0, hi, k_shape, endpoint=True).astype(dtype)
    k.reshape(-1)[0] = hi  # always exercise the extreme shift
    return x, k


def _numpy_shift(x, k, direction):
    """ONNX Runtime's semantics: logical shift, 0 once the shift reaches the bit width."""
    width = x.dtype.itemsize * 8
    x64, k64 = x.astype(np.uint64), k.astype(np.uint64)
    shifted = (x64 << np.minimum(k64, 63)) if direction == "LEFT" else (x64 >> np.minimum(k64, 63))
    return np.where(k64 >= width, 0, shifted % (1 << width)).astype(x.dtype)


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", SHIFT_DTYPES)
@pytest.mark.parametrize("in_range", [True, False])
def test_bitshift_runtime(direction, dtype, in_range):
    x, k = _shift_feeds(dtype, np.random.default_rng(8), (4,), in_range)
    model = single_op_model("BitShift", [("x", dtype, [3, 4]), ("k", dtype, [4])], opset=11, direction=direction)
    _check(model, {"x": x, "k": k})


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", SHIFT_DTYPES)
@pytest.mark.parametrize("in_range", [True, False])
def test_bitshift_constant(direction, dtype, in_range):
    x, k = _shift_feeds(dtype, np.random.default_rng(9), (3, 1), in_range)
    model = single_op_model("BitShift", [("x", dtype, [3, 4])], initializers={"k": k}, opset=18,
                            direction=direction)
    _check(model, {"x": x})


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("constant", [False, True])
def test_bitshift_uint16_against_numpy(direction, constant):
    x, k = _shift_feeds(np.uint16, np.random.default_rng(12), (4,), in_range=False)
    if constant:
        model = single_op_model("BitShift", [("x", np.uint16, [3, 4])], initializers={"k": k}, direction=direction)
        feeds = {"x": x}
    else:
        model = single_op_model("BitShift", [("x", np.uint16, [3, 4]), ("k", np.uint16, [4])], direction=direction)
        feeds = {"x": x, "k": k}
    result = onnx2litert.convert(model)
    for delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=delegates)["y"]
        np.testing.assert_array_equal(got, _numpy_shift(x, k, direction))


def test_bitshift_bad_direction():
    model = single_op_model("BitShift", [("x", np.uint8, [3]), ("k", np.uint8, [3])], direction="UP")
    expect_failure(model, "unsupported_attribute_value")


def _check_reference(model, feeds):
    """LiteRT (XNNPACK and builtin kernels) vs the ONNX reference evaluator, exactly.

    For opsets newer than ONNX Runtime supports (e.g. BitShift-28).
    """
    from onnx.reference import ReferenceEvaluator

    expected = ReferenceEvaluator(model).run(None, feeds)
    result = onnx2litert.convert(model)
    for delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=delegates)
        for out, ref in zip(model.graph.output, expected):
            assert got[out.name].dtype == ref.dtype
            np.testing.assert_array_equal(got[out.name], ref, err_msg=out.name)


def _shift28_feeds(dtype, rng, k_shape):
    info = np.iinfo(dtype)
    width = info.bits
    x = rng.integers(info.min, info.max, (3, 4), endpoint=True, dtype=dtype)
    x.reshape(-1)[:2] = [info.min, info.max]
    lo = -3 if info.min < 0 else 0
    k = rng.integers(lo, width + 3, k_shape, endpoint=True, dtype=np.int64).astype(dtype)
    k.reshape(-1)[:2] = [width - 1, width]
    if info.min < 0:
        k.reshape(-1)[2] = -1
    return x, k


ALL_INTS = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", ALL_INTS)
@pytest.mark.parametrize("constant", [False, True])
def test_bitshift_opset28(direction, dtype, constant):
    """Opset 28: signed types (arithmetic right shift), negative and too-large shifts."""
    if direction == "RIGHT" and np.dtype(dtype).itemsize == 8:
        pytest.skip("64-bit right shifts are refused (see test_bitshift_right_64bit_unsupported)")
    x, k = _shift28_feeds(dtype, np.random.default_rng(21), (4,))
    if constant:
        model = single_op_model("BitShift", [("x", dtype, [3, 4])], initializers={"k": k}, opset=28,
                                direction=direction)
        _check_reference(model, {"x": x})
    else:
        model = single_op_model("BitShift", [("x", dtype, [3, 4]), ("k", dtype, [4])], opset=28,
                                direction=direction)
        _check_reference(model, {"x": x, "k": k})


def test_bitshift_uint64_left_opset11():
    x, k = _shift28_feeds(np.uint64, np.random.default_rng(22), (4,))
    model = single_op_model("BitShift", [("x", np.uint64, [3, 4]), ("k", np.uint64, [4])], opset=11,
                            direction="LEFT")
    _check(model, {"x": x, "k": k})


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_bitshift_right_64bit_unsupported(dtype):
    model = single_op_model("BitShift", [("x", dtype, [3]), ("k", dtype, [3])], opset=28, direction="RIGHT")
    expect_failure(model, "unsupported_dtype")


# -- Bitwise ---------------------------------------------------------------------------------

def _bit_values(dtype, rng, shape):
    info = np.iinfo(dtype)
    v = rng.integers(info.min, info.max, shape, endpoint=True, dtype=np.int64 if info.min < 0 else np.uint64)
    v = v.astype(dtype)
    flat = v.reshape(-1)
    flat[: 4] = [info.min, info.max, 0, info.max if info.min == 0 else -1]  # extremes
    return v


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", BIT_DTYPES)
def test_bitwise_binary(op, dtype):
    rng = np.random.default_rng(10)
    a = _bit_values(dtype, rng, (3, 4))
    b = _bit_values(dtype, rng, (4,))[::-1].copy()
    model = single_op_model(op, [("a", dtype, [3, 4]), ("b", dtype, [4])], opset=18)
    _check(model, {"a": a, "b": b})


@pytest.mark.parametrize("dtype", BIT_DTYPES + [np.int64])
def test_bitwise_not(dtype):
    a = _bit_values(dtype, np.random.default_rng(11), (2, 5))
    _check(single_op_model("BitwiseNot", [("a", dtype, [2, 5])], opset=18), {"a": a})


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseXor"])
def test_bitwise_64bit_unsupported(op):
    model = single_op_model(op, [("a", np.int64, [3]), ("b", np.int64, [3])], opset=18)
    expect_failure(model, "unsupported_dtype")
