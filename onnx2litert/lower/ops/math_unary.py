"""Rounding, modulo, trigonometric and hyperbolic functions (float32 unless stated).

Ops: Floor, Ceil, Round, Mod, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh, Acosh, Atanh.

Kernel facts (checked in the stock interpreter with and without XNNPACK): FLOOR and CEIL are
exact; ROUND rounds half to even like ONNX; SIN/COS are within 3e-7 absolute (XNNPACK) of the
true value; ATAN2 runs in the builtin kernels and is accurate to float32 rounding; FLOOR_MOD
takes float32/int32/int64 and follows the sign of the divisor (ONNX Mod with fmod=0).

Functions LiteRT lacks are built from these with formulas that avoid overflow and cancellation
where the error bound (1e-5 * max(1, max|ref|), absolute) would notice:

- Tan   = sin(r)/cos(r) or -cos(r)/sin(r) after Cody-Waite reduction r = x - k pi/2 (a plain
          SIN/COS ratio loses all accuracy next to the poles: XNNPACK's COS(3pi/2) is 0);
          above |x| = 8192 it falls back to SIN(x)/COS(x).
- Atan  = Cephes' atanf polynomial after two reductions, from ops XNNPACK runs (ATAN2 runs
          only in the builtin kernel, ~10x slower, and cut the delegated graph): t = min(a, 1/a)
          for a = |x|, then (t-1)/(t+1) for t > tan(pi/8). The branches are blended with 0/1
          masks made by saturating MUL/MINIMUM (no comparison or SELECT, which XNNPACK lacks),
          and the sign comes from clamp(x * 2^126, -1, 1). Within 2e-7 relative of atan.
  Asin  = ATAN2(x, sqrt((1-x)(1+x)));  Acos = ATAN2(sqrt((1-x)(1+x)), x).
- Sinh/Cosh of a = |x|: with p = (e^(a/2) / 2) * e^(a/2) = e^a / 2 (finite up to the overflow
          of sinh itself), sinh = p - 0.25/p, cosh = p + 0.25/p; Sinh takes the sign of x.
- Asinh = sign(x) * log(a + sqrt(a^2 + 1)), and log(2a) for a > 2^20 (a^2 would overflow),
          computed as log(a * 2^-64) + 65 ln 2 (XNNPACK's LOG returns inf above 2^127).
- Acosh = log(x + sqrt((x-1)(x+1))), and log(2x) the same way for x > 2^20.
- Atanh = (log(1+x) - log(1-x)) / 2.
- Mod fmod=1 (C fmod, sign of the dividend): floats as sign(a) * FLOOR_MOD(|a|, |b|) (on
          non-negative operands FLOOR_MOD is exactly fmod); integers as FLOOR_MOD(a, b) - b where
          that remainder is non-zero and the operand signs differ (exact, no |INT_MIN| overflow).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import ALL_NUMERIC, FLOATS, lowering
from .elementwise import WIDENED, WIDER, emit_binary, emit_unary, narrow, scalar, unary_output, widen

_F32 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)
# bfloat16 runs in float32 like float16 (WIDER): fmod is exact, so its result is a bfloat16 value.
_MOD_DTYPES = ("float32", "int32", "int64") + WIDENED + ("bfloat16",)
# Above this, a^2 + 1 == a^2 in float32 and asinh/acosh(a) == log(2a) to float32 precision.
_LARGE = float(2 ** 20)
_LN2 = math.log(2.0)
# pi/2 = C1 + C2 + C3 (Cody-Waite): C1 has 8 significant bits, C2 11, so k*C1, k*C2 are exact.
_PIO2_PARTS = (1.5703125, 4.837512969970703125e-4, 7.54978995489188216e-8)

_BUILTIN = {"Floor": "FLOOR", "Ceil": "CEIL", "Round": "ROUND", "Sin": "SIN", "Cos": "COS"}


# -- small helpers -----------------------------------------------------------------------------

def _bin(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor | float, hint: str = "t",
         out: Tensor | None = None) -> Tensor:
    """Binary op where ``b`` may be a Python float (a float32 scalar constant)."""
    if not isinstance(b, Tensor):
        b = scalar(ctx, b, a.dtype, f"{hint}_c")
    return emit_binary(ctx, opcode, a, b, out=out, hint=hint)


def _rbin(ctx: LowerContext, opcode: str, a: float, b: Tensor, hint: str = "t",
          out: Tensor | None = None) -> Tensor:
    """Binary op with a scalar constant on the left (``a - x``, ``a / x``)."""
    return emit_binary(ctx, opcode, scalar(ctx, a, b.dtype, f"{hint}_c"), b, out=out, hint=hint)


def _sqrt_one_minus_sq(ctx: LowerContext, x: Tensor) -> Tensor:
    """sqrt(1 - x^2) as sqrt((1 - x)(1 + x)): no cancellation near |x| = 1."""
    prod = emit_binary(ctx, "MUL", _rbin(ctx, "SUB", 1.0, x, "one_minus"), _bin(ctx, "ADD", x, 1.0, "one_plus"),
                       hint="one_minus_sq")
    return emit_unary(ctx, "SQRT", prod, hint="cos_part")


# -- builtins ----------------------------------------------------------------------------------

@lowering("Floor", "Ceil", since=6, onnx_dtypes=FLOATS)
@lowering("Round", since=11, onnx_dtypes=FLOATS)
@lowering("Sin", "Cos", since=7, onnx_dtypes=FLOATS)
def lower_builtin_unary(node: NodeView, ctx: LowerContext) -> None:
    """FLOOR, CEIL, ROUND (half to even, as ONNX), SIN, COS."""
    x = ctx.input(0)
    emit_unary(ctx, _BUILTIN[node.op_type], x, out=unary_output(ctx, x))


# -- modulo ------------------------------------------------------------------------------------

@lowering("Mod", since=10, onnx_dtypes=ALL_NUMERIC, dtypes=_MOD_DTYPES, verified=_MOD_DTYPES)
@lowering("Mod", since=28, onnx_dtypes=ALL_NUMERIC, dtypes=_MOD_DTYPES, verified=_MOD_DTYPES)
def lower_mod(node: NodeView, ctx: LowerContext) -> None:
    """fmod=0: FLOOR_MOD (sign of the divisor). fmod=1: sign(a) * FLOOR_MOD(|a|, |b|) for floats.

    Before opset 28 fmod=0 was defined for integers only; opset 28 defines it for floats as
    A - floor(A / B) * B with IEEE special cases, which LiteRT's FLOOR_MOD (std::fmod, then + B
    where the signs differ) follows (zero results may differ in the sign of the zero).
    Types without FLOOR_MOD kernels run in a wider type: the remainder is exact there, and the
    one rounded float16 / bfloat16 addition is correctly rounded via float32.
    """
    a, b = ctx.input(0), ctx.input(1)
    if a.dtype != b.dtype:
        raise ctx.fail(Reason.INVALID_MODEL, f"inputs have different dtypes ({a.dtype.name}, {b.dtype.name})")
    out = ctx.output(0, tuple(np.broadcast_shapes(a.shape, b.shape)), a.dtype)
    fmod = int(node.attr("fmod", 0))
    if fmod not in (0, 1):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"Mod fmod must be 0 or 1, got {fmod}")
    is_float = a.dtype.kind == "f" or a.dtype.name == "bfloat16"
    if fmod == 0 and is_float and node.opset < 28:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       "Mod on floating-point inputs requires fmod=1 before opset 28 (ONNX Runtime rejects fmod=0)")
    wide = WIDER.get(a.dtype)
    target = out
    if wide is not None:
        a, b = widen(ctx, a, wide, "a_wide"), widen(ctx, b, wide, "b_wide")
        target = ctx.tmp(out.shape, wide, "wide_mod")
    if fmod == 0:
        emit_binary(ctx, "FLOOR_MOD", a, b, out=target)
    elif is_float:
        _float_fmod(ctx, a, b, target)
    else:
        _int_fmod(ctx, a, b, target)
    if wide is not None:
        narrow(ctx, target, out)


def _float_fmod(ctx: LowerContext, a: Tensor, b: Tensor, out: Tensor) -> None:
    """fmod(a, b) = sign(a) * FLOOR_MOD(|a|, |b|): on non-negative operands FLOOR_MOD is std::fmod."""
    r = emit_binary(ctx, "FLOOR_MOD", emit_unary(ctx, "ABS", a, hint="abs_a"), emit_unary(ctx, "ABS", b, hint="abs_b"),
                    hint="abs_mod")
    negative = ctx.emit1("LESS", [a, scalar(ctx, 0, a.dtype, "zero")], a.shape, _BOOL, "dividend_negative")
    ctx.emit("SELECT_V2", [negative, emit_unary(ctx, "NEG", r, hint="neg_mod"), r], [out])


def _int_fmod(ctx: LowerContext, a: Tensor, b: Tensor, out: Tensor) -> None:
    """Truncated remainder from the floored one (|a| would overflow for the minimum integer).

    r = FLOOR_MOD(a, b) has the divisor's sign; where it is non-zero and the operands' signs
    differ, the truncated remainder is r - b (|r - b| < |b|, so no overflow).
    """
    r = emit_binary(ctx, "FLOOR_MOD", a, b, hint="floor_mod")
    zero = scalar(ctx, 0, a.dtype, "zero")
    a_neg = ctx.emit1("LESS", [a, zero], a.shape, _BOOL, "a_negative")
    b_neg = ctx.emit1("LESS", [b, zero], b.shape, _BOOL, "b_negative")
    signs_differ = ctx.emit1("NOT_EQUAL", [a_neg, b_neg], r.shape, _BOOL, "signs_differ")
    nonzero = ctx.emit1("NOT_EQUAL", [r, zero], r.shape, _BOOL, "nonzero")
    fix = ctx.emit1("LOGICAL_AND", [signs_differ, nonzero], r.shape, _BOOL, "fix")
    ctx.emit("SELECT_V2", [fix, emit_binary(ctx, "SUB", r, b, hint="shifted"), r], [out])


# -- trigonometric -----------------------------------------------------------------------------

@lowering("Tan", since=7, onnx_dtypes=FLOATS)
def lower_tan(node: NodeView, ctx: LowerContext) -> None:
    """tan with Cody-Waite reduction by pi/2, so the result stays accurate next to the poles.

    k = round(x * 2/pi), r = x - k*pi/2 (pi/2 split in three parts: k*C1 and k*C2 are exact for
    |k| < 2^13, so r keeps its relative accuracy even when it is tiny). Then tan(x) = sin(r)/cos(r)
    for even k and -cos(r)/sin(r) for odd k. Above |x| = 8192 (outside the exact range of the
    split) plain SIN/COS is used.
    """
    x = ctx.input(0)
    out = unary_output(ctx, x)
    k = emit_unary(ctx, "ROUND", _bin(ctx, "MUL", x, 2.0 / math.pi, "x_2_over_pi"), hint="k")
    r = x
    for i, part in enumerate(_PIO2_PARTS):
        r = emit_binary(ctx, "SUB", r, _bin(ctx, "MUL", k, part, f"k_pio2_{i}"), hint=f"reduced_{i}")
    sin_r, cos_r = emit_unary(ctx, "SIN", r, hint="sin_r"), emit_unary(ctx, "COS", r, hint="cos_r")
    odd = ctx.emit1("NOT_EQUAL", [_bin(ctx, "FLOOR_MOD", k, 2.0, "k_mod_2"), scalar(ctx, 0.0, x.dtype, "zero")],
                    x.shape, _BOOL, "k_odd")
    num = ctx.emit1("SELECT_V2", [odd, emit_unary(ctx, "NEG", cos_r, hint="neg_cos_r"), sin_r], x.shape,
                    x.dtype, "num")
    den = ctx.emit1("SELECT_V2", [odd, sin_r, cos_r], x.shape, x.dtype, "den")
    reduced = emit_binary(ctx, "DIV", num, den, hint="tan_reduced")
    direct = emit_binary(ctx, "DIV", emit_unary(ctx, "SIN", x, hint="sin"), emit_unary(ctx, "COS", x, hint="cos"),
                         hint="tan_direct")
    # "|x| <= limit" is false for NaN/inf, which take the direct branch (NaN either way).
    small = ctx.emit1("LESS_EQUAL", [emit_unary(ctx, "ABS", x, hint="abs"), scalar(ctx, 8192.0, x.dtype, "limit")],
                      x.shape, _BOOL, "in_range")
    ctx.emit("SELECT_V2", [small, reduced, direct], [out])


# Cephes atanf: atan(u) ~ u + u^3 * P(u^2) for |u| <= tan(pi/8), coefficients highest first.
_ATAN_P = (8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1)
_TAN_PI_8 = 0.41421356237309503
# Scales the smallest positive difference that occurs in _atan (about 2^-25, near tan(pi/8)) far
# above 1, so MINIMUM(d * scale, 1) is exactly 1 for d > 0 and 0 for d == 0.
_MASK_SCALE = 2.0 ** 100


def _atan(ctx: LowerContext, x: Tensor, out: Tensor) -> Tensor:
    """atan(x) from ABS/DIV/MIN/MAX/MUL/ADD/SUB only (see the module docstring)."""
    def c(v: float, hint: str) -> Tensor:
        return scalar(ctx, v, x.dtype, hint)

    def mul(a: Tensor, b: Tensor, hint: str) -> Tensor:
        return emit_binary(ctx, "MUL", a, b, hint=hint)

    def add(a: Tensor, b: Tensor, hint: str) -> Tensor:
        return emit_binary(ctx, "ADD", a, b, hint=hint)

    def sub(a: Tensor, b: Tensor, hint: str) -> Tensor:
        return emit_binary(ctx, "SUB", a, b, hint=hint)

    def mask(d: Tensor, hint: str) -> Tensor:
        """1 where d > 0, 0 where d == 0 (d >= 0)."""
        return emit_binary(ctx, "MINIMUM", mul(d, c(_MASK_SCALE, "mask_scale"), hint), c(1.0, "one"), hint=hint)

    def blend(m: Tensor, yes: Tensor, no: Tensor, hint: str) -> Tensor:
        """m * yes + (1 - m) * no: exactly one of them for m in {0, 1}."""
        return add(mul(m, yes, hint), mul(sub(c(1.0, "one"), m, hint), no, hint), hint)

    a = emit_unary(ctx, "ABS", x, hint="abs")
    t = emit_binary(ctx, "MINIMUM", a, emit_binary(ctx, "DIV", c(1.0, "one"), a, hint="inv"), hint="t")
    big = mask(sub(a, t, "above_one"), "big")  # |x| > 1: atan = pi/2 - atan(1/|x|)
    mid = mask(emit_binary(ctx, "MAXIMUM", sub(t, c(_TAN_PI_8, "tan_pi_8"), "above"), c(0.0, "zero"),
                           hint="above"), "mid")  # t > tan(pi/8): atan t = pi/4 + atan((t-1)/(t+1))
    shifted = emit_binary(ctx, "DIV", sub(t, c(1.0, "one"), "num"), add(t, c(1.0, "one"), "den"), hint="shifted")
    u = blend(mid, shifted, t, "u")
    z = mul(u, u, "z")
    p = c(_ATAN_P[0], "p")
    for coeff in _ATAN_P[1:]:
        p = add(mul(p, z, "p"), c(coeff, "p"), "p")
    r = add(mul(mul(p, z, "p"), u, "p"), u, "r")
    r = add(r, mul(mid, c(math.pi / 4, "pi_4"), "r"), "r")
    res = blend(big, sub(c(math.pi / 2, "pi_2"), r, "r"), r, "res")
    sign = emit_binary(ctx, "MINIMUM", emit_binary(ctx, "MAXIMUM", mul(x, c(2.0 ** 126, "sign_scale"), "sign"),
                                                   c(-1.0, "minus_one"), hint="sign"), c(1.0, "one"), hint="sign")
    return emit_binary(ctx, "MUL", sign, res, out=out)


@lowering("Asin", "Acos", "Atan", since=7, onnx_dtypes=FLOATS)
def lower_inverse_trig(node: NodeView, ctx: LowerContext) -> None:
    """atan by a polynomial (see _atan); asin = atan2(x, c); acos = atan2(c, x); c = sqrt(1 - x^2)."""
    x = ctx.input(0)
    out = unary_output(ctx, x)
    if node.op_type == "Atan":
        _atan(ctx, x, out)
        return
    if node.op_type == "Asin":
        y, z = x, _sqrt_one_minus_sq(ctx, x)
    else:
        y, z = _sqrt_one_minus_sq(ctx, x), x
    ctx.emit1("ATAN2", [y, z], x.shape, x.dtype, out=out)


# -- hyperbolic --------------------------------------------------------------------------------

@lowering("Sinh", "Cosh", since=9, onnx_dtypes=FLOATS)
def lower_sinh_cosh(node: NodeView, ctx: LowerContext) -> None:
    """p = e^|x| / 2 from e^(|x|/2) (no early overflow); sinh = sign(x)(p - 1/(4p)), cosh = p + 1/(4p)."""
    x = ctx.input(0)
    out = unary_output(ctx, x)
    a = emit_unary(ctx, "ABS", x, hint="abs")
    h = emit_unary(ctx, "EXP", _bin(ctx, "MUL", a, 0.5, "half_abs"), hint="exp_half")
    p = emit_binary(ctx, "MUL", _bin(ctx, "MUL", h, 0.5, "half_exp"), h, hint="half_exp_abs")
    q = _rbin(ctx, "DIV", 0.25, p, "quarter_over_p")
    if node.op_type == "Cosh":
        emit_binary(ctx, "ADD", p, q, out=out)
        return
    s = emit_binary(ctx, "SUB", p, q, hint="sinh_abs")
    emit_binary(ctx, "MUL", s, emit_unary(ctx, "SIGN", x, hint="sign"), out=out)


def _log_x_plus_root(ctx: LowerContext, a: Tensor, radicand_of: Callable[[Tensor], Tensor],
                     out: Tensor | None, hint: str) -> Tensor:
    """log(a + sqrt(radicand_of(a))) for a <= 2^20 (a >= 0), log(2a) above it (and for NaN)."""
    clamped = _bin(ctx, "MINIMUM", a, _LARGE, f"{hint}_clamped")
    root = emit_unary(ctx, "SQRT", radicand_of(clamped), hint=f"{hint}_root")
    near = emit_unary(ctx, "LOG", emit_binary(ctx, "ADD", clamped, root, hint=f"{hint}_arg"), hint=f"{hint}_near")
    # log(2a) = log(a * 2^-64) + 65 ln 2: the scaling is exact and keeps LOG's argument far from
    # the float32 maximum, where XNNPACK's LOG returns inf.
    scaled = _bin(ctx, "MUL", a, 2.0 ** -64, f"{hint}_scaled")
    far = _bin(ctx, "ADD", emit_unary(ctx, "LOG", scaled, hint=f"{hint}_log"), 65 * _LN2, f"{hint}_far")
    # "a <= limit" is false for NaN, which then takes the log(a) branch and stays NaN.
    is_near = ctx.emit1("LESS_EQUAL", [a, scalar(ctx, _LARGE, a.dtype, f"{hint}_limit")], a.shape, _BOOL,
                        f"{hint}_is_near")
    return ctx.emit1("SELECT_V2", [is_near, near, far], a.shape, a.dtype, hint, out)


@lowering("Asinh", since=9, onnx_dtypes=FLOATS)
def lower_asinh(node: NodeView, ctx: LowerContext) -> None:
    """asinh(x) = sign(x) * log(|x| + sqrt(|x|^2 + 1)) (odd, so no cancellation for x < 0)."""
    x = ctx.input(0)
    a = emit_unary(ctx, "ABS", x, hint="abs")

    def radicand(t: Tensor) -> Tensor:
        return _bin(ctx, "ADD", emit_binary(ctx, "MUL", t, t, hint="sq"), 1.0, "sq_plus_one")

    y = _log_x_plus_root(ctx, a, radicand, None, "asinh_abs")
    emit_binary(ctx, "MUL", y, emit_unary(ctx, "SIGN", x, hint="sign"), out=unary_output(ctx, x))


@lowering("Acosh", since=9, onnx_dtypes=FLOATS)
def lower_acosh(node: NodeView, ctx: LowerContext) -> None:
    """acosh(x) = log(x + sqrt((x - 1)(x + 1))) (NaN below 1, like ONNX Runtime)."""
    x = ctx.input(0)

    def radicand(t: Tensor) -> Tensor:
        return emit_binary(ctx, "MUL", _bin(ctx, "SUB", t, 1.0, "minus_one"), _bin(ctx, "ADD", t, 1.0, "plus_one"),
                           hint="sq_minus_one")

    _log_x_plus_root(ctx, x, radicand, unary_output(ctx, x), "acosh")


@lowering("Atanh", since=9, onnx_dtypes=FLOATS)
def lower_atanh(node: NodeView, ctx: LowerContext) -> None:
    """atanh(x) = (log(1 + x) - log(1 - x)) / 2."""
    x = ctx.input(0)
    lp = emit_unary(ctx, "LOG", _bin(ctx, "ADD", x, 1.0, "one_plus"), hint="log_plus")
    lm = emit_unary(ctx, "LOG", _rbin(ctx, "SUB", 1.0, x, "one_minus"), hint="log_minus")
    _bin(ctx, "MUL", emit_binary(ctx, "SUB", lp, lm, hint="diff"), 0.5, "half", out=unary_output(ctx, x))
