"""Elementwise arithmetic with ONNX (numpy) broadcasting, and Cast.

Ops: Add, Sub, Mul, Div, Pow, Sqrt, Exp, Log, Abs, Neg, Reciprocal, Min, Max, Sum, Mean, Cast.

LiteRT's ADD/SUB/MUL/DIV/MAXIMUM/MINIMUM/POW kernels broadcast numpy-style across inputs of
different ranks (checked up to rank 7), so binary ops need no reshapes. Integer support was
checked kernel by kernel: ADD/SUB/MUL/MAXIMUM/MINIMUM/NEG take int32 and int64, DIV and ABS
only int32 (DIV int32 truncates toward zero like ONNX). Abs on int64 is built from
MAXIMUM(x, NEG(x)). The small ``emit_*`` helpers here are shared with ``activation.py``.
"""
from __future__ import annotations

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
CAST_DTYPES = ("float32", "float16", "int32", "int64", "int8", "uint8", "bool")


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


# -- binary ------------------------------------------------------------------------------------

@lowering("Add", "Sub", "Mul", since=7, onnx_dtypes=ALL_NUMERIC, dtypes=("float32",) + _INTS_32_64,
          verified=("float32",) + _INTS_32_64)
@lowering("Div", since=7, onnx_dtypes=ALL_NUMERIC, dtypes=("float32", "int32"),
          verified=("float32", "int32"))
def lower_binary(node: NodeView, ctx: LowerContext) -> None:
    """Add/Sub/Mul/Div with numpy broadcasting (opset >= 7; older ones used axis/broadcast attrs)."""
    a, b = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, [a, b])
    emit_binary(ctx, _BINARY[node.op_type], a, b, out=broadcast_output(ctx, [a, b]))


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

@lowering("Sqrt", "Exp", "Log", onnx_dtypes=FLOATS)
@lowering("Neg", onnx_dtypes=FLOATS + ("int8", "int16", "int32", "int64"), dtypes=("float32",) + _INTS_32_64,
          verified=("float32",) + _INTS_32_64)
def lower_unary(node: NodeView, ctx: LowerContext) -> None:
    """Single LiteRT builtins: SQRT, EXP, LOG (float32) and NEG (float32/int32/int64)."""
    x = ctx.input(0)
    emit_unary(ctx, _UNARY[node.op_type], x, out=unary_output(ctx, x))


@lowering("Abs", onnx_dtypes=ALL_NUMERIC, dtypes=("float32",) + _INTS_32_64, verified=("float32",) + _INTS_32_64)
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

@lowering("Max", "Min", since=6, onnx_dtypes=ALL_NUMERIC, dtypes=("float32",) + _INTS_32_64,
          verified=("float32",) + _INTS_32_64)
@lowering("Sum", "Mean", since=6, onnx_dtypes=FLOATS)
def lower_variadic(node: NodeView, ctx: LowerContext) -> None:
    """Max/Min/Sum/Mean over 1+ inputs with broadcasting, folded left to right.

    Opset 6 required equal shapes; broadcasting (opset 8) is a superset, so one lowering serves both.
    """
    xs = [ctx.input(i) for i in range(len(node.inputs)) if ctx.has_input(i)]
    if not xs:
        raise ctx.fail(Reason.INVALID_MODEL, f"{node.op_type} needs at least one input")
    _same_dtype(ctx, xs)
    out = broadcast_output(ctx, xs)
    opcode = _VARIADIC[node.op_type]
    mean = node.op_type == "Mean" and len(xs) > 1
    acc = xs[0]
    for i, x in enumerate(xs[1:], start=2):
        last = i == len(xs) and not mean
        acc = emit_binary(ctx, opcode, acc, x, out=out if last else None, hint="acc")
    if mean:
        emit_binary(ctx, "DIV", acc, scalar(ctx, len(xs), acc.dtype, "count"), out=out)
    elif len(xs) == 1:
        emit_copy(ctx, xs[0], out)


# -- cast --------------------------------------------------------------------------------------

@lowering("Cast", since=6, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=CAST_DTYPES,
          verified=CAST_DTYPES)
def lower_cast(node: NodeView, ctx: LowerContext) -> None:
    """CAST between float32, float16, int32, int64, int8, uint8 and bool.

    LiteRT converts with static_cast like ORT: float -> int truncates, x -> bool is x != 0.
    """
    x = ctx.input(0)
    to = node.attr("to")
    try:
        target = np.dtype(helper.tensor_dtype_to_np_dtype(int(to)))
    except (KeyError, TypeError, ValueError):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"Cast to ONNX type {to} is not supported") from None
    if target.name not in CAST_DTYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                       f"Cast to {target.name} is not supported; LiteRT CAST targets: {', '.join(CAST_DTYPES)}")
    out = ctx.output(0, x.shape, target)
    ctx.emit("CAST", [x], [out], inDataType=x.dtype, outDataType=target)
