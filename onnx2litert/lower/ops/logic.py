"""Comparisons, boolean logic, selection and bitwise ops.

Ops: Equal, Greater, GreaterOrEqual, Less, LessOrEqual, And, Or, Xor, Not, Where, IsNaN, IsInf,
Sign, BitShift, BitwiseAnd, BitwiseOr, BitwiseXor, BitwiseNot.

Kernel facts this module relies on (checked in the stock interpreter, with and without XNNPACK):

- EQUAL/NOT_EQUAL take float32, int32, int64 and bool; GREATER/LESS(_EQUAL) float32, int32 and
  int64 (int8/uint8 need quantization parameters, uint16/uint32 are rejected). All broadcast
  numpy-style up to rank 6 and write bool.
- SELECT_V2 broadcasts condition and both branches (checked up to rank 6).
- SIGN takes float32 and int32 (NaN stays NaN, like ONNX Runtime); int64 is rejected, so int64
  Sign is MINIMUM(MAXIMUM(x, -1), 1).
- BITWISE_XOR and RIGHT_SHIFT take int8/16/32 and uint8/16/32, never 64-bit. RIGHT_SHIFT clamps
  the shift amount to width - 1 whereas ONNX Runtime yields 0 for shifts >= the width, so
  out-of-range shifts are handled explicitly.
- CAST between integer types wraps modulo 2^width (static_cast), MUL on uint32 wraps.

Bitwise And/Or have no kernels; they use the exact integer identities
``a + b == (a ^ b) + 2 (a & b)`` and ``a | b == (a ^ b) + (a & b)``, so
``a & b = (a + b - (a ^ b)) / 2`` and ``a | b = (a + b + (a ^ b)) / 2``, evaluated in a wider
integer type (these hold for two's complement values too, read as sign-extended integers).
"""
from __future__ import annotations

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import ALL_NUMERIC, FLOATS, INTS, lowering
from .elementwise import emit_binary, emit_unary, scalar

_BOOL = np.dtype(np.bool_)
_I32 = np.dtype(np.int32)
_I64 = np.dtype(np.int64)
_U32 = np.dtype(np.uint32)

_CMP_DTYPES = ("float32", "int32", "int64")
# Integer types BITWISE_XOR / RIGHT_SHIFT accept.
_BIT_DTYPES = ("int8", "int16", "int32", "uint8", "uint16", "uint32")
_SHIFT_DTYPES = ("uint8", "uint16", "uint32")

_COMPARE = {"Equal": "EQUAL", "Greater": "GREATER", "GreaterOrEqual": "GREATER_EQUAL",
            "Less": "LESS", "LessOrEqual": "LESS_EQUAL"}
_LOGICAL = {"And": "LOGICAL_AND", "Or": "LOGICAL_OR", "Xor": "NOT_EQUAL"}


# -- small helpers -----------------------------------------------------------------------------

def _bshape(*tensors: Tensor) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*(t.shape for t in tensors)))


def _emit_bool(ctx: LowerContext, opcode: str, inputs: list[Tensor], out: Tensor | None = None,
               hint: str = "mask") -> Tensor:
    """Emit a broadcasting op writing bool (comparisons, logical ops)."""
    return ctx.emit1(opcode, inputs, _bshape(*inputs), _BOOL, hint, out)


def _cast(ctx: LowerContext, x: Tensor, dtype: np.dtype | type, hint: str = "cast",
          out: Tensor | None = None) -> Tensor:
    """CAST ``x`` to ``dtype`` (integer casts wrap modulo 2^width like static_cast)."""
    dtype = np.dtype(dtype)
    if x.dtype == dtype and out is None:
        return x
    return ctx.emit1("CAST", [x], x.shape, dtype, hint, out, inDataType=x.dtype, outDataType=dtype)


def _same_dtype(ctx: LowerContext, a: Tensor, b: Tensor) -> None:
    if a.dtype != b.dtype:
        raise ctx.fail(Reason.INVALID_MODEL, f"inputs have different dtypes ({a.dtype.name}, {b.dtype.name})")


def _bool_output(ctx: LowerContext, *tensors: Tensor) -> Tensor:
    return ctx.output(0, _bshape(*tensors), _BOOL)


def _same_output(ctx: LowerContext, *tensors: Tensor) -> Tensor:
    return ctx.output(0, _bshape(*tensors), tensors[0].dtype)


