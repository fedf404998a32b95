"""Activation functions.

Ops: Relu, LeakyRelu, PRelu, Elu, Selu, Celu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh, Softplus,
Softsign, Mish, ThresholdedRelu, Shrink, Gelu, Erf. (Swish lives in transformer.py.)

Where LiteRT has no builtin with the ONNX semantics, the op is decomposed into builtins whose
float32 result stays within rounding of ONNX Runtime (never Flex or custom ops):

- Elu (alpha != 1) = RELU(x) + alpha * ELU(MIN(x, 0))        (LiteRT ELU is alpha = 1)
- Selu            = gamma * RELU(x) + gamma * alpha * ELU(MIN(x, 0))
- Softplus        = RELU(x) + LOG(1 + EXP(-|x|))               (no overflow for large |x|)
- Erf             = odd rational function of x clamped to [-4, 4] (max abs error ~4e-7)
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import ALL_NUMERIC, F32, FLOATS, lowering
from .elementwise import (WIDER, emit_binary, emit_copy, emit_unary, narrow, scalar, unary_output, via_float32,
                          widen)

_F32 = np.dtype(np.float32)
_SIGNED_INTS = ("int8", "int16", "int32", "int64")

# Erf(x) ~= x * P(x^2) / Q(x^2) on [-4, 4] (outside, erf is 1 to within float32 rounding).
# Coefficients of the widely used single-precision rational approximation (as in Eigen/XLA),
# highest power first for Horner evaluation.
_ERF_CLAMP = 4.0
_ERF_P = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06, -5.69250639462346e-05,
          -7.34990630326855e-04, -2.95459980854025e-03, -1.60960333262415e-02)
_ERF_Q = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03, -7.37332916720468e-03,
          -1.42647390514189e-02)

_SELU_ALPHA = 1.67326319217681884765625
_SELU_GAMMA = 1.05070102214813232421875


# -- simple builtins -----------------------------------------------------------------------------

_SIMPLE = {"Sigmoid": "LOGISTIC", "Tanh": "TANH", "HardSwish": "HARD_SWISH"}


@lowering("Sigmoid", "Tanh", onnx_dtypes=FLOATS)
@lowering("HardSwish", since=14, onnx_dtypes=FLOATS)
def lower_simple_activation(node: NodeView, ctx: LowerContext) -> None:
    """Ops with an exact LiteRT builtin: LOGISTIC, TANH, HARD_SWISH."""
    x = ctx.input(0)
    emit_unary(ctx, _SIMPLE[node.op_type], x, out=unary_output(ctx, x))


# int64 is accepted but not "verified": ONNX Runtime has no int64 Relu kernel to compare against
# (the test checks it against numpy instead).
@lowering("Relu", onnx_dtypes=FLOATS + _SIGNED_INTS, dtypes=("float32", "int32", "int64"),
          verified=("float32", "int32"))
def lower_relu(node: NodeView, ctx: LowerContext) -> None:
    """RELU for float32; MAXIMUM(x, 0) for int32/int64 (the RELU kernel has no such types)."""
    x = ctx.input(0)
    out = unary_output(ctx, x)
    if x.dtype == _F32:
        emit_unary(ctx, "RELU", x, out=out)
    else:
        emit_binary(ctx, "MAXIMUM", x, scalar(ctx, 0, x.dtype, "zero"), out=out)


@lowering("LeakyRelu", onnx_dtypes=FLOATS)
def lower_leaky_relu(node: NodeView, ctx: LowerContext) -> None:
    """LEAKY_RELU with ONNX's alpha (default 0.01)."""
    x = ctx.input(0)
    emit_unary(ctx, "LEAKY_RELU", x, out=unary_output(ctx, x), alpha=float(node.attr("alpha", 0.01)))


