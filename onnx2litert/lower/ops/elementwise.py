"""Elementwise arithmetic with ONNX (numpy) broadcasting, and Cast.

Ops: Add, Sub, Mul, Div, Pow, Sqrt, Exp, Log, Abs, Neg, Reciprocal, Min, Max, Sum, Mean, Cast, CastLike.

LiteRT's ADD/SUB/MUL/DIV/MAXIMUM/MINIMUM/POW kernels broadcast numpy-style across inputs of
different ranks (checked up to rank 7), so binary ops need no reshapes. Integer support was
checked kernel by kernel: ADD/SUB/MUL/MAXIMUM/MINIMUM/NEG take int32 and int64, DIV and ABS
only int32 (DIV int32 truncates toward zero like ONNX). Abs on int64 is built from
MAXIMUM(x, NEG(x)). The small ``emit_*`` helpers here are shared with ``activation.py``.

int8/uint8/int16/uint16 (which crash or need quantization in the LiteRT kernels), uint32 and
float16 are computed exactly in a wider type and CAST back (``WIDER``, ``widen``, ``narrow``);
checked: CAST between integer types wraps modulo 2^width, int32/int64 ADD/SUB/MUL wrap, and
BITCAST moves uint64 to int64 and back. Cast/CastLike are registered for every definition up to
opset 28 (the newer ones only add types LiteRT lacks and float8-only attributes).

bfloat16: CAST converts to and from it (round to nearest even, checked bit for bit); other
families run their float32 lowering on it through ``via_float32`` where that is exact.
"""
from __future__ import annotations

import functools
from typing import Callable

import ml_dtypes
import numpy as np
from onnx import helper

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import ALL_NUMERIC, FLOATS, lowering

_F32 = np.dtype(np.float32)
_INTS_32_64 = ("int32", "int64")
# Opcodes whose options table carries a fused activation (always NONE here; a pass may fuse).
_FUSABLE = {"ADD", "SUB", "MUL", "DIV"}

_BINARY = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL", "Div": "DIV"}
_UNARY = {"Sqrt": "SQRT", "Exp": "EXP", "Log": "LOG", "Neg": "NEG"}
_VARIADIC = {"Max": "MAXIMUM", "Min": "MINIMUM", "Sum": "ADD", "Mean": "ADD"}

# ONNX Cast target types LiteRT's CAST kernel was verified to convert exactly like ORT.
CAST_DTYPES = ("float32", "float16", "float64", "int32", "int64", "int8", "int16", "uint8", "uint16",
               "uint32", "bool", "bfloat16")
_BF16 = np.dtype(ml_dtypes.bfloat16)
_ROUND_MODES = ("up", "down", "nearest")


# -- helpers shared by the activation family ---------------------------------------------------

def scalar(ctx: LowerContext, value: float | int, dtype: np.dtype | type = np.float32,
           hint: str = "scalar") -> Tensor:
    """A rank-0 constant of ``dtype`` (broadcasts against any tensor)."""
    return ctx.new_const(np.asarray(value, dtype=dtype), hint=hint)


def emit_unary(ctx: LowerContext, opcode: str, x: Tensor, out: Tensor | None = None,
               hint: str = "t", **options: object) -> Tensor:
    """Emit a shape- and dtype-preserving single-input op; return its output."""
    return ctx.emit1(opcode, [x], x.shape, x.dtype, hint, out, **options)


def emit_binary(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor, out: Tensor | None = None,
                hint: str = "t") -> Tensor:
    """Emit a broadcasting binary op (output dtype = ``a``'s dtype); return its output."""
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    options = {"fusedActivationFunction": "NONE"} if opcode in _FUSABLE else {}
    return ctx.emit1(opcode, [a, b], shape, a.dtype, hint, out, **options)


def emit_copy(ctx: LowerContext, x: Tensor, out: Tensor) -> Tensor:
    """Copy ``x`` into ``out`` (an identity op: RESHAPE to the same shape)."""
    return ctx.reshape(x, x.shape, out=out)


def unary_output(ctx: LowerContext, x: Tensor) -> Tensor:
    """ONNX output 0 of a shape-preserving op on ``x``."""
    return ctx.output(0, x.shape, x.dtype)