def _bits(dtype: np.dtype) -> int:
    return np.dtype(dtype).itemsize * 8


# -- comparisons and boolean logic -------------------------------------------------------------

@lowering("Equal", since=7, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=_CMP_DTYPES + ("bool",),
          verified=_CMP_DTYPES + ("bool",))
@lowering("Greater", "Less", since=7, onnx_dtypes=ALL_NUMERIC, dtypes=_CMP_DTYPES, verified=_CMP_DTYPES)
@lowering("GreaterOrEqual", "LessOrEqual", since=12, onnx_dtypes=ALL_NUMERIC, dtypes=_CMP_DTYPES,
          verified=_CMP_DTYPES)
def lower_compare(node: NodeView, ctx: LowerContext) -> None:
    """Broadcasting comparisons -> EQUAL/GREATER/GREATER_EQUAL/LESS/LESS_EQUAL (bool output)."""
    a, b = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, a, b)
    _emit_bool(ctx, _COMPARE[node.op_type], [a, b], out=_bool_output(ctx, a, b))


@lowering("And", "Or", "Xor", since=7, onnx_dtypes=("bool",), dtypes=("bool",), verified=("bool",))
def lower_logical(node: NodeView, ctx: LowerContext) -> None:
    """LOGICAL_AND / LOGICAL_OR; Xor on bools is NOT_EQUAL."""
    a, b = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, a, b)
    _emit_bool(ctx, _LOGICAL[node.op_type], [a, b], out=_bool_output(ctx, a, b))


@lowering("Not", since=1, onnx_dtypes=("bool",), dtypes=("bool",), verified=("bool",))
def lower_not(node: NodeView, ctx: LowerContext) -> None:
    """LOGICAL_NOT."""
    x = ctx.input(0)
    ctx.emit1("LOGICAL_NOT", [x], x.shape, _BOOL, out=ctx.output(0, x.shape, _BOOL))


# ONNX Runtime has no bool Where kernel to compare against, so bool is accepted (the test checks
# it against numpy) but not listed as verified.
@lowering("Where", since=9, onnx_dtypes=ALL_NUMERIC + ("bool", "string"),
          dtypes=_CMP_DTYPES + ("bool",), verified=_CMP_DTYPES, dtype_input=1)
def lower_where(node: NodeView, ctx: LowerContext) -> None:
    """SELECT_V2(condition, x, y) with three-way numpy broadcasting."""
    cond, x, y = ctx.input(0), ctx.input(1), ctx.input(2)
    _same_dtype(ctx, x, y)
    if cond.dtype != _BOOL:
        raise ctx.fail(Reason.INVALID_MODEL, f"Where condition must be bool, got {cond.dtype.name}")
    ctx.emit("SELECT_V2", [cond, x, y], [ctx.output(0, _bshape(cond, x, y), x.dtype)])


# -- float classification and sign -------------------------------------------------------------

@lowering("IsNaN", since=9, onnx_dtypes=FLOATS)
def lower_isnan(node: NodeView, ctx: LowerContext) -> None:
    """NaN is the only value not equal to itself: NOT_EQUAL(x, x)."""
    x = ctx.input(0)
    _emit_bool(ctx, "NOT_EQUAL", [x, x], out=_bool_output(ctx, x))


@lowering("IsInf", since=10, onnx_dtypes=FLOATS)
def lower_isinf(node: NodeView, ctx: LowerContext) -> None:
    """Comparisons with +-inf, per ``detect_positive`` / ``detect_negative`` (both default 1)."""
    x = ctx.input(0)
    out = _bool_output(ctx, x)
    pos, neg = int(node.attr("detect_positive", 1)), int(node.attr("detect_negative", 1))
    inf = scalar(ctx, np.inf, x.dtype, "inf")
    if pos and neg:
        _emit_bool(ctx, "EQUAL", [emit_unary(ctx, "ABS", x, hint="abs"), inf], out=out)
    elif pos:
        _emit_bool(ctx, "EQUAL", [x, inf], out=out)
    elif neg:
        _emit_bool(ctx, "EQUAL", [x, scalar(ctx, -np.inf, x.dtype, "neg_inf")], out=out)
    else:
        # Nothing is detected: no value (not even inf or NaN) is greater than +inf.
        _emit_bool(ctx, "GREATER", [x, inf], out=out)