@lowering("PRelu", since=7, onnx_dtypes=FLOATS + ("int32", "int64", "uint32", "uint64"))
def lower_prelu(node: NodeView, ctx: LowerContext) -> None:
    """PRELU; the slope broadcasts unidirectionally to x (e.g. per channel as (C, 1, 1)).

    LiteRT's PRELU broadcasts up to rank 6; beyond that the exact form
    RELU(x) + slope * MIN(x, 0) is used.
    """
    x, slope = ctx.input(0), ctx.input(1)
    if slope.dtype != x.dtype:
        raise ctx.fail(Reason.INVALID_MODEL, f"slope dtype {slope.dtype.name} differs from input {x.dtype.name}")
    try:
        shape = tuple(np.broadcast_shapes(x.shape, slope.shape))
    except ValueError:
        shape = None
    if shape != x.shape:
        raise ctx.fail(Reason.INVALID_MODEL, f"slope shape {list(slope.shape)} does not broadcast to "
                                             f"input shape {list(x.shape)}")
    out = unary_output(ctx, x)
    if x.rank <= 6 or slope.shape == x.shape:
        ctx.emit("PRELU", [x, slope], [out])
        return
    negative = emit_binary(ctx, "MINIMUM", x, scalar(ctx, 0.0, x.dtype, "zero"), hint="neg_part")
    scaled = emit_binary(ctx, "MUL", negative, slope, hint="scaled")
    emit_binary(ctx, "ADD", emit_unary(ctx, "RELU", x, hint="pos_part"), scaled, out=out)


@lowering("Elu", onnx_dtypes=FLOATS, dtypes=("float32", "bfloat16"), verified=("float32", "bfloat16"))
@via_float32  # bfloat16: computed in float32, rounded once
def lower_elu(node: NodeView, ctx: LowerContext) -> None:
    """ELU builtin for alpha = 1, else RELU(x) + alpha * ELU(MIN(x, 0))."""
    x = ctx.input(0)
    out = unary_output(ctx, x)
    alpha = float(np.float32(node.attr("alpha", 1.0)))
    if alpha == 1.0:
        emit_unary(ctx, "ELU", x, out=out)
        return
    _scaled_elu(ctx, x, 1.0, alpha, out)


@lowering("Selu", onnx_dtypes=FLOATS)
def lower_selu(node: NodeView, ctx: LowerContext) -> None:
    """gamma * RELU(x) + gamma * alpha * ELU(MIN(x, 0))."""
    x = ctx.input(0)
    old = node.opset < 6  # Selu-1 had rounder defaults
    alpha = float(np.float32(node.attr("alpha", 1.6732 if old else _SELU_ALPHA)))
    gamma = float(np.float32(node.attr("gamma", 1.0507 if old else _SELU_GAMMA)))
    _scaled_elu(ctx, x, gamma, gamma * alpha, unary_output(ctx, x))


def _scaled_elu(ctx: LowerContext, x: Tensor, pos_scale: float, neg_scale: float, out: Tensor) -> Tensor:
    """pos_scale * max(x, 0) + neg_scale * (exp(min(x, 0)) - 1), using ELU for the expm1 part."""
    negative = emit_binary(ctx, "MINIMUM", x, scalar(ctx, 0.0, x.dtype, "zero"), hint="neg_part")
    neg = emit_binary(ctx, "MUL", emit_unary(ctx, "ELU", negative, hint="elu"),
                      scalar(ctx, neg_scale, x.dtype, "neg_scale"), hint="neg_scaled")
    pos = emit_unary(ctx, "RELU", x, hint="pos_part")
    if pos_scale != 1.0:
        pos = emit_binary(ctx, "MUL", pos, scalar(ctx, pos_scale, x.dtype, "pos_scale"), hint="pos_scaled")
    return emit_binary(ctx, "ADD", pos, neg, out=out)


# -- Clip ----------------------------------------------------------------------------------------

Bound = float | int | Tensor | None