def broadcast_output(ctx: LowerContext, tensors: list[Tensor]) -> Tensor:
    """ONNX output 0 of a broadcasting op over ``tensors`` (dtype of the first)."""
    shape = tuple(np.broadcast_shapes(*(t.shape for t in tensors)))
    return ctx.output(0, shape, tensors[0].dtype)


def _same_dtype(ctx: LowerContext, tensors: list[Tensor]) -> None:
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1:
        raise ctx.fail(Reason.INVALID_MODEL,
                       f"inputs have different dtypes ({', '.join(sorted(d.name for d in dtypes))})")


def _uniform_value(value: np.ndarray) -> float | None:
    """The single value of a constant whose elements are all equal, else None."""
    flat = np.asarray(value).reshape(-1)
    if flat.size == 0 or not np.all(flat == flat[0]):
        return None
    return float(flat[0])


# -- exact computation in a wider type ----------------------------------------------------------

# dtype -> the type its values are computed in where LiteRT has no kernel for it. Every value
# converts exactly; results are narrowed back with CAST, which wraps integers modulo 2^width like
# ONNX Runtime and rounds float32 to float16 (or bfloat16) once. For +, -, *, /, sqrt on float16
# and bfloat16 operands the float32 result rounded to the narrow type is the correctly rounded
# narrow result (24 >= 2 * 11 + 2 bits, and 24 >= 2 * 8 + 2), so the double rounding is harmless.
# bfloat16 is in WIDER but not in WIDENED: families opt in to it explicitly.
WIDER = {np.dtype(np.int8): np.dtype(np.int32), np.dtype(np.uint8): np.dtype(np.int32),
         np.dtype(np.int16): np.dtype(np.int32), np.dtype(np.uint16): np.dtype(np.int32),
         np.dtype(np.uint32): np.dtype(np.int64), np.dtype(np.float16): _F32, _BF16: _F32}
_I64 = np.dtype(np.int64)
_U64 = np.dtype(np.uint64)
WIDENED = ("int8", "uint8", "int16", "uint16", "uint32", "float16")


def widen(ctx: LowerContext, t: Tensor, dtype: np.dtype, hint: str = "wide") -> Tensor:
    """``t`` converted (exactly) to ``dtype``: numpy for constants, CAST or uint64 BITCAST otherwise."""
    dtype = np.dtype(dtype)
    if t.dtype == dtype:
        return t
    if t.is_const:
        data = t.data.view(np.int64) if t.dtype == _U64 and dtype == _I64 else t.data.astype(dtype)
        return ctx.new_const(data, hint=hint)
    if t.dtype == _U64 and dtype == _I64:
        return ctx.emit1("BITCAST", [t], t.shape, _I64, hint)
    return ctx.emit1("CAST", [t], t.shape, dtype, hint, inDataType=t.dtype, outDataType=dtype)


def via_float32(fn: Callable[[NodeView, LowerContext], None]) -> Callable[[NodeView, LowerContext], None]:
    """Run a float32 lowering on bfloat16 inputs/outputs (see :func:`float32_route`)."""
    return float32_route(_BF16)(fn)


