"""Attention (opsets 23, 24, 25) and ai.onnx.preview FlexAttention, built from LiteRT builtins.

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
unsupported_attribute_value).

Attention-24 adds ``nonpad_kv_seqlen`` (external KV cache, no past_key): key ``j`` of batch ``b``
is visible only if ``j < nonpad[b]``, and the causal offset becomes ``nonpad[b] - q_len`` (may be
negative: leading rows fully masked, hence zero). Attention-25 adds ``left_window_size`` /
``right_window_size``: with ``diff = i + offset - j``, keys need ``diff <= left`` and
``-diff <= right`` (-1: unbounded). These constraints form one bool "frontier" mask: folded at
conversion time when ``nonpad`` is absent or constant, else two int64 LESS_EQUAL comparisons of
conversion-time bound tables against ``nonpad`` (see ``_runtime_frontier``), combined with the
attn_mask exactly like the causal mask.

FlexAttention (ai.onnx.preview, version 1): see ``lower_flex_attention``; its score_mod / prob_mod
graphs are lowered inline on the whole score tensor through the ordinary frontend and lowerings.

float16 and bfloat16 inputs are computed in float32 (exact CAST in, CAST back out). For bfloat16
(whose ulp exceeds usual tolerances) every intermediate the reference computes in bfloat16 is
rounded to it as well (CAST round trips, ``_Bf16Steps``), including the softmax steps and its
sequential sum (``normalization.emit_bf16_softmax``).
"""
from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ...errors import LoweringError, Reason
from ...ir import Subgraph, Tensor
from ..context import LowerContext, NodeView
from ..driver import lower_body, subgraph_host
from ..registry import lowering
from .control_flow import commit_ops, free_names, inline_subgraph
from .normalization import emit_bf16_softmax, round_bf16

_F32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)
_BF16 = np.dtype(ml_dtypes.bfloat16)
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
    """``x`` as float32 (CAST from float16/bfloat16, exact; constants converted at conversion time)."""
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
    return frontier_allowed(q_len, kv_len, offset, causal=True)


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
    """ONNX outputs; float16/bfloat16 outputs are computed in float32 and CAST back at the end."""

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


_ATTENTION_CLAIMS = dict(onnx_dtypes=("float32", "float16", "bfloat16"), dtypes=("float32", "float16", "bfloat16"),
                        verified=("float32", "float16", "bfloat16"))


@lowering("Attention", since=23, until=23, **_ATTENTION_CLAIMS)
def lower_attention(node: NodeView, ctx: LowerContext) -> None:
    """Attention-23 as BATCH_MATMUL / MUL / TANH / ADD / SOFTMAX / BATCH_MATMUL (see module doc)."""
    _lower_attention(node, ctx, _Frontier(causal=bool(node.attr("is_causal", 0))))


@lowering("Attention", since=24, until=24, **_ATTENTION_CLAIMS)
def lower_attention_24(node: NodeView, ctx: LowerContext) -> None:
    """Attention-24: Attention-23 plus ``nonpad_kv_seqlen`` (external-cache key padding and offset)."""
    _lower_attention(node, ctx, _Frontier(causal=bool(node.attr("is_causal", 0)), nonpad=_nonpad(ctx)))


@lowering("Attention", since=25, **_ATTENTION_CLAIMS)
def lower_attention_25(node: NodeView, ctx: LowerContext) -> None:
    """Attention-25: Attention-24 plus the ``left_window_size`` / ``right_window_size`` sliding window."""
    left, right = int(node.attr("left_window_size", -1)), int(node.attr("right_window_size", -1))
    if left < -1 or right < -1:
        raise ctx.fail(Reason.INVALID_MODEL, f"window sizes ({left}, {right}) must be -1 or nonnegative")
    if ctx.input(0).rank == 4 and (node.attr("q_num_heads") is not None or node.attr("kv_num_heads") is not None):
        # Attention-25 (spec and reference) forbids the head-count attributes with 4-D inputs.
        raise ctx.fail(Reason.INVALID_MODEL, "q_num_heads / kv_num_heads must not be given for 4-D inputs")
    _lower_attention(node, ctx, _Frontier(causal=bool(node.attr("is_causal", 0)), nonpad=_nonpad(ctx),
                                          left=left, right=right))