@lowering("Sign", since=9, onnx_dtypes=ALL_NUMERIC, dtypes=_CMP_DTYPES, verified=_CMP_DTYPES)
def lower_sign(node: NodeView, ctx: LowerContext) -> None:
    """SIGN for float32/int32; int64 (no SIGN kernel) as MINIMUM(MAXIMUM(x, -1), 1)."""
    x = ctx.input(0)
    out = ctx.output(0, x.shape, x.dtype)
    if x.dtype == _I64:
        lo = emit_binary(ctx, "MAXIMUM", x, scalar(ctx, -1, x.dtype, "minus_one"), hint="clamp_lo")
        emit_binary(ctx, "MINIMUM", lo, scalar(ctx, 1, x.dtype, "one"), out=out)
    else:
        emit_unary(ctx, "SIGN", x, out=out)


# -- shifts ------------------------------------------------------------------------------------

def _shift_index(ctx: LowerContext, k: Tensor) -> Tensor:
    """The shift amount as an int64 index clamped to [0, 63] (uint inputs are never negative)."""
    k64 = _cast(ctx, k, _I64, "shift_i64")
    return emit_binary(ctx, "MINIMUM", k64, scalar(ctx, 63, _I64, "max_index"), hint="shift_index")


def _shift_table(ctx: LowerContext, table: np.ndarray, k: Tensor, hint: str) -> Tensor:
    """``table[k]`` for a constant shift (numpy) or a computed one (GATHER of a 64-entry table)."""
    kc = ctx.const(1)
    if kc is not None:
        return ctx.new_const(table[np.minimum(kc.astype(np.uint64), 63).astype(np.int64)], hint=hint)
    index = _shift_index(ctx, k)
    return ctx.emit1("GATHER", [ctx.new_const(table, hint=f"{hint}_table"), index], index.shape,
                     table.dtype, hint, axis=0, batchDims=0)


# ONNX Runtime has no uint16 BitShift kernel: uint16 is accepted and tested against numpy only.
@lowering("BitShift", since=11, onnx_dtypes=("uint8", "uint16", "uint32", "uint64"), dtypes=_SHIFT_DTYPES,
          verified=("uint8", "uint32"))
def lower_bitshift(node: NodeView, ctx: LowerContext) -> None:
    """Logical shifts of unsigned integers; shifts >= the bit width give 0 like ONNX Runtime.

    RIGHT: RIGHT_SHIFT, with lanes whose shift is >= the width zeroed by SELECT_V2 (RIGHT_SHIFT
    alone would clamp the shift). LEFT: multiplication by 2^k taken from a table (0 for k >= width),
    in int64 for uint8/uint16 (cast back wraps) and in uint32 for uint32 (MUL wraps).
    """
    x, k = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, x, k)
    direction = str(node.attr("direction", "")).upper()
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"BitShift direction must be LEFT or RIGHT, got "
                                                           f"'{node.attr('direction')}'")
    width = _bits(x.dtype)
    out = _same_output(ctx, x, k)
    if direction == "RIGHT":
        kc = ctx.const(1)
        if kc is not None and bool(np.all(kc < width)):
            ctx.emit("RIGHT_SHIFT", [x, k], [out])
            return
        shifted = ctx.emit1("RIGHT_SHIFT", [x, k], out.shape, x.dtype, "shifted")
        valid = _shift_table(ctx, np.arange(64) < width, k, "in_range")
        ctx.emit("SELECT_V2", [valid, shifted, scalar(ctx, 0, x.dtype, "zero")], [out])
        return
    powers = np.array([(1 << i) % (1 << width) for i in range(64)], np.uint64)
    if x.dtype == _U32:
        # Powers of two below 2^32 fit int64 (GATHER has no uint32 kernel); cast after the lookup.
        factor = _shift_table(ctx, powers.astype(np.int64), k, "pow2")
        factor = ctx.new_const(factor.data.astype(np.uint32), hint="pow2_u32") if factor.is_const \
            else _cast(ctx, factor, _U32, "pow2_u32")
        emit_binary(ctx, "MUL", x, factor, out=out)
        return
    # uint8/uint16: x * 2^k < 2^31 in int64, and the cast back keeps the low bits.
    factor = _shift_table(ctx, powers.astype(np.int64), k, "pow2")
    product = emit_binary(ctx, "MUL", _cast(ctx, x, _I64, "x_i64"), factor, hint="product")
    _cast(ctx, product, x.dtype, out=out)


# -- bitwise -----------------------------------------------------------------------------------