def float32_route(*narrow_dtypes: np.dtype) -> Callable:
    """Decorator: run a float32 lowering on ``narrow_dtypes`` inputs/outputs: CAST in, compute in
    float32, CAST out (bfloat16 via :func:`via_float32`; float16 where a lowering opts in).

    bfloat16 -> float32 is exact and float32 -> bfloat16 rounds to nearest even once, so this is
    exact for every op whose float32 result, rounded to bfloat16, is the bfloat16 result: data
    movement, selection and comparison (values are carried unchanged), and correctly rounded
    arithmetic (+, -, *, /, sqrt; see WIDER). The same holds for float16. Lowerings whose inputs
    and outputs are not of ``narrow_dtypes`` run untouched. The wrapper swaps the float32 copies in
    for the node's ONNX values only while ``fn`` runs.
    """

    narrow_set = {np.dtype(d) for d in narrow_dtypes}

    def decorate(fn: Callable[[NodeView, LowerContext], None]) -> Callable[[NodeView, LowerContext], None]:
        @functools.wraps(fn)
        def wrapped(node: NodeView, ctx: LowerContext) -> None:
            graph = ctx.graph
            ins = [name for i, name in enumerate(node.inputs)
                   if ctx.has_input(i) and ctx.input(i).dtype in narrow_set]
            outs = {name: graph.dtypes[name] for name in node.outputs if name and graph.dtypes.get(name) in narrow_set}
            if not ins and not outs:
                fn(node, ctx)
                return
            originals = {name: graph.value(name) for name in ins}
            for name, t in originals.items():
                graph.values[name] = widen(ctx, t, _F32, f"{t.dtype.name}_as_f32")
            for name in outs:
                graph.dtypes[name] = _F32
            try:
                fn(node, ctx)
            finally:
                graph.values.update(originals)
                graph.dtypes.update(outs)
            for name, dtype in outs.items():
                y = graph.values.get(name)
                if y is None or y.dtype != _F32:
                    raise ctx.fail(Reason.INTERNAL_ERROR, f"output '{name}' was not produced in float32")
                if y.is_const:  # a value known at conversion time is rounded by numpy (round to nearest even)
                    graph.values[name] = ctx.new_const(y.data.astype(dtype), hint=f"{dtype.name}_value")
                    continue
                # The narrow tensor takes the ONNX name; the float32 result becomes a temporary.
                out = Tensor(y.name, y.shape, dtype, shape_signature=y.shape_signature)
                y.name = graph.unique(f"{y.name}/float32")
                graph.values[name] = out
                ctx.emit("CAST", [y], [out], inDataType=_F32, outDataType=dtype)

        return wrapped

    return decorate


def narrow(ctx: LowerContext, t: Tensor, out: Tensor) -> None:
    """Write ``t`` into ``out`` of a narrower dtype (integers wrap; uint64 is a BITCAST from int64)."""
    if t.dtype == out.dtype:
        emit_copy(ctx, t, out)
    elif out.dtype == _U64 and t.dtype == _I64:
        ctx.emit("BITCAST", [t], [out])
    else:
        ctx.emit("CAST", [t], [out], inDataType=t.dtype, outDataType=out.dtype)


def unsigned_less(ctx: LowerContext, a: Tensor, b: Tensor, hint: str = "less", out: Tensor | None = None) -> Tensor:
    """a < b for uint64 values held (BITCAST) in int64 ``a`` and ``b``, as a bool tensor.

    Where the top bits differ the operand with the top bit set is the larger; otherwise the
    signed comparison orders them correctly.
    """
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    zero = scalar(ctx, 0, _I64, "zero")
    a_top = ctx.emit1("LESS", [a, zero], a.shape, np.bool_, f"{hint}_a_top")
    b_top = ctx.emit1("LESS", [b, zero], b.shape, np.bool_, f"{hint}_b_top")
    differ = ctx.emit1("NOT_EQUAL", [a_top, b_top], shape, np.bool_, f"{hint}_differ")
    signed = ctx.emit1("LESS", [a, b], shape, np.bool_, f"{hint}_signed")
    # SELECT_V2 broadcasts its three inputs.
    return ctx.emit1("SELECT_V2", [differ, b_top, signed], shape, np.bool_, hint, out)


# -- binary ------------------------------------------------------------------------------------

_ARITH_NATIVE = ("float32", "int32", "int64")
_ARITH_DTYPES = _ARITH_NATIVE + WIDENED + ("uint64", "bfloat16")
_DIV_DTYPES = ("float32", "int32", "int8", "uint8", "int16", "uint16", "float16", "bfloat16")