def _nonpad(ctx: LowerContext) -> Tensor | None:
    """The optional ``nonpad_kv_seqlen`` input (int64, shape (batch,)); None when absent."""
    nonpad = ctx.optional_input(6)
    if nonpad is None:
        return None
    if nonpad.dtype != np.dtype(np.int64) or nonpad.rank != 1 or nonpad.shape[0] != ctx.input(0).shape[0]:
        raise ctx.fail(Reason.INVALID_MODEL, f"nonpad_kv_seqlen ({nonpad.dtype.name} {list(nonpad.shape)}) must be "
                                             "int64 of shape (batch,)")
    if ctx.has_input(4) or ctx.has_input(5):
        raise ctx.fail(Reason.INVALID_MODEL, "nonpad_kv_seqlen cannot be combined with past_key / past_value")
    return nonpad


@dataclass(frozen=True)
class _Bf16Steps:
    """How the reference computes bfloat16 Attention, reproduced in float32 with roundings.

    numpy on bfloat16 arrays (ml_dtypes) computes each operation in float32 and rounds its result
    to bfloat16; a matmul accumulates in float32 and is rounded once. The reference scales Q and K
    each by ``bfloat16(sqrt(scale))``, rounds the scores, and, unless a softcap or a float32 /
    double ``softmax_precision`` moves the rest to float32 (a Python-float softcap promotes
    bfloat16 to float32), rounds the biased scores and every softmax step; the probabilities are
    rounded before P @ V. float32 EXP / TANH may differ from the C library's by a float32 ulp, so a
    rare value can land on the other side of a bfloat16 rounding boundary (one bfloat16 ulp).
    """

    narrow_softmax: bool

    @staticmethod
    def of(node: NodeView, softcap: float) -> "_Bf16Steps":
        precision = node.attr("softmax_precision")
        wide = precision is not None and int(precision) in _SOFTMAX_PRECISIONS
        return _Bf16Steps(narrow_softmax=softcap == 0 and not wide)

    @staticmethod
    def scale(ctx: LowerContext, q: Tensor, k: Tensor, scale: float) -> tuple[Tensor, Tensor]:
        """Q and K each multiplied by bfloat16(sqrt(scale)) and rounded."""
        root = np.float32(np.asarray(np.sqrt(scale), np.float32).astype(_BF16))
        if root == 1.0:
            return q, k
        factor = ctx.new_const(root, hint="scale_sqrt")
        return (round_bf16(ctx, _binary(ctx, "MUL", q, factor, "q_scaled_f32"), "q_scaled"),
                round_bf16(ctx, _binary(ctx, "MUL", k, factor, "k_scaled_f32"), "k_scaled"))