def _clip_bound(node: NodeView, ctx: LowerContext, index: int, attr: str, x: Tensor) -> Bound:
    """The min (index 1) or max (index 2) of Clip: None, a constant scalar or a runtime tensor."""
    if node.opset < 11:
        value = node.attr(attr)
        if value is None and node.opset >= 6:  # Clip-6 defaults are the float32 limits: inf is clipped
            value = float(np.finfo(np.float32).min if attr == "min" else np.finfo(np.float32).max)
        return None if value is None else float(np.float32(value))
    if not ctx.has_input(index):
        return None
    const = ctx.const(index)
    if const is not None:
        flat = np.asarray(const).reshape(-1)
        if flat.size != 1:
            raise ctx.fail(Reason.INVALID_MODEL, f"Clip {attr} must be a scalar, got shape {list(const.shape)}")
        return flat[0].item()
    t = ctx.input(index)
    if t.dtype != x.dtype or tuple(np.broadcast_shapes(x.shape, t.shape)) != x.shape:
        raise ctx.fail(Reason.INVALID_MODEL, f"Clip {attr} ({t.dtype.name}{list(t.shape)}) must be a scalar "
                                             f"of the input's dtype")
    return t


_CLIP_DTYPES = ("float32", "int32", "int64", "int8", "uint8", "int16", "uint16", "uint32", "float16", "bfloat16")


@lowering("Clip", onnx_dtypes=FLOATS + _SIGNED_INTS + ("uint8", "uint16", "uint32", "uint64"),
          dtypes=_CLIP_DTYPES, verified=_CLIP_DTYPES)
def lower_clip(node: NodeView, ctx: LowerContext) -> None:
    """Clip as RELU / RELU6 / RELU_N1_TO_1 when the bounds match, else MAXIMUM then MINIMUM.

    Bounds are attributes before opset 11 and optional inputs from 11 (a computed bound is
    applied with MAXIMUM/MINIMUM against the tensor). MAXIMUM before MINIMUM gives ONNX's
    result max when min > max. Types without MAXIMUM/MINIMUM kernels are clipped in a wider
    type (exact: the result is x or a bound) and narrowed back.
    """
    x = ctx.input(0)
    out = unary_output(ctx, x)
    lo = _clip_bound(node, ctx, 1, "min", x)
    hi = _clip_bound(node, ctx, 2, "max", x)
    # Infinite constant bounds clip nothing.
    if isinstance(lo, float) and lo == -math.inf:
        lo = None
    if isinstance(hi, float) and hi == math.inf:
        hi = None
    if x.dtype == _F32 and not isinstance(lo, Tensor) and not isinstance(hi, Tensor):
        builtin = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1", (0.0, None): "RELU"}.get((lo, hi))
        if builtin is not None:
            emit_unary(ctx, builtin, x, out=out)
            return
    if lo is None and hi is None:
        emit_copy(ctx, x, out)
        return
    wide = WIDER.get(x.dtype)
    if wide is not None:
        x = widen(ctx, x, wide, "x_wide")
        lo = widen(ctx, lo, wide, "min_wide") if isinstance(lo, Tensor) else lo
        hi = widen(ctx, hi, wide, "max_wide") if isinstance(hi, Tensor) else hi
    y = x
    target = out if wide is None else None
    if lo is not None:
        lo_t = lo if isinstance(lo, Tensor) else scalar(ctx, lo, x.dtype, "min")
        y = emit_binary(ctx, "MAXIMUM", y, lo_t, out=target if hi is None else None, hint="lower")
    if hi is not None:
        hi_t = hi if isinstance(hi, Tensor) else scalar(ctx, hi, x.dtype, "max")
        y = emit_binary(ctx, "MINIMUM", y, hi_t, out=target, hint="upper")
    if wide is not None:
        narrow(ctx, y, out)


# -- decompositions ------------------------------------------------------------------------------