@lowering("Add", "Sub", "Mul", since=7, onnx_dtypes=ALL_NUMERIC, dtypes=_ARITH_DTYPES, verified=_ARITH_DTYPES)
@lowering("Div", since=7, onnx_dtypes=ALL_NUMERIC, dtypes=_DIV_DTYPES, verified=_DIV_DTYPES)
def lower_binary(node: NodeView, ctx: LowerContext) -> None:
    """Add/Sub/Mul/Div with numpy broadcasting (opset >= 7; older ones used axis/broadcast attrs).

    Types without kernels are computed exactly in a wider type (see WIDER) and narrowed back;
    uint64 Add/Sub/Mul run in int64 (BITCAST), whose wrap-around arithmetic is the same modulo 2^64;
    uint32 Mul uses the uint32 MUL kernel (which wraps). Integer Div truncates toward zero.
    """
    a, b = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, [a, b])
    opcode = _BINARY[node.op_type]
    out = broadcast_output(ctx, [a, b])
    dtype = a.dtype
    if dtype.name in _ARITH_NATIVE and not (opcode == "DIV" and dtype == _I64):
        emit_binary(ctx, opcode, a, b, out=out)
        return
    if opcode == "MUL" and dtype == np.uint32:
        emit_binary(ctx, opcode, a, b, out=out)
        return
    if dtype == _U64 and opcode != "DIV":
        wide = _I64
    elif dtype in WIDER and not (opcode == "DIV" and dtype == np.uint32):
        wide = WIDER[dtype]
        if opcode == "MUL" and dtype == np.uint16:
            wide = _I64  # 65535^2 overflows int32
    else:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"{node.op_type} on {dtype.name} has no exact LiteRT form")
    y = emit_binary(ctx, opcode, widen(ctx, a, wide, "a_wide"), widen(ctx, b, wide, "b_wide"), hint="wide_result")
    narrow(ctx, y, out)


# Exponents computed from MUL / SQRT / DIV (XNNPACK runs them; POW runs only in the builtin kernel,
# ~30x slower): at most 3 roundings, so within a few float32 ulps of std::pow. Negative half
# integers are left to POW: 1/sqrt(-0) would give -inf where pow gives +inf.
_POW_BY_PRODUCTS = (1.5, 2.5, 3.0, -1.0, -2.0, -3.0)


def _pow_by_products(ctx: LowerContext, x: Tensor, value: float, out: Tensor) -> Tensor:
    """x^value = x^n * sqrt(x)^h (n = |value| rounded down, h = its half), inverted for a negative value.

    One IEEE corner differs: pow(-inf, 1.5 or 2.5) is +inf in C, this gives NaN (sqrt(-inf)).
    """
    n, half = divmod(abs(value), 1.0)
    factors = [x] * int(n) + ([emit_unary(ctx, "SQRT", x, hint="sqrt")] if half else [])
    acc = factors[0]
    for k, f in enumerate(factors[1:], start=2):
        last = value > 0 and k == len(factors)
        acc = emit_binary(ctx, "MUL", acc, f, hint="pow", out=out if last else None)
    if value > 0:
        return acc  # every positive exponent listed has at least two factors, the last one wrote out
    return emit_binary(ctx, "DIV", scalar(ctx, 1.0, x.dtype, "one"), acc, out=out)


@lowering("Pow", since=7, onnx_dtypes=FLOATS + ("int32", "int64"), dtypes=("float32",), verified=("float32",))
def lower_pow(node: NodeView, ctx: LowerContext) -> None:
    """Pow with a float32 base; exponent 2 and 0.5 become exact MUL / SQRT.

    From opset 12 the exponent may have another dtype than the base: a constant exponent is
    converted at conversion time, a computed one with a CAST.
    """
    x = ctx.input(0)
    out = broadcast_output(ctx, [x, ctx.input(1)])
    exponent = ctx.const(1)
    if exponent is not None:
        exp_shape = exponent.shape
        if tuple(np.broadcast_shapes(x.shape, exp_shape)) == x.shape:
            value = _uniform_value(exponent)
            # std::pow(x, 2) and sqrt are correctly rounded, so these are bit-exact rewrites.
            if value == 2.0:
                emit_binary(ctx, "MUL", x, x, out=out)
                return
            if value == 0.5:
                emit_unary(ctx, "SQRT", x, out=out)
                return
            if value in _POW_BY_PRODUCTS:
                _pow_by_products(ctx, x, value, out)
                return
        e = ctx.new_const(np.asarray(exponent).astype(np.float32), hint="exponent")
    else:
        e = ctx.input(1)
        if e.dtype != _F32:
            if e.dtype.name not in CAST_DTYPES:
                raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"exponent dtype {e.dtype.name} cannot be cast to float32")
            e = ctx.emit1("CAST", [e], e.shape, _F32, "exponent_f32",
                          inDataType=e.dtype, outDataType=_F32)
    emit_binary(ctx, "POW", x, e, out=out)


# -- unary -------------------------------------------------------------------------------------