def _lower_attention(node: NodeView, ctx: LowerContext, frontier: _Frontier) -> None:
    """The shared body of every Attention version; ``frontier`` holds the version-specific key visibility."""
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
    masking = _bias(node, ctx, q_len, kv_len, past_len, score_shape, frontier)

    # -- scores ---------------------------------------------------------------------------------
    scale = node.attr("scale")
    scale = float(scale) if scale is not None else 1.0 / float(np.sqrt(head))
    # bfloat16: every step the reference computes in bfloat16 is rounded to it (see _Bf16Steps).
    steps = _Bf16Steps.of(node, softcap) if dtype == _BF16 else None
    if steps is not None:
        q, k = steps.scale(ctx, q, k, scale)
    elif scale != 1.0:
        q = _binary(ctx, "MUL", q, ctx.new_const(np.float32(scale), hint="scale"), "q_scaled")
    r = hq // hkv
    grouped = (batch, hkv, r * q_len, head)  # query heads sharing one kv head, stacked along seq
    if r > 1:
        q = ctx.reshape(q, grouped)
    scores = _matmul(ctx, q, k, True, "qk")
    if steps is not None:
        scores = round_bf16(ctx, scores, "qk_bf16")
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
    narrow = steps is not None and steps.narrow_softmax
    if narrow and masking.bias is not None:
        scores = round_bf16(ctx, scores, "qk_biased_bf16")  # (a selected -inf needs no rounding)

    # -- softmax and the fully-masked-row guard -------------------------------------------------
    probs_out = qk_out if (qk_out is not None and mode == 3) else None
    row_masked = masking.row_masked
    if row_masked is None:
        probs = emit_bf16_softmax(ctx, scores, hint="probs", out=probs_out) if narrow else \
            ctx.emit1("SOFTMAX", [scores], score_shape, _F32, "probs", probs_out, beta=1.0)
    else:
        raw = emit_bf16_softmax(ctx, scores, hint="probs_raw") if narrow else \
            ctx.emit1("SOFTMAX", [scores], score_shape, _F32, "probs_raw", beta=1.0)
        probs = _select(ctx, row_masked, ctx.new_const(np.float32(0), hint="zero"), raw, "probs", probs_out)
    if steps is not None and not narrow:
        probs = round_bf16(ctx, probs, "probs_bf16")  # the float32 probabilities are cast to bfloat16

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


@dataclass(frozen=True)
class _Frontier:
    """Which keys a query may see besides ``attn_mask``: the causal frontier, the sliding window
    (``left`` / ``right``, -1 = unbounded; opset 25) and the key padding of ``nonpad`` (opset 24).

    All three use the query's absolute position ``p = offset + i``: ``offset`` is the past length
    (internal cache), ``nonpad[b] - q_len`` (external cache, per batch) or 0.
    """

    causal: bool
    nonpad: Tensor | None = None
    left: int = -1
    right: int = -1

    @property
    def active(self) -> bool:
        return self.causal or self.nonpad is not None or self.left >= 0 or self.right >= 0


def frontier_allowed(q_len: int, kv_len: int, offset: int | np.ndarray, causal: bool, left: int = -1,
                     right: int = -1, nonpad: np.ndarray | None = None) -> np.ndarray:
    """Bool ``allowed`` of the causal / window / padding constraints, like the reference.

    ``offset`` is an int (shape (q_len, kv_len) result) or, with ``nonpad``, ignored in favour of the
    per-batch ``nonpad - q_len`` (shape (batch, 1, q_len, kv_len) result).
    """
    i = np.arange(q_len, dtype=np.int64).reshape(q_len, 1)
    j = np.arange(kv_len, dtype=np.int64).reshape(1, kv_len)
    if nonpad is not None:
        offset = (np.asarray(nonpad, np.int64) - q_len).reshape(-1, 1, 1, 1)
    diff = i + offset - j  # how far key j lies before the query's absolute position
    allowed = np.ones(diff.shape, bool)
    if causal:
        allowed &= diff >= 0
    if left >= 0:
        allowed &= diff <= left
    if right >= 0:
        allowed &= -diff <= right
    if nonpad is not None:
        allowed &= j < np.asarray(nonpad, np.int64).reshape(-1, 1, 1, 1)
    return allowed


def _runtime_frontier(ctx: LowerContext, q_len: int, kv_len: int, frontier: _Frontier) -> Tensor:
    """``frontier_allowed`` for a run-time ``nonpad`` as (batch, 1, q_len, kv_len) bool.

    With ``n = nonpad[b]`` and ``d = q_len + j - i`` every constraint is a bound on ``n``:
    causal ``d <= n``, right window ``d - right <= n``, padding ``j + 1 <= n`` (lower bounds,
    merged by max at conversion time), left window ``n <= left + d`` (upper bound). So at most two
    int64 comparisons and a LOGICAL_AND are emitted.
    """
    nonpad = ctx.reshape(frontier.nonpad, (frontier.nonpad.shape[0], 1, 1, 1))
    i = np.arange(q_len, dtype=np.int64).reshape(q_len, 1)
    j = np.arange(kv_len, dtype=np.int64).reshape(1, kv_len)
    d = q_len + j - i
    lower = np.broadcast_to(j + 1, (q_len, kv_len))
    if frontier.causal:
        lower = np.maximum(lower, d)
    if frontier.right >= 0:
        lower = np.maximum(lower, d - frontier.right)
    lower_t = ctx.new_const(lower.reshape(1, 1, q_len, kv_len).astype(np.int64), hint="lower_bound")
    allowed = _binary(ctx, "LESS_EQUAL", lower_t, nonpad, "frontier_lo", dtype=_BOOL)
    if frontier.left >= 0:
        upper_t = ctx.new_const((frontier.left + d).reshape(1, 1, q_len, kv_len).astype(np.int64), hint="upper_bound")
        below = _binary(ctx, "LESS_EQUAL", nonpad, upper_t, "frontier_hi", dtype=_BOOL)
        allowed = _binary(ctx, "LOGICAL_AND", allowed, below, "frontier")
    return allowed


