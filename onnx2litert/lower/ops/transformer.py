"""Lowerings of the transformer family.

Ops: RotaryEmbedding (opset 23), Swish (opset 24), SwiGLU (opset 28), CausalConvWithState (opset 27).

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

LinearAttention (opset 27) is not lowered: its recurrences need an unrolled per-token state update
(or a WHILE loop) of several matmuls per step; it is left to the custom-op policy.
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
