"""Attention (opset 23): LiteRT vs ONNX Runtime for every attribute and input variant."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import onnx2litert
from onnx2litert.evaluate import run_tflite
from tests.helpers import _assert_match, check_model, expect_failure, make_model, random_inputs

F32 = np.float32
OPSET = 23


def attention_model(q: list, k: list, v: list, *, mask: tuple | None = None, past: tuple | None = None,
                    outputs: tuple[str, ...] = ("Y",), dtype=F32, mask_const: np.ndarray | None = None,
                    opset: int = OPSET, out_shapes: dict[str, list] | None = None, **attrs: object):
    """One Attention node. ``mask`` = (dtype, shape) for a graph input; ``past`` = (key shape, value shape)."""
    inputs = [("Q", dtype, q), ("K", dtype, k), ("V", dtype, v)]
    names = ["Q", "K", "V"]
    inits = {}
    if mask_const is not None:
        names.append("attn_mask")
        inits["attn_mask"] = mask_const
    elif mask is not None:
        names.append("attn_mask")
        inputs.append(("attn_mask", mask[0], list(mask[1])))
    if past is not None:
        names += ([""] if len(names) == 3 else []) + ["past_key", "past_value"]  # "" = no attn_mask
        inputs += [("past_key", dtype, list(past[0])), ("past_value", dtype, list(past[1]))]
    node = helper.make_node("Attention", names, list(outputs), **attrs)
    outs = [(o, dtype, (out_shapes or {}).get(o)) for o in outputs if o]
    return make_model([node], inputs, outs, inits, opset)


def check_against_reference(model, feeds: dict[str, np.ndarray], tol: float = 1e-5, oracle=None,
                            oracle_feeds: dict[str, np.ndarray] | None = None) -> None:
    """Like check_model, for variants ONNX Runtime rejects: the onnx reference evaluator is the oracle
    (run on ``oracle`` / ``oracle_feeds`` when given: an equivalent model it can evaluate)."""
    names = [o.name for o in model.graph.output]
    expected = dict(zip(names, ReferenceEvaluator(oracle or model).run(None, oracle_feeds or feeds)))
    result = onnx2litert.convert(model)
    for use_default_delegates in (True, False):
        got = run_tflite(result.artifacts["float32"], feeds, use_default_delegates=use_default_delegates)
        _assert_match(expected, got, tol)


Q4, K4, V4 = [2, 3, 4, 8], [2, 3, 6, 8], [2, 3, 6, 8]
Q3, K3, V3 = [2, 4, 24], [2, 6, 24], [2, 6, 24]


@pytest.mark.parametrize("attrs", [{}, {"scale": 0.1}, {"softcap": 2.0}, {"is_causal": 1},
                                   {"is_causal": 1, "softcap": 1.5, "scale": 0.3},
                                   {"softmax_precision": TensorProto.FLOAT},
                                   {"softmax_precision": TensorProto.DOUBLE}],
                         ids=["plain", "scale", "softcap", "causal", "causal_softcap_scale", "prec_float",
                              "prec_double"])
def test_attention_4d(attrs):
    check_model(attention_model(Q4, K4, V4, **attrs))


def test_attention_4d_different_value_head_size_and_self_causal():
    check_model(attention_model([1, 2, 5, 4], [1, 2, 5, 4], [1, 2, 5, 6], is_causal=1))


@pytest.mark.parametrize("q,k,v", [([2, 6, 4, 8], [2, 3, 6, 8], [2, 3, 6, 8]),  # grouped-query
                                   ([1, 4, 3, 8], [1, 1, 5, 8], [1, 1, 5, 6])],  # multi-query
                         ids=["gqa", "mqa"])
@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1}, {"softcap": 3.0}], ids=["plain", "causal", "softcap"])
def test_attention_grouped(q, k, v, attrs):
    check_model(attention_model(q, k, v, **attrs))


@pytest.mark.parametrize("q,k,v,heads", [(Q3, K3, V3, (3, 3)), ([2, 4, 72], K3, V3, (9, 3)),
                                         (Q3, K3, [2, 6, 30], (3, 3)), ([1, 2, 12], [1, 2, 12], [1, 2, 12], (3, 3))],
                         ids=["mha", "gqa", "diff_v", "tiny"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_3d(q, k, v, heads, causal):
    check_model(attention_model(q, k, v, q_num_heads=heads[0], kv_num_heads=heads[1], is_causal=causal))


@pytest.mark.parametrize("mask", [(F32, [4, 6]), (np.bool_, [4, 6]), (F32, [2, 1, 4, 6]), (np.bool_, [2, 3, 4, 6]),
                                  (F32, [3, 4, 6])],
                         ids=["f2d", "b2d", "f4d_b1", "b4d", "f3d_heads"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_runtime_mask(mask, causal):
    model = attention_model(Q4, K4, V4, mask=mask, is_causal=causal)
    feeds = random_inputs(model, seed=1)
    if mask[0] is np.bool_:
        # Keep at least one key per row visible so no row is fully masked (tested separately).
        m = feeds["attn_mask"].copy()
        m[..., 0] = True
        feeds["attn_mask"] = m
    check_model(model, feeds)


@pytest.mark.parametrize("mask", [(F32, [6]), (np.bool_, [5]), (F32, [4, 4]), (np.bool_, [2, 1, 4, 3])],
                         ids=["f1d", "b1d_short", "f_short", "b_short"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_mask_rank1_or_short(mask, causal):
    """1-D masks and masks shorter than the keys (padded with -inf/False per spec): ONNX Runtime
    rejects both, so the onnx reference implementation is the oracle."""
    model = attention_model(Q4, K4, V4, mask=mask, is_causal=causal)
    feeds = random_inputs(model, seed=4)
    if mask[0] is np.bool_:
        feeds["attn_mask"][..., 0] = True
    oracle, oracle_feeds = None, None
    if len(mask[1]) == 1 and causal:
        # The opset-23 reference cannot add the causal bias to a 1-D mask; broadcasting it over
        # the query rows first is the same mask by definition.
        oracle = attention_model(Q4, K4, V4, mask=(mask[0], [Q4[2], mask[1][0]]), is_causal=causal)
        oracle_feeds = dict(feeds, attn_mask=np.broadcast_to(feeds["attn_mask"], (Q4[2], mask[1][0])).copy())
    check_against_reference(model, feeds, oracle=oracle, oracle_feeds=oracle_feeds)


@pytest.mark.parametrize("dtype", [F32, np.bool_])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_constant_mask(dtype, causal):
    rng = np.random.default_rng(3)
    mask = rng.standard_normal((2, 1, 4, 6)).astype(F32) if dtype is F32 else \
        rng.integers(0, 2, (1, 4, 6)).astype(bool)
    if dtype is np.bool_:
        mask[..., 0] = True
    check_model(attention_model(Q4, K4, V4, mask_const=mask, is_causal=causal))


@pytest.mark.parametrize("dtype", [F32, np.bool_])
def test_attention_constant_short_mask(dtype):
    """A constant mask shorter than the keys is padded at conversion time (reference oracle, see above)."""
    rng = np.random.default_rng(5)
    mask = rng.standard_normal((4, 4)).astype(F32) if dtype is F32 else rng.integers(0, 2, (2, 3, 4, 5)).astype(bool)
    if dtype is np.bool_:
        mask[..., 0] = True
    model = attention_model(Q4, K4, V4, mask_const=mask)
    check_against_reference(model, random_inputs(model, seed=5))


def test_attention_constant_all_true_mask_folds_away():
    result = check_model(attention_model(Q4, K4, V4, mask_const=np.ones((4, 6), bool)))
    assert "SELECT_V2" not in result.op_counts and "ADD" not in result.op_counts


@pytest.mark.parametrize("const", [False, True], ids=["runtime", "constant"])
@pytest.mark.parametrize("outputs,mode", [(("Y",), 0), (("Y", "", "", "qk"), 3)], ids=["y", "mode3"])
def test_attention_fully_masked_row_is_zero(const, outputs, mode):
    """A row whose keys are all masked out gives zeros (spec), not NaN."""
    mask = np.array([[True, False], [False, False]])
    q, k = [1, 2, 2, 8], [1, 2, 2, 8]
    model = attention_model(q, k, k, mask=None if const else (np.bool_, [2, 2]),
                            mask_const=mask if const else None, outputs=outputs, qk_matmul_output_mode=mode)
    feeds = random_inputs(model, seed=2)
    if not const:
        feeds["attn_mask"] = mask
    check_model(model, feeds)


@pytest.mark.parametrize("q,k,v,pk,pv,mask", [
    (Q4, K4, V4, [2, 3, 5, 8], [2, 3, 5, 8], (F32, [4, 11])),
    (Q4, K4, [2, 3, 6, 10], [2, 3, 5, 8], [2, 3, 5, 10], (F32, [2, 1, 4, 11])),
    ([2, 6, 4, 8], K4, V4, [2, 3, 5, 8], [2, 3, 5, 8], None),
    ([2, 4, 24], [2, 6, 24], [2, 6, 24], [2, 3, 5, 8], [2, 3, 5, 8], (F32, [4, 11])),
], ids=["4d", "4d_diff_v_mask4d", "gqa_nomask", "3d"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_past_present(q, k, v, pk, pv, mask, causal):
    attrs = {"q_num_heads": 3, "kv_num_heads": 3} if len(q) == 3 else {}
    check_model(attention_model(q, k, v, mask=mask, past=(pk, pv), outputs=("Y", "present_key", "present_value"),
                                is_causal=causal, **attrs))


def test_attention_present_without_past():
    # ONNX shape inference leaves 3-D presents without a past unshaped: give the shapes.
    check_model(attention_model(Q3, K3, V3, outputs=("Y", "present_key", "present_value"), q_num_heads=3,
                                kv_num_heads=3, out_shapes={"Y": [2, 4, 24], "present_key": [2, 3, 6, 8],
                                                            "present_value": [2, 3, 6, 8]}))


# mode 0 with softcap is ambiguous (test_attention_mode0_with_softcap_fails).
@pytest.mark.parametrize("mode,softcap", [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.0), (1, 2.0), (2, 2.0), (3, 2.0)])
def test_attention_qk_matmul_output(mode, softcap):
    model = attention_model(Q4, K4, V4, mask=(F32, [4, 6]), outputs=("Y", "", "", "qk"), is_causal=1,
                            qk_matmul_output_mode=mode, softcap=softcap)
    if mode == 2:
        # ONNX Runtime writes -FLT_MAX where the causal bias is -inf (spec and reference: -inf).
        check_against_reference(model, random_inputs(model))
    else:
        check_model(model)


def test_attention_qk_matmul_output_with_past_gqa():
    check_model(attention_model([2, 6, 4, 8], K4, V4, mask=(F32, [4, 11]), past=([2, 3, 5, 8], [2, 3, 5, 8]),
                                outputs=("Y", "pk", "pv", "qk"), qk_matmul_output_mode=2))


@pytest.mark.parametrize("attrs", [{}, {"is_causal": 1}, {"softmax_precision": TensorProto.FLOAT16},
                                   {"softmax_precision": TensorProto.FLOAT}], ids=["plain", "causal", "prec16", "prec32"])
def test_attention_float16(attrs):
    model = attention_model(Q4, K4, V4, mask=(np.float16, [4, 6]), dtype=np.float16, **attrs)
    check_model(model, tol=1e-3)  # float16 outputs: half-precision rounding


def test_attention_mode0_with_softcap_fails():
    expect_failure(attention_model(Q4, K4, V4, outputs=("Y", "", "", "qk"), softcap=2.0), "unsupported_attribute_value")


def test_attention_low_softmax_precision_fails():
    expect_failure(attention_model(Q4, K4, V4, softmax_precision=TensorProto.FLOAT16), "unsupported_attribute_value")


def test_attention_bfloat16_fails():
    model = attention_model(Q4, K4, V4, dtype=np.float32)
    for vi in model.graph.input:
        vi.type.tensor_type.elem_type = TensorProto.BFLOAT16
    expect_failure(model, "unsupported_dtype")


def test_attention_3d_without_heads_fails():
    expect_failure(attention_model(Q3, K3, V3), "invalid_model")


def test_attention_heads_not_multiple_fails():
    expect_failure(attention_model([1, 4, 3, 8], [1, 3, 3, 8], [1, 3, 3, 8]), "invalid_model")


@pytest.mark.parametrize("const", [False, True], ids=["runtime", "constant"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_mode2_float_mask_with_neg_inf(const, causal):
    """-inf in a float mask stays -inf in the mode-2 output (LiteRT's builtin ADD alone gives -FLT_MAX)."""
    mask = np.random.default_rng(6).standard_normal((4, 6)).astype(F32)
    mask[1, 3:] = -np.inf
    model = attention_model(Q4, K4, V4, mask=None if const else (F32, [4, 6]), mask_const=mask if const else None,
                            outputs=("Y", "", "", "qk"), qk_matmul_output_mode=2, is_causal=causal)
    feeds = random_inputs(model, seed=6)
    if not const:
        feeds["attn_mask"] = mask
    check_against_reference(model, feeds)
