"""Attention (opset 23): LiteRT vs ONNX Runtime for every attribute and input variant."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import onnx2litert
from onnx2litert.evaluate import run_tflite
from tests.helpers import _assert_match, check_model, expect_failure, make_model, random_inputs, tensor_type

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


def test_attention_double_fails():
    """bfloat16 is supported (tests/test_bfloat16_more.py); double has no exact float32 route."""
    expect_failure(attention_model(Q4, K4, V4, dtype=np.float64), "unsupported_dtype")


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


# -- Attention-24 (nonpad_kv_seqlen) and Attention-25 (sliding window) ------------------------------
def attention_model_v2(q: list, k: list, v: list, *, opset: int, mask: tuple | None = None,
                       past: tuple | None = None, nonpad: int | np.ndarray | None = None,
                       outputs: tuple[str, ...] = ("Y",), dtype=F32, **attrs: object):
    """One Attention-24/25 node. ``nonpad``: the batch size (a graph input) or a constant array."""
    inputs = [("Q", dtype, q), ("K", dtype, k), ("V", dtype, v)]
    names = ["Q", "K", "V", "", "", "", ""]
    inits = {}
    if mask is not None:
        names[3] = "attn_mask"
        inputs.append(("attn_mask", mask[0], list(mask[1])))
    if past is not None:
        names[4:6] = ["past_key", "past_value"]
        inputs += [("past_key", dtype, list(past[0])), ("past_value", dtype, list(past[1]))]
    if nonpad is not None:
        names[6] = "nonpad_kv_seqlen"
        if isinstance(nonpad, np.ndarray):
            inits["nonpad_kv_seqlen"] = nonpad.astype(np.int64)
        else:
            inputs.append(("nonpad_kv_seqlen", np.int64, [nonpad]))
    while names and not names[-1]:
        names.pop()
    node = helper.make_node("Attention", names, list(outputs), **attrs)
    return make_model([node], inputs, [(o, dtype, None) for o in outputs if o], inits, opset)


def _feeds(model, nonpad: list[int] | None = None, seed: int = 7) -> dict[str, np.ndarray]:
    feeds = random_inputs(model, seed=seed)
    if nonpad is not None:
        feeds["nonpad_kv_seqlen"] = np.array(nonpad, np.int64)
    if "attn_mask" in feeds and feeds["attn_mask"].dtype == np.bool_:
        feeds["attn_mask"][..., 0] = True
    return feeds


QN, KN = [2, 2, 3, 8], [2, 2, 6, 8]


@pytest.mark.parametrize("causal", [0, 1])
@pytest.mark.parametrize("mask", [None, (np.bool_, [2, 1, 3, 6]), (F32, [3, 6]), (F32, [2, 2, 3, 4])],
                         ids=["nomask", "bool4d", "float2d", "float_short"])
def test_attention24_nonpad_runtime(causal, mask):
    """External-cache padding: keys >= nonpad[b] are masked; causal offset = nonpad[b] - q_len."""
    model = attention_model_v2(QN, KN, KN, opset=24, mask=mask, nonpad=2, is_causal=causal)
    feeds = _feeds(model, [4, 6])
    if mask is not None and mask[1][-1] < KN[2]:
        check_against_reference(model, feeds)  # ONNX Runtime rejects short masks
    else:
        check_model(model, feeds)


@pytest.mark.parametrize("q,k,attrs", [([2, 4, 1, 8], [2, 2, 8, 8], {}),  # GQA decode
                                       ([2, 3, 24], [2, 6, 24], {"q_num_heads": 3, "kv_num_heads": 3})],
                         ids=["gqa_decode", "3d"])
def test_attention24_nonpad_gqa_and_3d(q, k, attrs):
    model = attention_model_v2(q, k, k, opset=24, nonpad=2, is_causal=1, **attrs)
    check_model(model, _feeds(model, [3, k[-2] if len(k) == 4 else k[1]]))


@pytest.mark.parametrize("outputs,mode", [(("Y",), 0), (("Y", "", "", "qk"), 3)], ids=["y", "mode3"])
def test_attention24_nonpad_fully_masked_rows(outputs, mode):
    """nonpad < q_len (negative offset) and nonpad = 0 fully mask rows: zeros, not NaN (spec)."""
    model = attention_model_v2([2, 2, 4, 8], [2, 2, 4, 8], [2, 2, 4, 8], opset=24, nonpad=2, is_causal=1,
                               outputs=outputs, qk_matmul_output_mode=mode)
    check_against_reference(model, _feeds(model, [2, 0]))


@pytest.mark.parametrize("causal", [0, 1])
def test_attention24_nonpad_constant(causal):
    """A constant nonpad_kv_seqlen is folded into the mask at conversion time."""
    model = attention_model_v2(QN, KN, KN, opset=24, nonpad=np.array([5, 3]), mask=(F32, [3, 6]), is_causal=causal)
    result = check_model(model, _feeds(model))
    assert "LESS_EQUAL" not in result.op_counts


def test_attention24_without_nonpad_and_with_past():
    check_model(attention_model_v2(QN, KN, KN, opset=24, past=([2, 2, 3, 8], [2, 2, 3, 8]), is_causal=1,
                                   outputs=("Y", "present_key", "present_value")))


def test_attention24_float16_nonpad():
    model = attention_model_v2([2, 4, 1, 8], [2, 2, 8, 8], [2, 2, 8, 8], opset=24, nonpad=2, is_causal=1,
                               dtype=np.float16)
    check_model(model, _feeds(model, [3, 8]), tol=1e-3)  # float16 outputs: half-precision rounding


def test_attention24_nonpad_with_past_fails():
    model = attention_model_v2(QN, KN, KN, opset=24, nonpad=2, past=([2, 2, 3, 8], [2, 2, 3, 8]))
    expect_failure(model, "invalid_model")


def test_attention24_double_fails():
    expect_failure(attention_model_v2(QN, KN, KN, opset=24, nonpad=2, dtype=np.float64), "unsupported_dtype")


@pytest.mark.parametrize("window", [(2, -1), (1, 2), (-1, 1), (0, 0), (-1, -1)],
                         ids=["left2", "left1_right2", "right1", "diag", "unbounded"])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention25_window(window, causal):
    """Windows alone and composed with is_causal (which still bounds the right side)."""
    model = attention_model_v2(Q4, K4, V4, opset=25, is_causal=causal, left_window_size=window[0],
                               right_window_size=window[1])
    check_against_reference(model, _feeds(model))  # ONNX Runtime has no Attention-25


@pytest.mark.parametrize("mask", [(np.bool_, [6]), (F32, [3, 4, 8]), (np.bool_, [2, 1, 4, 8])],
                         ids=["bool1d", "float_heads", "bool4d"])
def test_attention25_window_nonpad_mask(mask):
    model = attention_model_v2([2, 3, 4, 8], [2, 3, 8, 8], [2, 3, 8, 8], opset=25, nonpad=2, is_causal=1,
                               left_window_size=2, mask=(mask[0], mask[1][:-1] + [8]) if len(mask[1]) > 1 else
                               (mask[0], [8]))
    check_against_reference(model, _feeds(model, [5, 8]))


def test_attention25_window_right_nonpad_runtime():
    model = attention_model_v2([2, 3, 4, 8], [2, 3, 8, 8], [2, 3, 8, 8], opset=25, nonpad=2, left_window_size=1,
                               right_window_size=2)
    check_against_reference(model, _feeds(model, [3, 8]))


def test_attention25_window_with_past_gqa_3d():
    model = attention_model_v2([2, 4, 32], [2, 2, 8], [2, 2, 6], opset=25, past=([2, 1, 8, 8], [2, 1, 8, 6]),
                               is_causal=1, left_window_size=2, q_num_heads=4, kv_num_heads=1,
                               outputs=("Y", "present_key", "present_value"))
    check_against_reference(model, _feeds(model))


def test_attention25_qk_output_mode3_window():
    model = attention_model_v2([2, 4, 4, 8], [2, 2, 6, 8], [2, 2, 6, 6], opset=25, mask=(np.bool_, [2, 4, 4, 6]),
                               is_causal=1, left_window_size=2, softcap=2.0, qk_matmul_output_mode=3,
                               outputs=("Y", "", "", "qk"))
    check_against_reference(model, _feeds(model))


@pytest.mark.parametrize("attrs", [{"q_num_heads": 3}, {"left_window_size": -2}], ids=["heads_4d", "bad_window"])
def test_attention25_invalid_fails(attrs):
    expect_failure(attention_model_v2(Q4, K4, V4, opset=25, **attrs), "invalid_model")


# -- ai.onnx.preview FlexAttention ------------------------------------------------------------------
def _mod_graph(name: str, nodes: list, inits: dict[str, np.ndarray] | None = None, io=("s", "s_out"),
               dtype=F32) -> onnx.GraphProto:
    """A modifier graph (B, H, L, S) -> same, with symbolic dims like the ONNX backend tests."""
    dims = ["B", "H", "L", "S"]
    return helper.make_graph(nodes, name, [helper.make_tensor_value_info(io[0], tensor_type(dtype), dims)],
                             [helper.make_tensor_value_info(io[1], tensor_type(dtype), dims)],
                             [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])


def flex_model(q: list, k: list, v: list, dtype=F32, extra_inputs: list | None = None,
               inits: dict[str, np.ndarray] | None = None, **attrs: object) -> onnx.ModelProto:
    node = helper.make_node("FlexAttention", ["Q", "K", "V"], ["Y"], domain="ai.onnx.preview", **attrs)
    inputs = [("Q", dtype, q), ("K", dtype, k), ("V", dtype, v)] + (extra_inputs or [])
    model = make_model([node], inputs, [("Y", dtype, q[:3] + v[3:])], inits, 26)
    model.opset_import.append(helper.make_opsetid("ai.onnx.preview", 1))
    return model


_CAUSAL = _mod_graph("causal", [
    helper.make_node("Shape", ["s"], ["shape"]),
    helper.make_node("Gather", ["shape", "i2"], ["L"], axis=0),
    helper.make_node("Gather", ["shape", "i3"], ["S"], axis=0),
    helper.make_node("Range", ["zero", "L", "one"], ["qr"]),
    helper.make_node("Reshape", ["qr", "qs"], ["qi"]),
    helper.make_node("Range", ["zero", "S", "one"], ["kr"]),
    helper.make_node("Reshape", ["kr", "ks"], ["ki"]),
    helper.make_node("GreaterOrEqual", ["qi", "ki"], ["mask"]),
    helper.make_node("Where", ["mask", "s", "ninf"], ["s_out"])],
    {"zero": np.array(0, np.int64), "one": np.array(1, np.int64), "i2": np.array(2, np.int64),
     "i3": np.array(3, np.int64), "qs": np.array([1, 1, -1, 1], np.int64), "ks": np.array([1, 1, 1, -1], np.int64),
     "ninf": np.array(-np.inf, F32)})
_SOFTCAP = _mod_graph("softcap", [helper.make_node("Div", ["s", "cap"], ["d"]), helper.make_node("Tanh", ["d"], ["t"]),
                                  helper.make_node("Mul", ["t", "cap"], ["s_out"])], {"cap": np.array(5.0, F32)})
_PROB_SCALE = _mod_graph("prob", [helper.make_node("Mul", ["s", "half"], ["s_out"])], {"half": np.array(0.5, F32)})
_BIAS_OUTER = _mod_graph("bias", [helper.make_node("Add", ["s", "outer_bias"], ["s_out"])])


@pytest.mark.parametrize("q,k,v", [([2, 4, 5, 8], [2, 4, 6, 8], [2, 4, 6, 8]),
                                   ([2, 4, 5, 8], [2, 4, 6, 8], [2, 4, 6, 12]),
                                   ([2, 6, 3, 8], [2, 2, 6, 8], [2, 2, 6, 8])], ids=["mha", "diff_v", "gqa"])
@pytest.mark.parametrize("attrs", [{}, {"scale": 0.1}, {"softmax_precision": TensorProto.FLOAT}],
                         ids=["plain", "scale", "prec_float"])
def test_flex_attention(q, k, v, attrs):
    model = flex_model(q, k, v, **attrs)
    check_against_reference(model, random_inputs(model, seed=8))  # ONNX Runtime has no FlexAttention


@pytest.mark.parametrize("mods", [{"score_mod": _CAUSAL}, {"score_mod": _SOFTCAP}, {"prob_mod": _PROB_SCALE},
                                  {"score_mod": _SOFTCAP, "prob_mod": _PROB_SCALE}],
                         ids=["causal", "softcap", "prob", "both"])
@pytest.mark.parametrize("gqa", [False, True])
def test_flex_attention_modifiers(mods, gqa):
    model = flex_model([1, 4, 4, 8], [1, 2 if gqa else 4, 4, 8], [1, 2 if gqa else 4, 4, 8], **mods)
    check_against_reference(model, random_inputs(model, seed=9))


def test_flex_attention_modifier_reads_outer_constant():
    """A modifier may read a value of the enclosing graph (here a constant)."""
    bias = np.random.default_rng(10).standard_normal((1, 1, 4, 6)).astype(F32)
    model = flex_model([1, 2, 4, 8], [1, 2, 6, 8], [1, 2, 6, 8], inits={"outer_bias": bias}, score_mod=_BIAS_OUTER)
    feeds = random_inputs(model, seed=10)
    expected = flex_model([1, 2, 4, 8], [1, 2, 6, 8], [1, 2, 6, 8], score_mod=_mod_graph(
        "bias", [helper.make_node("Add", ["s", "b"], ["s_out"])], {"b": bias}))
    check_against_reference(model, feeds, oracle=expected)


def test_flex_attention_float16():
    model = flex_model([2, 4, 5, 8], [2, 4, 6, 8], [2, 4, 6, 8], dtype=np.float16)
    check_against_reference(model, random_inputs(model, seed=11), tol=1e-3)  # float16 outputs


@pytest.mark.parametrize("case,reason", [("double", "unsupported_dtype"), ("prec16", "unsupported_attribute_value"),
                                         ("rank3", "invalid_model"), ("bad_mod", "invalid_model")])
def test_flex_attention_failures(case, reason):
    q = [2, 4, 5, 8]
    if case == "double":
        model = flex_model(q, q, q, dtype=np.float64)
    elif case == "prec16":
        model = flex_model(q, q, q, softmax_precision=TensorProto.FLOAT16)
    elif case == "rank3":
        model = flex_model([2, 5, 8], [2, 5, 8], [2, 5, 8])
    else:  # a score_mod changing the shape
        model = flex_model(q, q, q, score_mod=_mod_graph("bad", [helper.make_node("ReduceSum", ["s", "ax"], ["s_out"])],
                                                         {"ax": np.array([3], np.int64)}))
    expect_failure(model, reason)
