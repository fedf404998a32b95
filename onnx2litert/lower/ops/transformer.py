"""Lowerings of the transformer family.

Ops: RotaryEmbedding (opset 23), Swish (opset 24), SwiGLU (opset 28), CausalConvWithState (opset 27),
LinearAttention (opset 27).

Everything is written with elementwise builtins (MUL, ADD, SUB, LOGISTIC), STRIDED_SLICE,
CONCATENATION, RESHAPE and GATHER; each op is the exact ONNX formula evaluated in float32 in the
same order as the ONNX reference, so the result stays within float32 rounding.

- Swish(x)       = x * LOGISTIC(alpha * x)
- SwiGLU(a, b)   = Swish_alpha(a) * b
- RotaryEmbedding: cos/sin rows are gathered by ``position_ids`` (folded when constant), then
  real = cos*x1 - sin*x2, imag = sin*x1 + cos*x2 on the two halves (or the even/odd lanes when
  ``interleaved``) of the first ``rotary_embedding_dim`` channels. Interleaved lanes are split by a
  reshape to [..., r/2, 2], so no strided gather is needed.
- CausalConvWithState: a depthwise causal conv with run-time weights, unrolled over the (static)
  kernel size: padded = concat(past_state or zeros, x); y = sum_j w[:, 0, j] * padded[..., j:j+L].

- LinearAttention: the recurrence of the ONNX reference, unrolled over the static sequence length
  (UNPACK per token, PACK of the per-token outputs), in float32 (float16 is CAST in and out, as the
  reference accumulates in float32). Per token, with the state S (B, H_kv, d_k, d_v):
  S *= EXP(g_t) (gated), v_t = beta_t * (v_t - k_t^T S) (delta: BATCH_MATMUL), S += k_t v_t^T
  (broadcast MUL of a column by a row: one rounding, like the reference), o_t = scale * q_t^T S
  (BATCH_MATMUL; grouped query heads are stacked as the rows of q_t, so no state repeat).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering
from .elementwise import emit_binary, emit_unary, scalar
from .tensor import strided_slice

_F32 = np.dtype(np.float32)


# -- small helpers ---------------------------------------------------------------------------------
def _slice_last(ctx: LowerContext, x: Tensor, begin: int, end: int) -> Tensor:
    """x[..., begin:end] (a no-op when it is the whole axis)."""
    if begin == 0 and end == x.shape[-1]:
        return x
    n = x.rank
    return strided_slice(ctx, x, [0] * (n - 1) + [begin], list(x.shape[:-1]) + [end], [1] * n)


def _concat(ctx: LowerContext, parts: Sequence[Tensor], axis: int, out: Tensor | None = None) -> Tensor:
    """CONCATENATION of ``parts`` along non-negative ``axis``."""
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    return ctx.emit1("CONCATENATION", list(parts), tuple(shape), parts[0].dtype, "concat", out, axis=axis,
                     fusedActivationFunction="NONE")


def _swish(ctx: LowerContext, x: Tensor, alpha: float, out: Tensor | None = None) -> Tensor:
    """x * sigmoid(alpha * x); alpha == 1 skips the scaling (bit-identical)."""
    scaled = x if alpha == 1.0 else emit_binary(ctx, "MUL", x, scalar(ctx, alpha, x.dtype, "alpha"), hint="scaled")
    gate = emit_unary(ctx, "LOGISTIC", scaled, hint="sigmoid")
    return emit_binary(ctx, "MUL", x, gate, out=out, hint="swish")


def _alpha(node: NodeView) -> float:
    return float(np.float32(node.attr("alpha", 1.0)))


# -- Swish / SwiGLU --------------------------------------------------------------------------------
@lowering("Swish", since=24, onnx_dtypes=("float32", "float16", "float64", "bfloat16"))
def lower_swish(node: NodeView, ctx: LowerContext) -> None:
    """Swish(x) = x * sigmoid(alpha * x)."""
    x = ctx.input(0)
    _swish(ctx, x, _alpha(node), out=ctx.output(0, x.shape, x.dtype))


@lowering("SwiGLU", since=28, onnx_dtypes=("float32", "float16", "float64", "bfloat16"))
def lower_swiglu(node: NodeView, ctx: LowerContext) -> None:
    """SwiGLU(a, b) = Swish_alpha(a) * b (same shapes, no broadcasting)."""
    a, b = ctx.input(0), ctx.input(1)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ctx.fail(Reason.INVALID_MODEL, f"A {list(a.shape)} and B {list(b.shape)} must have the same "
                                             "shape and dtype")
    gate = _swish(ctx, a, _alpha(node))
    emit_binary(ctx, "MUL", gate, b, out=ctx.output(0, a.shape, a.dtype))


# -- RotaryEmbedding -------------------------------------------------------------------------------
def _rope_cache(ctx: LowerContext, index: int, positions: Tensor | None, batch: int, seq: int,
                half: int) -> Tensor:
    """cos or sin rows of shape [batch, seq, half]: cache[position_ids] or the cache itself."""
    cache = ctx.input(index)
    name = "cos_cache" if index == 1 else "sin_cache"
    if cache.dtype != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"{name} dtype {cache.dtype.name} differs from the input")
    if positions is None:
        if cache.shape != (batch, seq, half):
            raise ctx.fail(Reason.INVALID_MODEL, f"{name} shape {list(cache.shape)} must be "
                                                 f"{[batch, seq, half]} without position_ids")
        return cache
    if cache.rank != 2 or cache.shape[1] != half:
        raise ctx.fail(Reason.INVALID_MODEL, f"{name} shape {list(cache.shape)} must be [max_position, {half}]")
    if positions.is_const and cache.is_const:
        ids = np.asarray(positions.data, np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= cache.shape[0]):
            raise ctx.fail(Reason.INVALID_MODEL, "position_ids are out of range of the caches")
        return ctx.new_const(cache.data[ids], hint=name)
    ids = positions
    if ids.is_const:
        values = np.asarray(ids.data, np.int64)
        if values.size and (values.min() < 0 or values.max() >= cache.shape[0]):
            raise ctx.fail(Reason.INVALID_MODEL, "position_ids are out of range of the caches")
        ids = ctx.new_const(values.astype(np.int32), hint="position_ids")
    return ctx.emit1("GATHER", [cache, ids], (batch, seq, half), cache.dtype, name, axis=0, batchDims=0)


def _rotate(ctx: LowerContext, x1: Tensor, x2: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
    """(cos*x1 - sin*x2, sin*x1 + cos*x2), each product rounded like the ONNX reference."""
    real = emit_binary(ctx, "SUB", emit_binary(ctx, "MUL", cos, x1, hint="cx1"),
                       emit_binary(ctx, "MUL", sin, x2, hint="sx2"), hint="real")
    imag = emit_binary(ctx, "ADD", emit_binary(ctx, "MUL", sin, x1, hint="sx1"),
                       emit_binary(ctx, "MUL", cos, x2, hint="cx2"), hint="imag")
    return real, imag


@lowering("RotaryEmbedding", since=23, onnx_dtypes=("float32", "float16", "bfloat16"))
def lower_rotary_embedding(node: NodeView, ctx: LowerContext) -> None:
    """RoPE on [B, H, S, D] or [B, S, H*D] (num_heads) input; full or partial, halves or interleaved."""
    x = ctx.input(0)
    out = ctx.output(0, x.shape, x.dtype)
    if x.rank == 4:
        batch, heads, seq, head_size = x.shape
        x4 = x
        cache_shape = (batch, 1, seq)  # cos/sin broadcast over the head axis (1)
    elif x.rank == 3:
        num_heads = int(node.attr("num_heads", 0) or 0)
        batch, seq, hidden = x.shape
        if num_heads <= 0 or hidden % num_heads:
            raise ctx.fail(Reason.INVALID_MODEL, f"3-D input needs num_heads dividing the hidden size {hidden}")
        head_size = hidden // num_heads
        x4 = ctx.reshape(x, (batch, seq, num_heads, head_size))
        cache_shape = (batch, seq, 1)
    else:
        raise ctx.fail(Reason.INVALID_MODEL, f"input must be 3-D or 4-D, got rank {x.rank}")
    rot = int(node.attr("rotary_embedding_dim", 0) or 0) or head_size
    if rot % 2 or rot > head_size:
        raise ctx.fail(Reason.INVALID_MODEL, f"rotary_embedding_dim {rot} must be even and <= head size {head_size}")
    half = rot // 2
    positions = ctx.optional_input(3)
    if positions is not None and positions.shape != (batch, seq):
        raise ctx.fail(Reason.INVALID_MODEL, f"position_ids shape {list(positions.shape)} must be {[batch, seq]}")
    cos = ctx.reshape(_rope_cache(ctx, 1, positions, batch, seq, half), cache_shape + (half,))
    sin = ctx.reshape(_rope_cache(ctx, 2, positions, batch, seq, half), cache_shape + (half,))

    x_rot = _slice_last(ctx, x4, 0, rot)
    lead = x4.shape[:-1]
    if node.attr("interleaved", 0):
        pairs = ctx.reshape(x_rot, lead + (half, 2))
        x1, x2 = _slice_last(ctx, pairs, 0, 1), _slice_last(ctx, pairs, 1, 2)
        cos5, sin5 = ctx.reshape(cos, cos.shape + (1,)), ctx.reshape(sin, sin.shape + (1,))
        real, imag = _rotate(ctx, x1, x2, cos5, sin5)
        rotated = ctx.reshape(_concat(ctx, [real, imag], axis=4), lead + (rot,))
    else:
        x1, x2 = _slice_last(ctx, x_rot, 0, half), _slice_last(ctx, x_rot, half, rot)
        real, imag = _rotate(ctx, x1, x2, cos, sin)
        rotated = _concat(ctx, [real, imag], axis=3)
    parts = [rotated] if rot == head_size else [rotated, _slice_last(ctx, x4, rot, head_size)]
    if x.rank == 4:
        if len(parts) == 1:
            ctx.reshape(rotated, x.shape, out=out)
        else:
            _concat(ctx, parts, axis=3, out=out)
    else:
        y4 = parts[0] if len(parts) == 1 else _concat(ctx, parts, axis=3)
        ctx.reshape(y4, x.shape, out=out)


# -- CausalConvWithState ---------------------------------------------------------------------------
@lowering("CausalConvWithState", since=27, onnx_dtypes=("float32", "float16", "float64", "bfloat16"))
def lower_causal_conv_with_state(node: NodeView, ctx: LowerContext) -> None:
    """Depthwise causal 1-D conv with carried state, unrolled over the kernel taps.

    padded = concat(past_state or zeros(B, C, k-1), x) along length;
    y[b, c, t] = sum_j w[c, 0, j] * padded[b, c, t + j] (+ bias[c]), optional SiLU;
    present_state = padded[..., L:] (the last k-1 positions).
    """
    x, w = ctx.input(0), ctx.input(1)
    if x.rank != 3 or w.rank != 3 or w.shape[0] != x.shape[1] or w.shape[1] != 1:
        raise ctx.fail(Reason.INVALID_MODEL, f"input {list(x.shape)} must be (B, C, L) and weight "
                                             f"{list(w.shape)} (C, 1, k)")
    if w.dtype != x.dtype:
        raise ctx.fail(Reason.INVALID_MODEL, "weight dtype differs from the input")
    activation = str(node.attr("activation", "none")).lower()
    if activation not in ("none", "silu", "swish"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"activation '{activation}' is not supported")
    batch, channels, length = x.shape
    k = w.shape[2]
    state_shape = (batch, channels, k - 1)
    past = ctx.optional_input(3)
    if past is not None and past.shape != state_shape:
        raise ctx.fail(Reason.INVALID_MODEL, f"past_state shape {list(past.shape)} must be {list(state_shape)}")
    wants_state = len(node.outputs) > 1 and bool(node.outputs[1])
    if wants_state and k == 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "kernel size 1 gives a zero-sized present_state")
    y_out = ctx.output(0, x.shape, x.dtype)
    state_out = ctx.output(1, state_shape, x.dtype) if wants_state else None
    if k == 1:
        padded = x
    else:
        if past is None:
            past = ctx.new_const(np.zeros(state_shape, x.dtype), hint="zero_state")
        padded = _concat(ctx, [past, x], axis=2)
    acc: Tensor | None = None
    for j in range(k):
        tap = ctx.reshape(_slice_last(ctx, w, j, j + 1), (channels, 1))  # broadcasts over (B, C, L)
        window = _slice_last(ctx, padded, j, j + length)
        term = emit_binary(ctx, "MUL", window, tap, hint=f"tap{j}")
        acc = term if acc is None else emit_binary(ctx, "ADD", acc, term, hint="acc")
    bias = ctx.optional_input(2)
    if bias is not None:
        if bias.shape != (channels,):
            raise ctx.fail(Reason.INVALID_MODEL, f"bias shape {list(bias.shape)} must be [{channels}]")
        acc = emit_binary(ctx, "ADD", acc, ctx.reshape(bias, (channels, 1)), hint="biased")
    if activation == "none":
        ctx.reshape(acc, x.shape, out=y_out)
    else:
        _swish(ctx, acc, 1.0, out=y_out)
    if state_out is not None:
        state = padded if padded.shape[2] == k - 1 else _slice_last(ctx, padded, length, length + k - 1)
        ctx.reshape(state, state_shape, out=state_out)


# -- LinearAttention -------------------------------------------------------------------------------
_UPDATE_RULES = ("linear", "gated", "delta", "gated_delta")
_FLOAT_TYPES = (np.dtype(np.float32), np.dtype(np.float16))


def _as_f32(ctx: LowerContext, x: Tensor, what: str) -> Tensor:
    """``x`` in float32 (float16 is CAST; the reference computes in float32 too)."""
    if x.dtype not in _FLOAT_TYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"{what} has dtype {x.dtype.name}; float32 and float16 are "
                                                 "supported")
    if x.dtype == _F32:
        return x
    if x.is_const:
        return ctx.new_const(x.data.astype(np.float32), hint=f"{what}_f32")
    return ctx.emit1("CAST", [x], x.shape, _F32, f"{what}_f32", inDataType=x.dtype, outDataType=_F32)


def _tokens(ctx: LowerContext, x: Tensor, shape: tuple[int, ...], hint: str) -> list[Tensor]:
    """``x`` reshaped to ``shape`` = (B, T, ...) and split into T tensors of shape (B, ...)."""
    x = ctx.reshape(x, shape)
    step = (shape[0],) + tuple(shape[2:])
    if shape[1] == 1:
        return [ctx.reshape(x, step)]
    outs = [ctx.tmp(step, x.dtype, f"{hint}{i}") for i in range(shape[1])]
    ctx.emit("UNPACK", [x], outs, num=shape[1], axis=1)
    return outs


def _bmm(ctx: LowerContext, a: Tensor, b: Tensor, hint: str) -> Tensor:
    """Rank-4 BATCH_MATMUL a @ b with equal batch dims."""
    return ctx.emit1("BATCH_MATMUL", [a, b], a.shape[:-1] + (b.shape[-1],), _F32, hint, adjX=False, adjY=False,
                     asymmetricQuantizeInputs=False)


def _linear_attention_inputs(node: NodeView, ctx: LowerContext) -> tuple[str, int, int, Tensor | None,
                                                                        Tensor | None]:
    """Validate LinearAttention's attributes and optional inputs like the reference.

    Returns (update_rule, q_num_heads, kv_num_heads, decay, beta).
    """
    rule = str(node.attr("update_rule", "gated_delta"))
    if rule not in _UPDATE_RULES:
        raise ctx.fail(Reason.INVALID_MODEL, f"update_rule '{rule}' is not one of {', '.join(_UPDATE_RULES)}")
    q_heads, kv_heads = node.attr("q_num_heads"), node.attr("kv_num_heads")
    if q_heads is None or kv_heads is None:
        raise ctx.fail(Reason.INVALID_MODEL, "q_num_heads and kv_num_heads are required")
    q_heads, kv_heads = int(q_heads), int(kv_heads)
    if q_heads <= 0 or kv_heads <= 0 or q_heads % kv_heads:
        raise ctx.fail(Reason.INVALID_MODEL, f"q_num_heads {q_heads} must be a positive multiple of "
                                             f"kv_num_heads {kv_heads}")
    decay, beta = ctx.optional_input(4), ctx.optional_input(5)
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if gating != (decay is not None):
        raise ctx.fail(Reason.INVALID_MODEL, f"update_rule '{rule}' {'requires' if gating else 'forbids'} decay")
    if delta != (beta is not None):
        raise ctx.fail(Reason.INVALID_MODEL, f"update_rule '{rule}' {'requires' if delta else 'forbids'} beta")
    return rule, q_heads, kv_heads, decay, beta


@lowering("LinearAttention", since=27, onnx_dtypes=("float32", "float16", "bfloat16"),
          dtypes=("float32", "float16"), verified=("float32", "float16"))
def lower_linear_attention(node: NodeView, ctx: LowerContext) -> None:
    """LinearAttention (linear / gated / delta / gated_delta, GQA) unrolled over the tokens (module doc)."""
    rule, q_heads, kv_heads, decay, beta = _linear_attention_inputs(node, ctx)
    query, key, value = ctx.input(0), ctx.input(1), ctx.input(2)
    if query.rank != 3 or key.rank != 3 or value.rank != 3:
        raise ctx.fail(Reason.INVALID_MODEL, "query, key and value must be 3-D (B, T, H*D)")
    batch, steps, q_hidden = query.shape
    if key.shape[:2] != (batch, steps) or value.shape[:2] != (batch, steps):
        raise ctx.fail(Reason.INVALID_MODEL, f"query {list(query.shape)}, key {list(key.shape)} and value "
                                             f"{list(value.shape)} disagree on (B, T)")
    if q_hidden % q_heads or value.shape[2] % kv_heads:
        raise ctx.fail(Reason.INVALID_MODEL, "query / value hidden sizes are not divisible by the head counts")
    d_k, d_v = q_hidden // q_heads, value.shape[2] // kv_heads
    if key.shape[2] != kv_heads * d_k:
        raise ctx.fail(Reason.INVALID_MODEL, f"key hidden size {key.shape[2]} must be {kv_heads} * {d_k}")
    if steps == 0 or batch == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "zero-sized batch or sequence")
    group = q_heads // kv_heads
    state_shape = (batch, kv_heads, d_k, d_v)
    past = ctx.optional_input(3)
    if past is not None and past.shape != state_shape:
        raise ctx.fail(Reason.INVALID_MODEL, f"past_state shape {list(past.shape)} must be {list(state_shape)}")
    scale = float(node.attr("scale", 0.0) or 0.0) or 1.0 / float(np.sqrt(d_k))

    # Per-token operands; grouped query heads are rows of one (group, d_k) matrix per kv head.
    qs = _tokens(ctx, _as_f32(ctx, query, "query"), (batch, steps, kv_heads, group, d_k), "q")
    ks = _tokens(ctx, _as_f32(ctx, key, "key"), (batch, steps, kv_heads, 1, d_k), "k")
    vs = _tokens(ctx, _as_f32(ctx, value, "value"), (batch, steps, kv_heads, 1, d_v), "v")
    gates: list[Tensor] = []
    if decay is not None:
        if decay.rank != 3 or decay.shape[:2] != (batch, steps) or decay.shape[2] not in (kv_heads, kv_heads * d_k):
            raise ctx.fail(Reason.INVALID_MODEL, f"decay shape {list(decay.shape)} must be (B, T, H_kv) or "
                                                 "(B, T, H_kv * d_k)")
        per_key = decay.shape[2] // kv_heads
        g = emit_unary(ctx, "EXP", _as_f32(ctx, decay, "decay"), hint="decay_exp")
        gates = _tokens(ctx, g, (batch, steps, kv_heads, per_key, 1), "gate")  # scales the state's rows
    betas: list[Tensor] = []
    if beta is not None:
        if beta.rank != 3 or beta.shape[:2] != (batch, steps) or beta.shape[2] not in (kv_heads, 1):
            raise ctx.fail(Reason.INVALID_MODEL, f"beta shape {list(beta.shape)} must be (B, T, H_kv) or (B, T, 1)")
        betas = _tokens(ctx, _as_f32(ctx, beta, "beta"), (batch, steps, beta.shape[2], 1, 1), "beta")

    state = _as_f32(ctx, past, "past_state") if past is not None else \
        ctx.new_const(np.zeros(state_shape, np.float32), hint="zero_state")
    scale_t = scalar(ctx, scale, _F32, "scale")
    outputs = []
    for t in range(steps):
        if gates:
            state = emit_binary(ctx, "MUL", state, gates[t], hint="decayed")
        v_t = vs[t]
        if betas:
            retrieved = _bmm(ctx, ks[t], state, "retrieved")  # k_t^T S: (B, H_kv, 1, d_v)
            v_t = emit_binary(ctx, "MUL", betas[t], emit_binary(ctx, "SUB", v_t, retrieved, hint="residual"),
                              hint="delta_v")
        k_col = ctx.reshape(ks[t], (batch, kv_heads, d_k, 1))
        state = emit_binary(ctx, "ADD", state, emit_binary(ctx, "MUL", k_col, v_t, hint="outer"), hint="state")
        outputs.append(emit_binary(ctx, "MUL", _bmm(ctx, qs[t], state, "read"), scale_t, hint="o"))

    out_shape = (batch, steps, q_heads * d_v)
    if steps == 1:
        y = outputs[0]
    else:
        y = ctx.emit1("PACK", outputs, (batch, steps, kv_heads, group, d_v), _F32, "packed", valuesCount=steps,
                      axis=1)
    _store(ctx, ctx.reshape(y, out_shape), 0, query.dtype)
    if len(node.outputs) > 1 and node.outputs[1]:
        _store(ctx, state, 1, past.dtype if past is not None else query.dtype)


def _store(ctx: LowerContext, x: Tensor, index: int, dtype: np.dtype) -> None:
    """Write float32 ``x`` to output ``index`` of ``dtype`` (CAST for float16)."""
    out = ctx.output(index, x.shape, dtype)
    if dtype == _F32:
        ctx.reshape(x, x.shape, out=out)
    else:
        ctx.emit("CAST", [x], [out], inDataType=_F32, outDataType=dtype)
