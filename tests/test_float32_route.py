"""float16 / bfloat16 ops computed through float32 (MatMul, Softmax, ReduceMax/Min, Where)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

import onnx2litert
from tests.helpers import check_model, make_model

F16 = np.float16
BF16 = np.dtype(ml_dtypes.bfloat16)
RNG = np.random.default_rng(0)


def test_matmul_float16_matches_onnx_runtime():
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", F16, [2, 3, 8]), ("b", F16, [8, 5])],
                       [("y", F16, [2, 3, 5])])
    result = check_model(model, tol=1e-3)
    assert result.op_counts.get("CAST", 0) >= 1


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_float16_matches_onnx_runtime(op):
    model = make_model([helper.make_node(op, ["x"], ["y"], axis=-1)], [("x", F16, [2, 3, 7])],
                       [("y", F16, [2, 3, 7])], opset=13)
    check_model(model, tol=1e-3)


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("dtype", [F16, BF16], ids=["float16", "bfloat16"])
def test_reduce_max_min_narrow_floats_are_exact(op, dtype):
    model = make_model([helper.make_node(op, ["x"], ["y"], axes=[1], keepdims=0)], [("x", dtype, [3, 4, 5])],
                       [("y", dtype, [3, 5])], opset=13)
    x = RNG.standard_normal((3, 4, 5)).astype(dtype)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = onnx2litert.run_tflite(onnx2litert.convert(model).artifacts["float32"], {"x": x})["y"]
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


def test_where_bfloat16_is_exact():
    model = make_model([helper.make_node("Where", ["c", "a", "b"], ["y"])],
                       [("c", np.bool_, [4, 5]), ("a", BF16, [4, 5]), ("b", BF16, [1, 5])], [("y", BF16, [4, 5])])
    feeds = {"c": RNG.integers(0, 2, (4, 5)).astype(bool), "a": RNG.standard_normal((4, 5)).astype(BF16),
             "b": RNG.standard_normal((1, 5)).astype(BF16)}
    want = ReferenceEvaluator(model).run(None, feeds)[0]
    for use_default in (True, False):
        got = onnx2litert.run_tflite(onnx2litert.convert(model).artifacts["float32"], feeds,
                                     use_default_delegates=use_default)["y"]
        np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))