def _bias(node: NodeView, ctx: LowerContext, q_len: int, kv_len: int, past_len: int,
          score_shape: tuple[int, ...], frontier: _Frontier) -> _Bias:
    """The masking of the scores (attn_mask, causal, window, key padding) and the fully-masked-row condition.

    LiteRT's builtin ADD clamps -inf to -FLT_MAX, so -inf is only ever produced by SELECT_V2 and
    CONCATENATION: a bool mask selects -inf, the frontier selects too (also for a float mask).
    """
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
    if mask is None and not frontier.active:
        return _Bias()
    nonpad = frontier.nonpad
    allowed_ok: np.ndarray | Tensor | None = None  # the frontier: folded, or computed at run time
    if frontier.active:
        if nonpad is None or nonpad.is_const:
            allowed_ok = frontier_allowed(q_len, kv_len, past_len, frontier.causal, frontier.left, frontier.right,
                                          None if nonpad is None else nonpad.data)
        else:
            allowed_ok = _runtime_frontier(ctx, q_len, kv_len, frontier)
    if (mask is None or mask.is_const) and not isinstance(allowed_ok, Tensor):
        return _const_bias(ctx, None if mask is None else pad_mask(mask.data, kv_len), allowed_ok)
    if isinstance(allowed_ok, np.ndarray):
        allowed_ok = ctx.new_const(allowed_ok, hint="frontier")
    if mask is not None:
        mask = ctx.new_const(pad_mask(mask.data, kv_len), hint="attn_mask") if mask.is_const \
            else _pad_runtime(ctx, mask, kv_len)
    if mask is None or mask.dtype == _BOOL:
        allowed = mask if mask is not None else allowed_ok
        if mask is not None and allowed_ok is not None:
            allowed = _binary(ctx, "LOGICAL_AND", allowed, allowed_ok, "allowed")
        any_ok = ctx.emit1("REDUCE_ANY", [allowed, _last_axis(ctx, allowed.rank)], allowed.shape[:-1] + (1,),
                           _BOOL, "row_any", keepDims=True)
        row_masked = ctx.emit1("LOGICAL_NOT", [any_ok], any_ok.shape, _BOOL, "row_masked")
        return _Bias(allowed=allowed, row_masked=row_masked)
    bias = _f32(ctx, mask)
    neg_inf = ctx.new_const(np.float32(-np.inf), hint="neg_inf")
    if allowed_ok is not None:
        bias = _select(ctx, allowed_ok, bias, neg_inf, "attn_bias")
    row_max = ctx.emit1("REDUCE_MAX", [bias, _last_axis(ctx, bias.rank)], bias.shape[:-1] + (1,), _F32, "bias_max",
                        keepDims=True)
    row_masked = _binary(ctx, "EQUAL", row_max, neg_inf, "row_masked", dtype=_BOOL)
    return _Bias(bias=bias, row_masked=row_masked)  # neg_inf_where: computed only when needed


def _const_bias(ctx: LowerContext, mask: np.ndarray | None, causal_ok: np.ndarray | None) -> _Bias:
    """Masking by a constant (padded) mask and/or the constant frontier ``causal_ok`` (causal, window,
    constant key padding), folded at conversion time."""
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