@lowering("Exp", "Log", onnx_dtypes=FLOATS)
@lowering("Sqrt", onnx_dtypes=FLOATS, dtypes=("float32", "bfloat16"), verified=("float32", "bfloat16"))
@lowering("Neg", onnx_dtypes=FLOATS + ("int8", "int16", "int32", "int64"),
          dtypes=("float32",) + _INTS_32_64 + ("bfloat16",), verified=("float32",) + _INTS_32_64 + ("bfloat16",))
@via_float32  # exact for bfloat16: NEG is exact and SQRT correctly rounded (see WIDER)
def lower_unary(node: NodeView, ctx: LowerContext) -> None:
    """Single LiteRT builtins: SQRT, EXP, LOG (float32) and NEG (float32/int32/int64)."""
    x = ctx.input(0)
    emit_unary(ctx, _UNARY[node.op_type], x, out=unary_output(ctx, x))


@lowering("Abs", onnx_dtypes=ALL_NUMERIC, dtypes=("float32",) + _INTS_32_64 + ("bfloat16",),
          verified=("float32",) + _INTS_32_64 + ("bfloat16",))
@via_float32
def lower_abs(node: NodeView, ctx: LowerContext) -> None:
    """ABS; int64 (no ABS kernel) as MAXIMUM(x, NEG(x))."""
    x = ctx.input(0)
    out = unary_output(ctx, x)
    if x.dtype == np.int64:
        emit_binary(ctx, "MAXIMUM", x, emit_unary(ctx, "NEG", x, hint="neg"), out=out)
    else:
        emit_unary(ctx, "ABS", x, out=out)


@lowering("Reciprocal", onnx_dtypes=FLOATS)
def lower_reciprocal(node: NodeView, ctx: LowerContext) -> None:
    """1 / x as DIV (correctly rounded, like ORT)."""
    x = ctx.input(0)
    emit_binary(ctx, "DIV", scalar(ctx, 1.0, x.dtype, "one"), x, out=unary_output(ctx, x))


# -- variadic ----------------------------------------------------------------------------------

_MINMAX_DTYPES = ("float32", "int32", "int64") + WIDENED + ("uint64", "bfloat16")


@lowering("Max", "Min", since=6, onnx_dtypes=ALL_NUMERIC, dtypes=_MINMAX_DTYPES, verified=_MINMAX_DTYPES)
@lowering("Sum", "Mean", since=6, onnx_dtypes=FLOATS)
def lower_variadic(node: NodeView, ctx: LowerContext) -> None:
    """Max/Min/Sum/Mean over 1+ inputs with broadcasting, folded left to right.

    Opset 6 required equal shapes; broadcasting (opset 8) is a superset, so one lowering serves both.
    Max/Min of types without kernels run in a wider type (exact: the result is one of the inputs);
    uint64 selects with an unsigned comparison of the int64 bit patterns.
    """
    xs = [ctx.input(i) for i in range(len(node.inputs)) if ctx.has_input(i)]
    if not xs:
        raise ctx.fail(Reason.INVALID_MODEL, f"{node.op_type} needs at least one input")
    _same_dtype(ctx, xs)
    out = broadcast_output(ctx, xs)
    if len(xs) == 1:
        emit_copy(ctx, xs[0], out)
        return
    opcode = _VARIADIC[node.op_type]
    dtype = xs[0].dtype
    if opcode in ("MAXIMUM", "MINIMUM") and dtype == _U64:
        acc = widen(ctx, xs[0], _I64, "x_i64")
        for i, x in enumerate(xs[1:], start=1):
            x64 = widen(ctx, x, _I64, "x_i64")
            take_x = unsigned_less(ctx, acc, x64, "x_larger") if opcode == "MAXIMUM" else \
                unsigned_less(ctx, x64, acc, "x_smaller")
            shape = tuple(np.broadcast_shapes(acc.shape, x64.shape))
            acc = ctx.emit1("SELECT_V2", [take_x, x64, acc], shape, _I64, "acc")
        narrow(ctx, acc, out)
        return
    wide = WIDER.get(dtype) if opcode in ("MAXIMUM", "MINIMUM") else None
    if wide is not None:
        acc = widen(ctx, xs[0], wide, "x_wide")
        for x in xs[1:]:
            acc = emit_binary(ctx, opcode, acc, widen(ctx, x, wide, "x_wide"), hint="acc")
        narrow(ctx, acc, out)
        return
    mean = node.op_type == "Mean"
    acc = xs[0]
    for i, x in enumerate(xs[1:], start=2):
        last = i == len(xs) and not mean
        acc = emit_binary(ctx, opcode, acc, x, out=out if last else None, hint="acc")
    if mean:
        emit_binary(ctx, "DIV", acc, scalar(ctx, len(xs), acc.dtype, "count"), out=out)