def _all_ones(ctx: LowerContext, dtype: np.dtype) -> Tensor:
    return ctx.new_const(np.array(-1).astype(np.int64).astype(dtype), hint="all_ones")


def _and_or(ctx: LowerContext, a: Tensor, b: Tensor, is_or: bool, out: Tensor) -> None:
    """``(a + b -/+ (a ^ b)) / 2`` in a wider integer type, cast back (see the module docstring)."""
    add_or_sub = "ADD" if is_or else "SUB"
    if _bits(a.dtype) < 32:
        # 8/16-bit values: every intermediate fits int32; the sum is even, so >> 1 is exact.
        a32, b32 = _cast(ctx, a, _I32, "a_i32"), _cast(ctx, b, _I32, "b_i32")
        x32 = emit_binary(ctx, "BITWISE_XOR", a32, b32, hint="xor")
        s = emit_binary(ctx, add_or_sub, emit_binary(ctx, "ADD", a32, b32, hint="sum"), x32, hint="twice")
        half = emit_binary(ctx, "RIGHT_SHIFT", s, scalar(ctx, 1, _I32, "one"), hint="half")
        _cast(ctx, half, a.dtype, out=out)
        return
    # 32-bit values: s = 2r needs 34 bits, so it is computed in int64. There is no int64 shift or
    # division, so r's low 31 bits come from (s mod 2^32) >> 1 in uint32, and its bit 31 (bit 32
    # of s) from FLOOR_MOD(s, 2^33) >= 2^32; XOR puts that bit in place.
    x = emit_binary(ctx, "BITWISE_XOR", a, b, hint="xor")
    a64, b64, x64 = (_cast(ctx, t, _I64, f"{n}_i64") for t, n in ((a, "a"), (b, "b"), (x, "xor")))
    s = emit_binary(ctx, add_or_sub, emit_binary(ctx, "ADD", a64, b64, hint="sum"), x64, hint="twice")
    low = emit_binary(ctx, "RIGHT_SHIFT", _cast(ctx, s, _U32, "twice_u32"), scalar(ctx, 1, _U32, "one"),
                      hint="low_bits")
    s_mod = emit_binary(ctx, "FLOOR_MOD", s, scalar(ctx, 1 << 33, _I64, "two_pow_33"), hint="mod_2_33")
    top = _emit_bool(ctx, "GREATER_EQUAL", [s_mod, scalar(ctx, 1 << 32, _I64, "two_pow_32")], hint="bit31")
    top_bit = ctx.emit1("SELECT_V2", [top, scalar(ctx, 1 << 31, _U32, "bit31_value"), scalar(ctx, 0, _U32, "zero")],
                        top.shape, _U32, "bit31_u32")
    if a.dtype == _U32:
        emit_binary(ctx, "BITWISE_XOR", low, top_bit, out=out)
    else:
        _cast(ctx, emit_binary(ctx, "BITWISE_XOR", low, top_bit, hint="result_u32"), a.dtype, out=out)


@lowering("BitwiseAnd", "BitwiseOr", "BitwiseXor", since=18, onnx_dtypes=INTS, dtypes=_BIT_DTYPES,
          verified=_BIT_DTYPES)
def lower_bitwise_binary(node: NodeView, ctx: LowerContext) -> None:
    """BITWISE_XOR directly; And/Or by exact arithmetic identities over BITWISE_XOR (8/16/32-bit)."""
    a, b = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, a, b)
    out = _same_output(ctx, a, b)
    if node.op_type == "BitwiseXor":
        emit_binary(ctx, "BITWISE_XOR", a, b, out=out)
    else:
        _and_or(ctx, a, b, node.op_type == "BitwiseOr", out)


@lowering("BitwiseNot", since=18, onnx_dtypes=INTS, dtypes=_BIT_DTYPES + ("int64",),
          verified=_BIT_DTYPES + ("int64",))
def lower_bitwise_not(node: NodeView, ctx: LowerContext) -> None:
    """x ^ all-ones (BITWISE_XOR); int64 as -1 - x (exact and overflow-free in two's complement)."""
    x = ctx.input(0)
    out = ctx.output(0, x.shape, x.dtype)
    if x.dtype == _I64:
        emit_binary(ctx, "SUB", scalar(ctx, -1, _I64, "minus_one"), x, out=out)
    else:
        emit_binary(ctx, "BITWISE_XOR", x, _all_ones(ctx, x.dtype), out=out)