# -- ai.onnx.preview FlexAttention ----------------------------------------------------------------
_F16 = np.dtype(np.float16)
_MODIFIERS = ("score_mod", "prob_mod")


def _inline_modifier(node: NodeView, ctx: LowerContext, attr: str, x: Tensor) -> Tensor:
    """Apply the modifier graph ``attr`` ((B, Hq, L, S) -> same) to ``x`` by lowering it inline.

    The graph becomes a self-contained model (its one input with ``x``'s static shape, outer-scope
    values it reads as initializers or inputs), goes through the frontend and the per-node lowerings
    like a model (so Shape / Range / Gather on the static score shape fold to constants), and its ops
    are spliced into this graph with its input bound to ``x``.
    """
    graph = node.attr(attr)
    if not isinstance(graph, onnx.GraphProto):
        raise ctx.fail(Reason.INVALID_MODEL, f"attribute '{attr}' must be a graph")
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ctx.fail(Reason.INVALID_MODEL, f"{attr} must have exactly one input and one output")
    host = subgraph_host(ctx.graph)
    in_vi = helper.make_tensor_value_info(graph.input[0].name, helper.np_dtype_to_tensor_dtype(x.dtype),
                                          list(x.shape))
    out_vi = helper.make_tensor_value_info(graph.output[0].name, helper.np_dtype_to_tensor_dtype(x.dtype), None)
    inputs, feeds, inits = [in_vi], [x], list(graph.initializer)
    for name in free_names(graph):
        outer = ctx.graph.value(name)
        if outer is None:
            raise ctx.fail(Reason.UNSUPPORTED_ONNX_OP, f"{attr} reads '{name}', which is not available")
        if outer.is_const:
            inits.append(numpy_helper.from_array(np.asarray(outer.data), name))
        else:
            inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(outer.dtype),
                                                        list(outer.shape)))
            feeds.append(outer)
    body = helper.make_model(helper.make_graph(list(graph.node), attr, inputs, [out_vi], inits),
                             opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(host.opsets.items())],
                             ir_version=onnx.IR_VERSION)
    mark = host.mark()
    try:
        sg, _ = lower_body(ctx, body, f"{node.name}/{attr}", copy_io_outputs=False)
    except LoweringError:
        host.rollback(mark)
        raise
    y = _splice(ctx, sg, feeds, f"{node.name}/{attr}")
    if y.shape != x.shape or y.dtype != x.dtype:
        host.rollback(mark)
        raise ctx.fail(Reason.INVALID_MODEL, f"{attr} must keep the shape {list(x.shape)} and dtype {x.dtype.name}, "
                                             f"got {list(y.shape)} {y.dtype.name}")
    return y


def _splice(ctx: LowerContext, sg: Subgraph, feeds: list[Tensor], prefix: str) -> Tensor:
    """Move ``sg``'s ops into this node's ops with ``sg.inputs[i]`` := ``feeds[i]``; return its output."""
    pending: list = []
    out = inline_subgraph(ctx, sg, feeds, prefix, pending)[0]
    commit_ops(ctx, pending)  # the driver removes these too if the lowering fails later
    return out


def _round_f16(ctx: LowerContext, x: Tensor, hint: str) -> Tensor:
    """float32 ``x`` rounded to float16 and back: a float16 intermediate of the reference."""
    half = ctx.emit1("CAST", [x], x.shape, _F16, f"{hint}_f16", inDataType=_F32, outDataType=_F16)
    return ctx.emit1("CAST", [half], x.shape, _F32, hint, inDataType=_F16, outDataType=_F32)


@lowering("FlexAttention", domain="ai.onnx.preview", since=1, onnx_dtypes=("float32", "float16", "float64",
                                                                         "bfloat16"),
          dtypes=("float32", "float16"), verified=("float32", "float16"))