# -- cast ----------------------------------------------------------------------------------------

def _cast_target(ctx: LowerContext, to: object) -> np.dtype:
    """The numpy dtype of ONNX tensor type ``to``, or an unsupported_dtype failure."""
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(int(to)))
    except (KeyError, TypeError, ValueError):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"Cast to ONNX type {to} is not supported") from None


def _check_round_mode(node: NodeView, ctx: LowerContext) -> None:
    """``round_mode`` (opset 24+) only affects casts to float8e8m0, which are refused anyway."""
    mode = node.attr("round_mode", "up")
    if mode not in _ROUND_MODES:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"round_mode must be one of {', '.join(_ROUND_MODES)}, got '{mode}'")


def emit_cast(ctx: LowerContext, x: Tensor, target: np.dtype, out: Tensor) -> None:
    """CAST ``x`` into ``out`` (of dtype ``target``) where LiteRT converts exactly like ONNX."""
    if target.name not in CAST_DTYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                       f"Cast to {target.name} is not supported; LiteRT CAST targets: {', '.join(CAST_DTYPES)}")
    if x.dtype == np.float64 and target == np.float16:
        # LiteRT converts double -> float -> half: two roundings, not the single one ONNX specifies.
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "Cast float64 -> float16 rounds twice in LiteRT (via float32)")
    if x.dtype == _BF16 and target.kind not in "fV":
        # bfloat16 -> float32 is exact, so going through float32 gives the float32 CAST's (verified)
        # truncation and wrap-around for every integer and bool target.
        x = ctx.emit1("CAST", [x], x.shape, _F32, "bf16_f32", inDataType=x.dtype, outDataType=_F32)
    # Casts to bfloat16 round to nearest even; from int32/int64/uint32/float64 the value is first
    # rounded to float32, exactly as ONNX Runtime and the ONNX reference (ml_dtypes) do.
    ctx.emit("CAST", [x], [out], inDataType=x.dtype, outDataType=target)


@lowering("Cast", since=6, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=CAST_DTYPES,
          verified=CAST_DTYPES)
@lowering("Cast", since=24, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=CAST_DTYPES,
          verified=CAST_DTYPES)
@lowering("Cast", since=25, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=CAST_DTYPES,
          verified=CAST_DTYPES)
@lowering("Cast", since=28, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=CAST_DTYPES,
          verified=CAST_DTYPES)
def lower_cast(node: NodeView, ctx: LowerContext) -> None:
    """CAST between float32, float16, float64, bool and the integer types LiteRT holds.

    LiteRT converts with static_cast like ORT: float -> int truncates, int -> narrower int wraps,
    x -> bool is x != 0. ``saturate`` only applies to float8 targets and ``round_mode`` (opset 24)
    to float8e8m0 targets, neither of which LiteRT has; opsets 25 and 28 only added types.
    """
    if node.opset >= 24:
        _check_round_mode(node, ctx)
    x = ctx.input(0)
    target = _cast_target(ctx, node.attr("to"))
    emit_cast(ctx, x, target, ctx.output(0, x.shape, target))


@lowering("CastLike", since=15, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=CAST_DTYPES,
          verified=CAST_DTYPES, zero_size_inputs=True)  # a zero-sized `like` is fine: only its dtype is read
@lowering("CastLike", since=24, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=CAST_DTYPES,
          verified=CAST_DTYPES, zero_size_inputs=True)
@lowering("CastLike", since=25, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=CAST_DTYPES,
          verified=CAST_DTYPES, zero_size_inputs=True)
def lower_cast_like(node: NodeView, ctx: LowerContext) -> None:
    """Cast input 0 to the dtype of input 1 (only its dtype is used, never its values)."""
    if node.opset >= 24:
        _check_round_mode(node, ctx)
    x = ctx.input(0)
    target = ctx.input(1).dtype
    emit_cast(ctx, x, target, ctx.output(0, x.shape, target))