@lowering("HardSigmoid", onnx_dtypes=FLOATS)
def lower_hard_sigmoid(node: NodeView, ctx: LowerContext) -> None:
    """max(0, min(1, alpha * x + beta)) with ONNX defaults alpha 0.2, beta 0.5."""
    x = ctx.input(0)
    alpha = float(np.float32(node.attr("alpha", 0.2)))
    beta = float(np.float32(node.attr("beta", 0.5)))
    y = emit_binary(ctx, "MUL", x, scalar(ctx, alpha, x.dtype, "alpha"), hint="scaled")
    y = emit_binary(ctx, "ADD", y, scalar(ctx, beta, x.dtype, "beta"), hint="shifted")
    y = emit_binary(ctx, "MINIMUM", y, scalar(ctx, 1.0, x.dtype, "one"), hint="upper")
    emit_binary(ctx, "MAXIMUM", y, scalar(ctx, 0.0, x.dtype, "zero"), out=unary_output(ctx, x))


def _log1p_unit(ctx: LowerContext, u: Tensor) -> Tensor:
    """log(1 + u) for u in [0, 1], to float32 relative accuracy, without LOG.

    log(1 + u) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...) with s = u / (2 + u) <= 1/3; ten terms
    leave a relative truncation error below 1e-10. (LOG(1 + u) loses relative accuracy for small u
    twice: in rounding 1 + u, and in XNNPACK's LOG, which is only absolutely accurate near 1.)
    """
    s = emit_binary(ctx, "DIV", u, emit_binary(ctx, "ADD", u, scalar(ctx, 2.0, u.dtype, "two"), hint="two_plus"),
                    hint="s")
    s2 = emit_binary(ctx, "MUL", s, s, hint="s2")
    acc = scalar(ctx, 1.0 / 19.0, u.dtype, "c")
    for k in range(8, -1, -1):  # Horner over s^2k / (2k+1), k = 9 .. 0
        acc = emit_binary(ctx, "MUL", s2, acc, hint="series")
        acc = emit_binary(ctx, "ADD", acc, scalar(ctx, 1.0 / (2 * k + 1), u.dtype, "c"), hint="series")
    return emit_binary(ctx, "MUL", emit_binary(ctx, "ADD", s, s, hint="two_s"), acc, hint="log1p")


def _softplus(ctx: LowerContext, x: Tensor, out: Tensor | None = None) -> Tensor:
    """log(1 + exp(x)) as RELU(x) + LOG1P(EXP(-|x|)): EXP never overflows, and the log1p form
    keeps full relative accuracy for very negative x (where the result is about e^x)."""
    neg_abs = emit_unary(ctx, "NEG", emit_unary(ctx, "ABS", x, hint="abs"), hint="neg_abs")
    log_term = _log1p_unit(ctx, emit_unary(ctx, "EXP", neg_abs, hint="exp"))
    return emit_binary(ctx, "ADD", emit_unary(ctx, "RELU", x, hint="relu"), log_term, out=out)


@lowering("Softplus", onnx_dtypes=FLOATS)
def lower_softplus(node: NodeView, ctx: LowerContext) -> None:
    """Numerically stable softplus (see :func:`_softplus`)."""
    x = ctx.input(0)
    _softplus(ctx, x, out=unary_output(ctx, x))


# Above this, tanh(softplus(x)) is 1 in float32 (2 / (n + 2) < 2^-25), and n stays finite.
_MISH_CLAMP = 20.0


@lowering("Mish", since=18, onnx_dtypes=FLOATS)
def lower_mish(node: NodeView, ctx: LowerContext) -> None:
    """x * tanh(softplus(x)) = x * n / (n + 2) with n = e^x (e^x + 2), e^x of min(x, 20).

    The rational form has no cancellation for negative x (where x * tanh(log1p(e^x)) loses
    relative accuracy near 0) and is exactly 1 in float32 for x beyond the clamp.
    """
    x = ctx.input(0)
    e = emit_unary(ctx, "EXP", emit_binary(ctx, "MINIMUM", x, scalar(ctx, _MISH_CLAMP, x.dtype, "clamp"),
                                           hint="clamped"), hint="exp")
    n = emit_binary(ctx, "MUL", e, emit_binary(ctx, "ADD", e, scalar(ctx, 2.0, x.dtype, "two"), hint="e_plus_2"),
                    hint="n")
    ratio = emit_binary(ctx, "DIV", n, emit_binary(ctx, "ADD", n, scalar(ctx, 2.0, x.dtype, "two"), hint="n_plus_2"),
                        hint="tanh_softplus")
    emit_binary(ctx, "MUL", x, ratio, out=unary_output(ctx, x))