def lower_flex_attention(node: NodeView, ctx: LowerContext) -> None:
    """FlexAttention: (Q*sqrt(s)) @ (K*sqrt(s))^T -> score_mod -> SOFTMAX -> prob_mod -> @ V.

    Follows the reference: Q and K are each scaled by sqrt(scale) in their own dtype (float16
    inputs: the products and the scores are rounded to float16 by CAST, as the reference computes
    them in float16 with float32 accumulation), the softmax and P @ V run in float32. The modifier
    graphs are lowered inline on the (B, Hq, L, S) float32 tensor. GQA uses the grouped reshape of
    Attention (query head h reads kv head h // group).
    """
    q_in, k_in, v_in = ctx.input(0), ctx.input(1), ctx.input(2)
    dtype = q_in.dtype
    if k_in.dtype != dtype or v_in.dtype != dtype:
        raise ctx.fail(Reason.INVALID_MODEL, "Q, K and V must share one dtype")
    if q_in.rank != 4 or k_in.rank != 4 or v_in.rank != 4:
        raise ctx.fail(Reason.INVALID_MODEL, "FlexAttention needs rank-4 Q, K and V")
    batch, hq, q_len, head = q_in.shape
    _, hkv, kv_len, k_head = k_in.shape
    if k_in.shape[0] != batch or v_in.shape[:3] != k_in.shape[:3] or k_head != head:
        raise ctx.fail(Reason.INVALID_MODEL, f"Q {list(q_in.shape)}, K {list(k_in.shape)} and V "
                                             f"{list(v_in.shape)} do not match")
    if hkv <= 0 or hq % hkv:
        raise ctx.fail(Reason.INVALID_MODEL, f"q heads {hq} are not a multiple of kv heads {hkv}")
    precision = node.attr("softmax_precision")
    mods = [m for m in _MODIFIERS if node.attr(m) is not None]
    if precision is not None and int(precision) != TensorProto.FLOAT and \
            not (int(precision) == TensorProto.DOUBLE and dtype == _F32 and not mods):
        # float16 / bfloat16 softmax rounds differently; a double one is float32-exact only without
        # modifier graphs (these would be typed double).
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"softmax_precision {int(precision)} is not supported; "
                                                           "the lowering computes the softmax in float32")
    scale = node.attr("scale")
    scale = float(scale) if scale is not None else 1.0 / float(np.sqrt(head))
    root = np.sqrt(np.float32(scale)).astype(dtype)  # the reference's sqrt_scale, in the input dtype

    q, k, v = _f32(ctx, q_in), _f32(ctx, k_in), _f32(ctx, v_in)
    root_t = ctx.new_const(np.float32(root), hint="sqrt_scale")
    q = _binary(ctx, "MUL", q, root_t, "q_scaled")
    k = _binary(ctx, "MUL", k, root_t, "k_scaled")
    if dtype == _F16:
        q, k = _round_f16(ctx, q, "q_scaled16"), _round_f16(ctx, k, "k_scaled16")
    r = hq // hkv
    score_shape = (batch, hq, q_len, kv_len)
    if r > 1:
        q = ctx.reshape(q, (batch, hkv, r * q_len, head))
    scores = _matmul(ctx, q, k, True, "qk")
    if r > 1:
        scores = ctx.reshape(scores, score_shape)
    if dtype == _F16:
        scores = _round_f16(ctx, scores, "qk16")
    if node.attr("score_mod") is not None:
        scores = _inline_modifier(node, ctx, "score_mod", scores)
    probs = ctx.emit1("SOFTMAX", [scores], score_shape, _F32, "probs", beta=1.0)
    if node.attr("prob_mod") is not None:
        probs = _inline_modifier(node, ctx, "prob_mod", probs)
    if r > 1:
        probs = ctx.reshape(probs, (batch, hkv, r * q_len, kv_len))
    y_shape = (batch, hq, q_len, v_in.shape[3])
    outs = _Outputs(ctx, dtype)
    y_out = outs.get(0, y_shape)
    if r > 1:
        ctx.reshape(_matmul(ctx, probs, v, False, "pv"), y_shape, out=y_out)
    else:
        _matmul(ctx, probs, v, False, "pv", y_out)
    outs.finish()
