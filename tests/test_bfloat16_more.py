"""bfloat16 Softmax / LogSoftmax / Attention, comparisons and Mod; float16 Expand.

bfloat16 models are checked against the ONNX reference evaluator (ONNX Runtime's Python API
cannot feed bfloat16), on both XNNPACK and the builtin kernels. Comparisons and Mod are exact.
Softmax and Attention reproduce the reference's bfloat16 rounding step by step (each float32
step rounded to bfloat16, a sequential bfloat16 sum); the float32 EXP can differ from the C
library's by a float32 ulp, which may move a rare value across a bfloat16 rounding boundary;
the seeded cases here match bit for bit (a missing rounding step would show as a 1-ulp
difference, so no ulp is allowed). float16 Expand runs BROADCAST_TO natively and is
compared with ONNX Runtime bit for bit.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper

import onnx2litert
from onnx2litert.evaluate import run_tflite
from onnx2litert.lower.ops.normalization import BF16_SEQUENTIAL_SUM_LIMIT
from tests.helpers import check_model, expect_failure, make_model, random_inputs, single_op_model
from tests.test_bfloat16 import BF16, _same, bf16_data, check_bf16
from tests.test_ops_attention import attention_model, attention_model_v2

_I64 = np.int64


# -- Softmax / LogSoftmax ---------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("shape,axis", [((3, 5), -1), ((4, 3, 2), 0), ((2, 6, 3), 1), ((2, 1), -1)])
def test_softmax_bfloat16(op: str, shape: tuple[int, ...], axis: int) -> None:
    model = single_op_model(op, [("x", BF16, list(shape))], list(shape), output_dtype=BF16, opset=13, axis=axis)
    check_bf16(model, {"x": bf16_data(shape, 40)})


def _rounded(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float32).astype(BF16).astype(np.float32)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_bfloat16_long_axis(op: str) -> None:
    """Beyond BF16_SEQUENTIAL_SUM_LIMIT terms the sum is float32, rounded once: compared with the
    reference's bfloat16 steps with that sum (the sequential one differs by several ulps there)."""
    n = BF16_SEQUENTIAL_SUM_LIMIT + 6
    model = single_op_model(op, [("x", BF16, [2, n])], [2, n], output_dtype=BF16, opset=13, axis=-1)
    x = bf16_data((2, n), 41)
    f = x.astype(np.float32)
    e = _rounded(np.exp(_rounded(f - f.max(-1, keepdims=True))))
    p = _rounded(e / _rounded(e.sum(-1, keepdims=True)))
    ref = (_rounded(np.log(p)) if op == "LogSoftmax" else p).astype(BF16)
    result = onnx2litert.convert(model)
    for delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], {"x": x}, use_default_delegates=delegates)["y"]
        assert got.dtype == BF16
        assert _same(got, ref, ulps=1)


def test_softmax_bfloat16_before_opset13_fails() -> None:
    model = single_op_model("Softmax", [("x", BF16, [2, 3])], [2, 3], output_dtype=BF16, opset=11, axis=1)
    expect_failure(model, "invalid_model")


# -- Attention ----------------------------------------------------------------------------------
def _attention_feeds(model, seed: int = 50) -> dict[str, np.ndarray]:
    feeds = random_inputs(model, seed)
    for name, value in feeds.items():
        if value.dtype == BF16:
            feeds[name] = (value.astype(np.float32) * 2).astype(BF16)
    return feeds


@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1}, {"scale": 0.3}, {"softcap": 2.0},
                                   {"softmax_precision": TensorProto.FLOAT},
                                   {"softmax_precision": TensorProto.BFLOAT16, "is_causal": 1}])
def test_attention_bfloat16_4d(attrs: dict) -> None:
    model = attention_model([2, 3, 4, 8], [2, 3, 6, 8], [2, 3, 6, 8], dtype=BF16, **attrs)
    check_bf16(model, _attention_feeds(model))


def test_attention_bfloat16_3d_gqa() -> None:
    model = attention_model([2, 4, 32], [2, 6, 16], [2, 6, 12], dtype=BF16, q_num_heads=4, kv_num_heads=2,
                            is_causal=1)
    check_bf16(model, _attention_feeds(model))