@lowering("Celu", since=12, onnx_dtypes=FLOATS, dtypes=("float32", "float16", "bfloat16"),
          verified=("float32", "bfloat16"))
def lower_celu(node: NodeView, ctx: LowerContext) -> None:
    """max(0, x) + alpha * ELU(min(x, 0) / alpha) (= min(0, alpha * (exp(x / alpha) - 1))).

    float16 and bfloat16 are computed in float32 and rounded once at the end (checked against
    the ONNX reference, not ONNX Runtime, which has no float16/bfloat16 Celu kernel).
    """
    x = ctx.input(0)
    out = unary_output(ctx, x)
    alpha = float(np.float32(node.attr("alpha", 1.0)))
    if alpha == 0.0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "Celu alpha must be non-zero")
    wide = WIDER.get(x.dtype)
    xw = widen(ctx, x, wide, "x_wide") if wide is not None else x
    negative = emit_binary(ctx, "MINIMUM", xw, scalar(ctx, 0.0, xw.dtype, "zero"), hint="neg_part")
    if alpha != 1.0:
        negative = emit_binary(ctx, "DIV", negative, scalar(ctx, alpha, xw.dtype, "alpha"), hint="scaled_in")
    neg = emit_unary(ctx, "ELU", negative, hint="elu")
    if alpha != 1.0:
        neg = emit_binary(ctx, "MUL", neg, scalar(ctx, alpha, xw.dtype, "alpha_out"), hint="scaled_out")
    pos = emit_unary(ctx, "RELU", xw, hint="pos_part")
    if wide is None:
        emit_binary(ctx, "ADD", pos, neg, out=out)
    else:
        narrow(ctx, emit_binary(ctx, "ADD", pos, neg, hint="celu_wide"), out)


@lowering("ThresholdedRelu", since=10, onnx_dtypes=FLOATS)
def lower_thresholded_relu(node: NodeView, ctx: LowerContext) -> None:
    """x where x > alpha (default 1.0), else 0: SELECT_V2(GREATER(x, alpha), x, 0)."""
    x = ctx.input(0)
    alpha = float(np.float32(node.attr("alpha", 1.0)))
    above = ctx.emit1("GREATER", [x, scalar(ctx, alpha, x.dtype, "alpha")], x.shape, np.bool_, "above")
    ctx.emit("SELECT_V2", [above, x, scalar(ctx, 0.0, x.dtype, "zero")], [unary_output(ctx, x)])


@lowering("Shrink", since=9, onnx_dtypes=ALL_NUMERIC)
def lower_shrink(node: NodeView, ctx: LowerContext) -> None:
    """x - bias where x > lambd, x + bias where x < -lambd, else 0 (lambd 0.5, bias 0 by default)."""
    x = ctx.input(0)
    lambd = float(np.float32(node.attr("lambd", 0.5)))
    bias = float(np.float32(node.attr("bias", 0.0)))
    above = ctx.emit1("GREATER", [x, scalar(ctx, lambd, x.dtype, "lambd")], x.shape, np.bool_, "above")
    below = ctx.emit1("LESS", [x, scalar(ctx, -lambd, x.dtype, "neg_lambd")], x.shape, np.bool_, "below")
    if bias == 0.0:
        high, low = x, x
    else:
        high = emit_binary(ctx, "SUB", x, scalar(ctx, bias, x.dtype, "bias"), hint="minus_bias")
        low = emit_binary(ctx, "ADD", x, scalar(ctx, bias, x.dtype, "bias"), hint="plus_bias")
    inner = ctx.emit1("SELECT_V2", [below, low, scalar(ctx, 0.0, x.dtype, "zero")], x.shape, x.dtype, "low_or_zero")
    ctx.emit("SELECT_V2", [above, high, inner], [unary_output(ctx, x)])


