"""Attention (opset 23): scaled dot-product attention built from LiteRT builtins.

Q/K/V are brought to (batch, heads, seq, head_size) (3-D inputs: RESHAPE + TRANSPOSE using
q_num_heads / kv_num_heads), past_key/past_value are CONCATENATED along the sequence axis (these
are the present_key/present_value outputs), and then

    scores = BATCH_MATMUL(Q * scale, K, adjY)        (scale defaults to 1/sqrt(head_size))
    scores = TANH(scores / softcap) * softcap         (softcap > 0)
    scores = SELECT_V2(allowed, scores, -inf)         (bool attn_mask and/or is_causal), or
    scores = scores + bias                            (float attn_mask; causal selected into it)
    P      = SOFTMAX(scores)                          (last axis; fully-masked rows -> 0)
    Y      = BATCH_MATMUL(P, V)

Grouped-query attention (kv heads < q heads) does not repeat K/V: query head ``h`` uses kv head
``h // r`` (r = q_heads / kv_heads), so Q reshaped to (batch, kv_heads, r * q_seq, head_size) is
multiplied by K/V directly; the scores are viewed as (batch, q_heads, q_seq, kv_seq) in between.

Masking follows the spec: a bool mask allows True keys, a float mask is added, a mask shorter
than the kv sequence is padded with False / -inf, and causal masking (key ``j`` visible from query
``i`` iff ``j <= i + past_seq``) is combined with either. -inf is only produced by SELECT_V2 /
CONCATENATION, never by ADD: LiteRT's builtin ADD clamps its result to [-FLT_MAX, FLT_MAX]
(harmless before SOFTMAX; the mode-2 ``qk_matmul_output`` gets its -inf restored by SELECT_V2).
A query row with no visible key produces zeros (and a zero mode-3 ``qk_matmul_output`` row),
decided on the mask like the reference. Constant masks are folded at conversion time; a run-time
mask adds CONCATENATION (padding) and a REDUCE_ANY / REDUCE_MAX row check for that guard.

Unsupported: softmax_precision below float32 (unsupported_attribute_value); qk_matmul_output in
mode 0 with softcap > 0 (the spec says before softcap, the reference returns it after:
unsupported_attribute_value); bfloat16 (unsupported_dtype). Opsets 24+ changed the op
(nonpad_kv_seqlen, sliding windows) and are not covered by this opset-23 lowering.

float16 inputs are computed in float32 (CAST in, CAST back out).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering

_F32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)
# softmax_precision values computed exactly enough in float32: FLOAT, and DOUBLE (the reference
# rounds the double softmax back to the input's float32, which float32 SOFTMAX matches to ulps).
_SOFTMAX_PRECISIONS = (TensorProto.FLOAT, TensorProto.DOUBLE)
_MODES = (0, 1, 2, 3)


def _binary(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor, hint: str,
            out: Tensor | None = None, dtype: np.dtype | None = None) -> Tensor:
    """A broadcasting binary op (fused activation NONE where the op has one)."""
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    opts = {"fusedActivationFunction": "NONE"} if opcode in ("ADD", "SUB", "MUL", "DIV") else {}
    return ctx.emit1(opcode, [a, b], shape, dtype or a.dtype, hint, out, **opts)


def _select(ctx: LowerContext, cond: Tensor, a: Tensor, b: Tensor, hint: str,
            out: Tensor | None = None) -> Tensor:
    shape = tuple(np.broadcast_shapes(cond.shape, a.shape, b.shape))
    return ctx.emit1("SELECT_V2", [cond, a, b], shape, a.dtype, hint, out)


def _matmul(ctx: LowerContext, a: Tensor, b: Tensor, adj_y: bool, hint: str,
            out: Tensor | None = None) -> Tensor:
    """Rank-4 BATCH_MATMUL with equal batch dims."""
    n = b.shape[-2] if adj_y else b.shape[-1]
    return ctx.emit1("BATCH_MATMUL", [a, b], a.shape[:-1] + (n,), a.dtype, hint, out,
                     adjX=False, adjY=bool(adj_y), asymmetricQuantizeInputs=False)


def _f32(ctx: LowerContext, x: Tensor) -> Tensor:
    """``x`` as float32 (CAST from float16; constants converted at conversion time)."""
    if x.dtype == _F32:
        return x
    if x.is_const:
        return ctx.new_const(x.data.astype(np.float32), hint="f32")
    return ctx.emit1("CAST", [x], x.shape, _F32, "to_f32", inDataType=x.dtype, outDataType=_F32)


def _to_heads(ctx: LowerContext, x: Tensor, heads: int, what: str) -> Tensor:
    """(batch, seq, heads * size) -> (batch, heads, seq, size)."""
    b, s, hidden = x.shape
    if heads <= 0 or hidden % heads:
        raise ctx.fail(Reason.INVALID_MODEL, f"{what} hidden size {hidden} is not divisible by {heads} heads")
    return ctx.transpose(ctx.reshape(x, (b, s, heads, hidden // heads)), (0, 2, 1, 3))


def causal_allowed(q_len: int, kv_len: int, offset: int) -> np.ndarray:
    """(q_len, kv_len) bool: key ``j`` is visible from query ``i`` iff ``j <= i + offset``."""
    return np.arange(kv_len).reshape(1, kv_len) <= np.arange(q_len).reshape(q_len, 1) + offset


def pad_mask(mask: np.ndarray, kv_len: int) -> np.ndarray:
    """A constant attn_mask padded to ``kv_len`` keys with False / -inf (spec)."""
    pad = kv_len - mask.shape[-1]
    if pad <= 0:
        return mask
    fill = False if mask.dtype == _BOOL else -np.inf
    return np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)], constant_values=fill)


@dataclass
class _Bias:
    """How the scores are masked: SELECT_V2 on ``allowed`` (bool masks / causal: exact -inf, no
    float add) or ADD of a float ``bias``; ``row_masked`` marks fully-masked query rows."""

    allowed: Tensor | None = None
    bias: Tensor | None = None
    row_masked: Tensor | None = None
    neg_inf_where: Tensor | None = None  # bool: where a constant ``bias`` is -inf (None: nowhere)


def _pad_runtime(ctx: LowerContext, mask: Tensor, kv_len: int) -> Tensor:
    """A run-time mask padded to ``kv_len`` keys by CONCATENATION with False / -inf."""
    pad = kv_len - mask.shape[-1]
    if pad <= 0:
        return mask
    fill = np.full(mask.shape[:-1] + (pad,), False if mask.dtype == _BOOL else -np.inf, mask.dtype)
    return ctx.emit1("CONCATENATION", [mask, ctx.new_const(fill, hint="mask_pad")], mask.shape[:-1] + (kv_len,),
                     mask.dtype, "mask_padded", axis=mask.rank - 1, fusedActivationFunction="NONE")


def _last_axis(ctx: LowerContext, rank: int) -> Tensor:
    return ctx.new_const(np.array([rank - 1], np.int32), hint="last_axis")


def _check_attributes(node: NodeView, ctx: LowerContext) -> tuple[int, float]:
    """Validate the attributes; return (qk_matmul_output_mode, softcap)."""
    mode = int(node.attr("qk_matmul_output_mode", 0))
    if mode not in _MODES:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"qk_matmul_output_mode {mode} is not 0..3")
    softcap = float(node.attr("softcap", 0.0))
    if softcap < 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"softcap {softcap} must be >= 0")
    precision = node.attr("softmax_precision")
    same = helper.np_dtype_to_tensor_dtype(ctx.input(0).dtype)  # the default: Q's own precision
    if precision is not None and int(precision) not in _SOFTMAX_PRECISIONS + (same,):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"softmax_precision {int(precision)} (lower than float32) is not supported; "
                       "the lowering computes the softmax in float32")
    wants_qk = len(node.outputs) > 3 and bool(node.outputs[3])
    if wants_qk and mode == 0 and softcap > 0:
        # The spec says mode 0 is the raw product; the reference returns it softcapped.
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       "qk_matmul_output with mode 0 and softcap > 0 is ambiguous (spec and reference differ)")
    if ctx.has_input(4) != ctx.has_input(5):
        raise ctx.fail(Reason.INVALID_MODEL, "past_key and past_value must be given together")
    return mode, softcap


class _Outputs:
    """ONNX outputs; float16 outputs are computed in float32 and CAST back at the end."""

    def __init__(self, ctx: LowerContext, dtype: np.dtype):
        self.ctx = ctx
        self.dtype = dtype
        self.casts: list[tuple[Tensor, Tensor]] = []

    def wanted(self, i: int) -> bool:
        outs = self.ctx.node.outputs
        return len(outs) > i and bool(outs[i])

    def get(self, i: int, shape: tuple[int, ...]) -> Tensor:
        """The tensor to write output ``i`` into (float32)."""
        final = self.ctx.output(i, shape, self.dtype)
        if self.dtype == _F32:
            return final
        tmp = self.ctx.tmp(shape, _F32, f"out{i}_f32")
        self.casts.append((tmp, final))
        return tmp

    def finish(self) -> None:
        for tmp, final in self.casts:
            self.ctx.emit("CAST", [tmp], [final], inDataType=_F32, outDataType=final.dtype)


@lowering("Attention", since=23, onnx_dtypes=("float32", "float16", "bfloat16"),
          dtypes=("float32", "float16"), verified=("float32", "float16"))
def lower_attention(node: NodeView, ctx: LowerContext) -> None:
    """Attention-23 as BATCH_MATMUL / MUL / TANH / ADD / SOFTMAX / BATCH_MATMUL (see module doc)."""
    mode, softcap = _check_attributes(node, ctx)
    q_in, k_in, v_in = ctx.input(0), ctx.input(1), ctx.input(2)
    dtype = q_in.dtype
    for i, t in ((1, k_in), (2, v_in), (4, ctx.optional_input(4)), (5, ctx.optional_input(5))):
        if t is not None and t.dtype != dtype:
            raise ctx.fail(Reason.INVALID_MODEL, f"input {i} has dtype {t.dtype.name}, Q has {dtype.name}")
    rank = q_in.rank
    if rank not in (3, 4) or k_in.rank != rank or v_in.rank != rank:
        raise ctx.fail(Reason.INVALID_MODEL, "Q, K and V must all be 3-D or all 4-D")
    outs = _Outputs(ctx, dtype)
    q, k, v = _f32(ctx, q_in), _f32(ctx, k_in), _f32(ctx, v_in)
    if rank == 3:
        q_heads, kv_heads = node.attr("q_num_heads"), node.attr("kv_num_heads")
        if q_heads is None or kv_heads is None:
            raise ctx.fail(Reason.INVALID_MODEL, "3-D Attention needs q_num_heads and kv_num_heads")
        q = _to_heads(ctx, q, int(q_heads), "Q")
        k = _to_heads(ctx, k, int(kv_heads), "K")
        v = _to_heads(ctx, v, int(kv_heads), "V")
    batch, hq, q_len, head = q.shape
    _, hkv, new_len, k_head = k.shape
    if k_head != head or v.shape[:3] != k.shape[:3] or k.shape[0] != batch:
        raise ctx.fail(Reason.INVALID_MODEL, f"Q {list(q.shape)}, K {list(k.shape)} and V {list(v.shape)} "
                                             "do not match")
    if hkv <= 0 or hq % hkv:
        raise ctx.fail(Reason.INVALID_MODEL, f"q heads {hq} are not a multiple of kv heads {hkv}")
    if rank == 4:
        for name, want in (("q_num_heads", hq), ("kv_num_heads", hkv)):
            given = node.attr(name)
            if given is not None and int(given) != want:
                raise ctx.fail(Reason.INVALID_MODEL, f"{name}={given} contradicts the 4-D input shapes")
    v_head = v.shape[3]

    # -- KV cache -------------------------------------------------------------------------------
    past_len = 0
    if ctx.has_input(4):
        pk, pv = _f32(ctx, ctx.input(4)), _f32(ctx, ctx.input(5))
        if pk.rank != 4 or pk.shape[:2] != (batch, hkv) or pk.shape[3] != head or pv.shape[:3] != pk.shape[:3] \
                or pv.shape[3] != v_head:
            raise ctx.fail(Reason.INVALID_MODEL, f"past_key {list(pk.shape)} / past_value {list(pv.shape)} do not "
                                                 "match K and V")
        past_len = pk.shape[2]
    kv_len = past_len + new_len
    key_shape, value_shape = (batch, hkv, kv_len, head), (batch, hkv, kv_len, v_head)
    pk_out = outs.get(1, key_shape) if outs.wanted(1) else None
    pv_out = outs.get(2, value_shape) if outs.wanted(2) else None
    if past_len:
        k = ctx.emit1("CONCATENATION", [pk, k], key_shape, _F32, "present_key", pk_out, axis=2,
                      fusedActivationFunction="NONE")
        v = ctx.emit1("CONCATENATION", [pv, v], value_shape, _F32, "present_value", pv_out, axis=2,
                      fusedActivationFunction="NONE")
    else:
        if pk_out is not None:
            ctx.reshape(k, key_shape, out=pk_out)
        if pv_out is not None:
            ctx.reshape(v, value_shape, out=pv_out)

    # -- bias -----------------------------------------------------------------------------------
    score_shape = (batch, hq, q_len, kv_len)
    masking = _bias(node, ctx, q_len, kv_len, past_len, score_shape)

    # -- scores ---------------------------------------------------------------------------------
    scale = node.attr("scale")
    scale = float(scale) if scale is not None else 1.0 / float(np.sqrt(head))
    if scale != 1.0:
        q = _binary(ctx, "MUL", q, ctx.new_const(np.float32(scale), hint="scale"), "q_scaled")
    r = hq // hkv
    grouped = (batch, hkv, r * q_len, head)  # query heads sharing one kv head, stacked along seq
    if r > 1:
        q = ctx.reshape(q, grouped)
    scores = _matmul(ctx, q, k, True, "qk")
    if r > 1:
        scores = ctx.reshape(scores, score_shape)
    qk_out = outs.get(3, score_shape) if outs.wanted(3) else None
    if softcap > 0:
        capped = _binary(ctx, "DIV", scores, ctx.new_const(np.float32(softcap), hint="softcap"), "qk_div")
        capped = ctx.emit1("TANH", [capped], capped.shape, _F32, "qk_tanh")
        out = qk_out if (qk_out is not None and mode == 1) else None
        scores = _binary(ctx, "MUL", capped, ctx.new_const(np.float32(softcap), hint="softcap"), "qk_capped", out)
    elif qk_out is not None and mode in (0, 1):
        ctx.reshape(scores, score_shape, out=qk_out)
    biased_out = qk_out if (qk_out is not None and mode == 2) else None
    if masking.allowed is not None:
        neg_inf = ctx.new_const(np.float32(-np.inf), hint="neg_inf")
        scores = _select(ctx, masking.allowed, scores, neg_inf, "qk_masked", biased_out)
    elif masking.bias is not None:
        neg_inf = ctx.new_const(np.float32(-np.inf), hint="neg_inf")
        where = masking.neg_inf_where
        if biased_out is not None and where is None and not masking.bias.is_const:
            where = _binary(ctx, "EQUAL", masking.bias, neg_inf, "bias_neg_inf", dtype=_BOOL)
        exact = biased_out is not None and where is not None
        scores = _binary(ctx, "ADD", scores, masking.bias, "qk_biased", None if exact else biased_out)
        if exact:  # the builtin ADD gives -FLT_MAX for -inf: restore -inf in the exposed scores
            scores = _select(ctx, where, neg_inf, scores, "qk_biased_exact", biased_out)
    elif biased_out is not None:
        ctx.reshape(scores, score_shape, out=biased_out)

    # -- softmax and the fully-masked-row guard -------------------------------------------------
    probs_out = qk_out if (qk_out is not None and mode == 3) else None
    row_masked = masking.row_masked
    if row_masked is None:
        probs = ctx.emit1("SOFTMAX", [scores], score_shape, _F32, "probs", probs_out, beta=1.0)
    else:
        raw = ctx.emit1("SOFTMAX", [scores], score_shape, _F32, "probs_raw", beta=1.0)
        probs = _select(ctx, row_masked, ctx.new_const(np.float32(0), hint="zero"), raw, "probs", probs_out)

    # -- output ---------------------------------------------------------------------------------
    if r > 1:
        probs = ctx.reshape(probs, (batch, hkv, r * q_len, kv_len))
    y4_shape = (batch, hq, q_len, v_head)
    if rank == 4:
        y_out = outs.get(0, y4_shape)
        if r > 1:
            ctx.reshape(_matmul(ctx, probs, v, False, "pv"), y4_shape, out=y_out)
        else:
            _matmul(ctx, probs, v, False, "pv", y_out)
    else:
        y = _matmul(ctx, probs, v, False, "pv")
        if r > 1:
            y = ctx.reshape(y, y4_shape)
        y_out = outs.get(0, (batch, q_len, hq * v_head))
        ctx.reshape(ctx.transpose(y, (0, 2, 1, 3)), y_out.shape, out=y_out)
    outs.finish()


def _bias(node: NodeView, ctx: LowerContext, q_len: int, kv_len: int, past_len: int,
          score_shape: tuple[int, ...]) -> _Bias:
    """The masking of the scores (attn_mask and is_causal) and the fully-masked-row condition.

    LiteRT's builtin ADD clamps -inf to -FLT_MAX, so -inf is only ever produced by SELECT_V2 and
    CONCATENATION: a bool mask selects -inf, causal masking selects too (also for a float mask).
    """
    causal = bool(node.attr("is_causal", 0))
    mask = ctx.optional_input(3)
    if mask is not None:
        if mask.dtype != _BOOL and mask.dtype != ctx.input(0).dtype:
            raise ctx.fail(Reason.INVALID_MODEL, f"attn_mask dtype {mask.dtype.name} is neither bool nor Q's dtype")
        if mask.rank == 0 or mask.shape[-1] > kv_len:
            raise ctx.fail(Reason.INVALID_MODEL, f"attn_mask shape {list(mask.shape)} does not fit "
                                                 f"{kv_len} keys")
        try:
            full = np.broadcast_shapes(mask.shape[:-1] + (kv_len,), score_shape)
        except ValueError:
            full = None
        if full != score_shape:
            raise ctx.fail(Reason.INVALID_MODEL, f"attn_mask shape {list(mask.shape)} does not broadcast to "
                                                 f"the scores {list(score_shape)}")
    if mask is None and not causal:
        return _Bias()
    causal_ok = causal_allowed(q_len, kv_len, past_len) if causal else None
    if mask is None or mask.is_const:
        return _const_bias(ctx, None if mask is None else pad_mask(mask.data, kv_len), causal_ok)
    mask = _pad_runtime(ctx, mask, kv_len)
    if mask.dtype == _BOOL:
        allowed = mask
        if causal_ok is not None:
            allowed = _binary(ctx, "LOGICAL_AND", allowed, ctx.new_const(causal_ok, hint="causal"), "allowed")
        any_ok = ctx.emit1("REDUCE_ANY", [allowed, _last_axis(ctx, allowed.rank)], allowed.shape[:-1] + (1,),
                           _BOOL, "row_any", keepDims=True)
        row_masked = ctx.emit1("LOGICAL_NOT", [any_ok], any_ok.shape, _BOOL, "row_masked")
        return _Bias(allowed=allowed, row_masked=row_masked)
    bias = _f32(ctx, mask)
    neg_inf = ctx.new_const(np.float32(-np.inf), hint="neg_inf")
    if causal_ok is not None:
        bias = _select(ctx, ctx.new_const(causal_ok, hint="causal"), bias, neg_inf, "attn_bias")
    row_max = ctx.emit1("REDUCE_MAX", [bias, _last_axis(ctx, bias.rank)], bias.shape[:-1] + (1,), _F32, "bias_max",
                        keepDims=True)
    row_masked = _binary(ctx, "EQUAL", row_max, neg_inf, "row_masked", dtype=_BOOL)
    return _Bias(bias=bias, row_masked=row_masked)  # neg_inf_where: computed only when needed


def _const_bias(ctx: LowerContext, mask: np.ndarray | None, causal_ok: np.ndarray | None) -> _Bias:
    """Masking by a constant (padded) mask and/or the causal pattern, folded at conversion time."""
    if mask is not None and mask.dtype != _BOOL:
        bias = mask.astype(np.float32)
        if causal_ok is not None:
            bias = np.where(causal_ok, bias, np.float32(-np.inf))
        neg = np.isneginf(bias)
        masked = np.isneginf(bias.max(axis=-1, keepdims=True))
        return _Bias(bias=ctx.new_const(bias, hint="attn_bias"),
                     row_masked=ctx.new_const(masked, hint="row_masked") if masked.any() else None,
                     neg_inf_where=ctx.new_const(neg, hint="bias_neg_inf") if neg.any() else None)
    allowed = np.ones((1, 1), bool)
    if mask is not None:
        allowed = allowed & mask
    if causal_ok is not None:
        allowed = allowed & causal_ok
    if allowed.all():
        return _Bias()  # e.g. an all-True mask
    masked = ~allowed.any(axis=-1, keepdims=True)
    return _Bias(allowed=ctx.new_const(allowed, hint="allowed"),
                 row_masked=ctx.new_const(masked, hint="row_masked") if masked.any() else None)