@pytest.mark.parametrize("mask_dtype", [np.bool_, BF16])
def test_attention_bfloat16_mask(mask_dtype) -> None:
    model = attention_model([2, 3, 4, 8], [2, 3, 6, 8], [2, 3, 6, 8], dtype=BF16, mask=(mask_dtype, [2, 1, 4, 6]),
                            is_causal=1)
    feeds = _attention_feeds(model)
    if mask_dtype == np.bool_:
        feeds["attn_mask"][..., 0] = True
    check_bf16(model, feeds)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_bfloat16_past_and_qk_output(mode: int) -> None:
    model = attention_model([1, 2, 3, 8], [1, 2, 2, 8], [1, 2, 2, 8], dtype=BF16, past=([1, 2, 4, 8], [1, 2, 4, 8]),
                            outputs=("Y", "present_key", "present_value", "qk"), qk_matmul_output_mode=mode,
                            is_causal=1)
    check_bf16(model, _attention_feeds(model))


def test_attention_bfloat16_nonpad_opset24() -> None:
    model = attention_model_v2([2, 3, 4, 8], [2, 3, 6, 8], [2, 3, 6, 8], opset=24, dtype=BF16,
                               mask=(BF16, [2, 3, 4, 4]), nonpad=np.array([5, 3]), is_causal=1)
    check_bf16(model, _attention_feeds(model))


def test_attention_bfloat16_window_opset25() -> None:
    model = attention_model_v2([2, 3, 4, 8], [2, 3, 8, 8], [2, 3, 8, 8], opset=25, dtype=BF16, is_causal=1,
                               left_window_size=2)
    check_bf16(model, _attention_feeds(model))


# -- comparisons and Mod -------------------------------------------------------------------------
_CMP_VALUES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.5, 1.0 + 2 ** -7, -3.0], np.float32).astype(BF16)


@pytest.mark.parametrize("op", ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"])
def test_compare_bfloat16(op: str) -> None:
    model = single_op_model(op, [("a", BF16, [8, 8]), ("b", BF16, [8])], [8, 8], output_dtype=np.bool_, opset=16)
    a = np.broadcast_to(_CMP_VALUES[:, None], (8, 8)).copy()
    check_bf16(model, {"a": a, "b": _CMP_VALUES})


@pytest.mark.parametrize("fmod,opset", [(1, 13), (0, 28), (1, 28)])
def test_mod_bfloat16(fmod: int, opset: int) -> None:
    model = single_op_model("Mod", [("a", BF16, [3, 6]), ("b", BF16, [6])], [3, 6], output_dtype=BF16, opset=13,
                            fmod=fmod)
    if opset != 13:
        model.opset_import[0].version = opset
        model.ir_version = 13
    a = bf16_data((3, 6), 60, scale=20.0)
    b = np.array([1.5, -2.25, 3.0, -0.75, 7.0, 0.3], np.float32).astype(BF16)
    check_bf16(model, {"a": a, "b": b})


# -- float16 Expand (BROADCAST_TO moves the bytes natively) -----------------------------------------
@pytest.mark.parametrize("shape,target", [([3, 1], [2, 3, 4]), ([1], [5]), ([2, 1, 3, 1], [2, 4, 3, 5]),
                                          ([2, 3], [1, 3]), ([1, 4], [3, 0, 4])])
def test_expand_float16(shape: list[int], target: list[int]) -> None:
    model = single_op_model("Expand", [("x", np.float16, shape)], None, output_dtype=np.float16,
                            initializers={"s": np.array(target, _I64)})
    x = (np.random.default_rng(70).standard_normal(shape) * 100).astype(np.float16)
    x.reshape(-1)[0] = np.inf
    check_model(model, {"x": x}, tol=0.0)


def test_expand_float16_runtime_shape() -> None:
    """A run-time shape input whose value the static output shape implies."""
    model = make_model([helper.make_node("Expand", ["x", "s"], ["y"])], [("x", np.float16, [3, 1]), ("s", _I64, [2])],
                       [("y", np.float16, [3, 4])])
    check_model(model, {"x": np.array([[1.5], [-2.0], [65504.0]], np.float16), "s": np.array([3, 4], _I64)}, tol=0.0)


# -- tests.helpers.random_inputs ------------------------------------------------------------------
def test_random_inputs_bfloat16_are_normal_values() -> None:
    model = single_op_model("Abs", [("x", BF16, [64])], [64], output_dtype=BF16)
    x = random_inputs(model, seed=3)["x"]
    assert x.dtype == np.dtype(ml_dtypes.bfloat16)
    values = x.astype(np.float32)
    assert np.any(values != np.round(values))  # not integers
    assert 0.5 < values.std() < 2.0