@lowering("Softsign", onnx_dtypes=FLOATS)
def lower_softsign(node: NodeView, ctx: LowerContext) -> None:
    """x / (1 + |x|)."""
    x = ctx.input(0)
    denom = emit_binary(ctx, "ADD", emit_unary(ctx, "ABS", x, hint="abs"), scalar(ctx, 1.0, x.dtype, "one"),
                        hint="denom")
    emit_binary(ctx, "DIV", x, denom, out=unary_output(ctx, x))


@lowering("Gelu", since=20, onnx_dtypes=FLOATS)
def lower_gelu(node: NodeView, ctx: LowerContext) -> None:
    """GELU builtin; approximate 'none' (erf form) or 'tanh'."""
    x = ctx.input(0)
    approximate = node.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"Gelu approximate='{approximate}' is not valid")
    emit_unary(ctx, "GELU", x, out=unary_output(ctx, x), approximate=approximate == "tanh")


@lowering("Gelu", domain="com.microsoft", onnx_dtypes=FLOATS)
def lower_ms_gelu(node: NodeView, ctx: LowerContext) -> None:
    """ONNX Runtime's Gelu (erf form); also what the frontend fuses erf-GELU formulas into."""
    x = ctx.input(0)
    emit_unary(ctx, "GELU", x, out=unary_output(ctx, x), approximate=False)


@lowering("FastGelu", domain="com.microsoft", onnx_dtypes=FLOATS)
def lower_ms_fast_gelu(node: NodeView, ctx: LowerContext) -> None:
    """ONNX Runtime's FastGelu: tanh-approximated GELU of ``x (+ bias)``."""
    x = ctx.input(0)
    if ctx.has_input(1):
        x = emit_binary(ctx, "ADD", x, ctx.input(1), hint="biased")
    emit_unary(ctx, "GELU", x, out=unary_output(ctx, x), approximate=True)


def _erf(ctx: LowerContext, x: Tensor, out: Tensor) -> Tensor:
    """erf(x) from builtins: clamp to [-4, 4], then x * P(x^2) / Q(x^2) by Horner's rule."""
    c = emit_binary(ctx, "MINIMUM", x, scalar(ctx, _ERF_CLAMP, x.dtype, "clamp_hi"), hint="clamped_hi")
    c = emit_binary(ctx, "MAXIMUM", c, scalar(ctx, -_ERF_CLAMP, x.dtype, "clamp_lo"), hint="clamped")
    x2 = emit_binary(ctx, "MUL", c, c, hint="x2")

    def horner(coeffs: tuple[float, ...], hint: str) -> Tensor:
        acc = emit_binary(ctx, "MUL", x2, scalar(ctx, coeffs[0], x.dtype, f"{hint}_c"), hint=hint)
        for k, coeff in enumerate(coeffs[1:]):
            acc = emit_binary(ctx, "ADD", acc, scalar(ctx, coeff, x.dtype, f"{hint}_c"), hint=hint)
            if k < len(coeffs) - 2:
                acc = emit_binary(ctx, "MUL", acc, x2, hint=hint)
        return acc

    p = emit_binary(ctx, "MUL", horner(_ERF_P, "p"), c, hint="xp")
    return emit_binary(ctx, "DIV", p, horner(_ERF_Q, "q"), out=out)


@lowering("Erf", since=9, onnx_dtypes=FLOATS + ("int8", "int16", "int32", "int64", "uint8", "uint16",
                                                 "uint32", "uint64"))
def lower_erf(node: NodeView, ctx: LowerContext) -> None:
    """Erf by a float32-accurate rational approximation (LiteRT has no ERF builtin)."""
    x = ctx.input(0)
    _erf(ctx, x, unary_output(ctx, x))
