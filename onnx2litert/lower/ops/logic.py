"""Comparisons, boolean logic, selection and bitwise ops.

Ops: Equal, Greater, GreaterOrEqual, Less, LessOrEqual, And, Or, Xor, Not, Where, IsNaN, IsInf,
Sign, BitShift, BitwiseAnd, BitwiseOr, BitwiseXor, BitwiseNot, and OptionalHasElement /
OptionalGetElement on plain (non-optional) tensors.

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
from .elementwise import WIDENED, WIDER, emit_binary, emit_unary, scalar, unsigned_less, widen

_BOOL = np.dtype(np.bool_)
_I32 = np.dtype(np.int32)
_I64 = np.dtype(np.int64)
_U32 = np.dtype(np.uint32)
_U64 = np.dtype(np.uint64)

_CMP_DTYPES = ("float32", "int32", "int64")
# Integer types BITWISE_XOR / RIGHT_SHIFT accept.
_BIT_DTYPES = ("int8", "int16", "int32", "uint8", "uint16", "uint32")

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

# bfloat16 compares exactly as float32 (WIDER); ml_dtypes / ONNX order NaN like IEEE.
_CMP_ALL = _CMP_DTYPES + WIDENED + ("uint64", "bfloat16")


@lowering("Equal", since=7, onnx_dtypes=ALL_NUMERIC + ("bool", "string"), dtypes=_CMP_ALL + ("bool",),
          verified=_CMP_ALL + ("bool",))
@lowering("Greater", "Less", since=7, onnx_dtypes=ALL_NUMERIC, dtypes=_CMP_ALL, verified=_CMP_ALL)
@lowering("GreaterOrEqual", "LessOrEqual", since=12, onnx_dtypes=ALL_NUMERIC, dtypes=_CMP_ALL,
          verified=_CMP_ALL)
def lower_compare(node: NodeView, ctx: LowerContext) -> None:
    """Broadcasting comparisons -> EQUAL/GREATER/GREATER_EQUAL/LESS/LESS_EQUAL (bool output).

    Types without kernels compare exactly after a value-preserving CAST (see WIDER); uint64
    compares its int64 bit patterns (BITCAST) with the sign bit read as the top value bit.
    """
    a, b = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, a, b)
    out = _bool_output(ctx, a, b)
    opcode = _COMPARE[node.op_type]
    if a.dtype == _U64:
        a64, b64 = widen(ctx, a, _I64, "a_i64"), widen(ctx, b, _I64, "b_i64")
        if opcode == "EQUAL":
            _emit_bool(ctx, "EQUAL", [a64, b64], out=out)
            return
        # a > b is b < a; a >= b is not (a < b); a <= b is not (b < a).
        lhs, rhs = (b64, a64) if opcode in ("GREATER", "LESS_EQUAL") else (a64, b64)
        if opcode in ("GREATER", "LESS"):
            unsigned_less(ctx, lhs, rhs, out=out)
        else:
            ctx.emit("LOGICAL_NOT", [unsigned_less(ctx, lhs, rhs)], [out])
        return
    wide = WIDER.get(a.dtype)
    if wide is not None:
        a, b = widen(ctx, a, wide, "a_wide"), widen(ctx, b, wide, "b_wide")
    _emit_bool(ctx, opcode, [a, b], out=out)


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


# -- Optional on plain tensors ---------------------------------------------------------------------
# Sequence/optional-typed values never reach the lowerings (graph I/O of those types is refused and
# no lowering produces them), so an input here is a plain tensor, or absent: an empty optional.
_ONNX_ALL = ALL_NUMERIC + ("bool", "string")


@lowering("OptionalHasElement", since=15, onnx_dtypes=_ONNX_ALL, dtypes=_ONNX_ALL, verified=("float32",),
          dtype_input=None, zero_size_inputs=True)
def lower_optional_has_element(node: NodeView, ctx: LowerContext) -> None:
    """A constant: True for a tensor input, False for a missing (empty) input."""
    present = ctx.has_input(0)
    if present:
        ctx.input(0)  # a value the IR knows: a plain tensor
    ctx.graph.values[node.outputs[0]] = ctx.new_const(np.array(present, _BOOL), hint="has_element")


@lowering("OptionalGetElement", since=15, onnx_dtypes=_ONNX_ALL, dtypes=_ONNX_ALL, verified=("float32", "int32"),
          dtype_input=None)
def lower_optional_get_element(node: NodeView, ctx: LowerContext) -> None:
    """The element of a tensor input is the tensor itself: a copy."""
    if not ctx.has_input(0):
        raise ctx.fail(Reason.INVALID_MODEL, "OptionalGetElement of an empty optional is an error")
    x = ctx.input(0)
    ctx.reshape(x, x.shape, out=ctx.output(0, x.shape, x.dtype))


# ONNX Runtime has no bool Where kernel to compare against, so bool is accepted (the test checks
# it against numpy) but not listed as verified.
_WHERE_DTYPES = ("float32", "float16", "float64") + INTS


@lowering("Where", since=9, onnx_dtypes=ALL_NUMERIC + ("bool", "string"),
          dtypes=_WHERE_DTYPES + ("bool", "bfloat16"), verified=_WHERE_DTYPES + ("bfloat16",), dtype_input=1)
def lower_where(node: NodeView, ctx: LowerContext) -> None:
    """SELECT_V2(condition, x, y) with three-way numpy broadcasting."""
    cond, x, y = ctx.input(0), ctx.input(1), ctx.input(2)
    _same_dtype(ctx, x, y)
    if cond.dtype != _BOOL:
        raise ctx.fail(Reason.INVALID_MODEL, f"Where condition must be bool, got {cond.dtype.name}")
    ctx.emit("SELECT_V2", [cond, x, y], [ctx.output(0, _bshape(cond, x, y), x.dtype)])


# -- float classification and sign -------------------------------------------------------------

def _float32_view(ctx: LowerContext, x: Tensor) -> Tensor:
    """float16/float64 ``x`` as float32 for classification: NaN stays NaN, +-inf stays +-inf."""
    return x if x.dtype == np.float32 else widen(ctx, x, np.float32, "x_f32")


@lowering("IsNaN", since=9, onnx_dtypes=FLOATS, dtypes=("float32", "float16", "float64"),
          verified=("float32", "float16", "float64"))
def lower_isnan(node: NodeView, ctx: LowerContext) -> None:
    """NaN is the only value not equal to itself: NOT_EQUAL(x, x) (float16/float64 via float32)."""
    x = _float32_view(ctx, ctx.input(0))
    _emit_bool(ctx, "NOT_EQUAL", [x, x], out=_bool_output(ctx, x))


@lowering("IsInf", since=10, onnx_dtypes=FLOATS, dtypes=("float32", "float16"), verified=("float32", "float16"))
def lower_isinf(node: NodeView, ctx: LowerContext) -> None:
    """Comparisons with +-inf, per ``detect_positive`` / ``detect_negative`` (both default 1).

    float16 is compared in float32 (exact). float64 is refused: a finite value beyond the float32
    range would turn into inf.
    """
    x = _float32_view(ctx, ctx.input(0))
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

def _to_int64(ctx: LowerContext, t: Tensor, hint: str) -> Tensor:
    """``t`` as int64: CAST (value-preserving) for up to 32 bits, BITCAST (two's complement) for uint64."""
    if t.dtype == _I64:
        return t
    if t.dtype == _U64:
        return ctx.emit1("BITCAST", [t], t.shape, _I64, hint)
    return _cast(ctx, t, _I64, hint)


def _from_int64(ctx: LowerContext, t: Tensor, dtype: np.dtype, out: Tensor) -> None:
    """Narrow an int64 ``t`` into ``out``: CAST wraps modulo 2^width, BITCAST reinterprets for uint64."""
    if dtype == _U64:
        ctx.emit("BITCAST", [t], [out])
    else:
        _cast(ctx, t, dtype, out=out)


def _shift_amount(ctx: LowerContext, k: Tensor, width: int) -> tuple[Tensor | np.ndarray, Tensor | np.ndarray]:
    """(valid, k64): ``valid`` marks shifts in [0, width); ``k64`` is the shift as int64, 0 where invalid.

    Both are numpy arrays for a constant shift, tensors otherwise. A uint64 shift >= 2^63 reads as a
    negative int64, which is out of range either way.
    """
    kc = ctx.const(1)
    if kc is not None:
        k64 = np.asarray(kc).astype(np.int64)
        valid = (k64 >= 0) & (k64 < width)
        return valid, np.where(valid, k64, 0)
    k64 = _to_int64(ctx, k, "shift_i64")
    lo = _emit_bool(ctx, "GREATER_EQUAL", [k64, scalar(ctx, 0, _I64, "zero_i64")], hint="shift_ge_0")
    hi = _emit_bool(ctx, "LESS", [k64, scalar(ctx, width, _I64, "width")], hint="shift_lt_width")
    valid = _emit_bool(ctx, "LOGICAL_AND", [lo, hi], hint="shift_valid")
    safe = ctx.emit1("SELECT_V2", [valid, k64, scalar(ctx, 0, _I64, "zero_shift")], k64.shape, _I64, "shift_safe")
    return valid, safe


def _as_tensor(ctx: LowerContext, value: Tensor | np.ndarray, dtype: np.dtype, hint: str) -> Tensor:
    """A constant for a numpy ``value`` (converted to ``dtype``), a CAST for a tensor of another dtype."""
    if isinstance(value, Tensor):
        return _cast(ctx, value, dtype, hint)
    return ctx.new_const(np.asarray(value).astype(dtype), hint=hint)


def _right_shift(ctx: LowerContext, x: Tensor, valid: Tensor | np.ndarray, k64: Tensor | np.ndarray,
                 out: Tensor) -> None:
    """RIGHT_SHIFT (arithmetic for signed, logical for unsigned types) with ONNX's out-of-range rule.

    A shift outside [0, width) gives the sign fill: x >> (width - 1) (-1 or 0) for signed types,
    0 for unsigned ones. RIGHT_SHIFT itself would clamp or misread such shifts, so it only ever
    sees valid amounts.
    """
    width = _bits(x.dtype)
    signed = x.dtype.kind == "i"
    if not isinstance(valid, Tensor):
        if bool(np.all(valid)):
            ctx.emit("RIGHT_SHIFT", [x, _as_tensor(ctx, k64, x.dtype, "shift")], [out])
            return
        if signed:  # the fill is x >> (width - 1): fold it into the amount
            ctx.emit("RIGHT_SHIFT", [x, _as_tensor(ctx, np.where(valid, k64, width - 1), x.dtype, "shift")], [out])
            return
        valid_t = ctx.new_const(np.asarray(valid), hint="shift_valid")
    else:
        valid_t = valid
    if signed:
        amount = ctx.emit1("SELECT_V2", [valid_t, k64, scalar(ctx, width - 1, _I64, "fill_shift")],
                           _bshape(valid_t, k64), _I64, "amount")
        ctx.emit("RIGHT_SHIFT", [x, _cast(ctx, amount, x.dtype, "amount_cast")], [out])
        return
    shifted = ctx.emit1("RIGHT_SHIFT", [x, _as_tensor(ctx, k64, x.dtype, "shift")], out.shape, x.dtype, "shifted")
    ctx.emit("SELECT_V2", [valid_t, shifted, scalar(ctx, 0, x.dtype, "zero")], [out])


def _left_shift(ctx: LowerContext, x: Tensor, valid: Tensor | np.ndarray, k64: Tensor | np.ndarray,
                out: Tensor) -> None:
    """x * 2^k in int64 (0 for out-of-range k), narrowed back with wrap-around.

    Up to 32 bits the product fits int64 exactly (|x| * 2^31 < 2^63) and CAST keeps the low bits;
    64-bit values multiply modulo 2^64 in int64 (MUL wraps), uint64 via BITCAST.
    """
    width = _bits(x.dtype)
    powers = np.array([(1 << i) % (1 << 64) for i in range(width)] + [0], np.uint64).astype(np.int64)
    if isinstance(valid, Tensor):
        index = ctx.emit1("SELECT_V2", [valid, k64, scalar(ctx, width, _I64, "no_shift")], valid.shape, _I64,
                          "power_index")
        factor = ctx.emit1("GATHER", [ctx.new_const(powers, hint="pow2_table"), index], index.shape, _I64,
                           "pow2", axis=0, batchDims=0)
    else:
        factor = ctx.new_const(powers[np.where(valid, k64, width)], hint="pow2")
    product = emit_binary(ctx, "MUL", _to_int64(ctx, x, "x_i64"), factor, hint="product")
    _from_int64(ctx, product, x.dtype, out)


# ONNX Runtime has no uint16 BitShift kernel: uint16 is accepted and tested against numpy only.
@lowering("BitShift", since=11, onnx_dtypes=("uint8", "uint16", "uint32", "uint64"),
          dtypes=("uint8", "uint16", "uint32", "uint64"), verified=("uint8", "uint32"))
@lowering("BitShift", since=28, onnx_dtypes=INTS, dtypes=INTS, verified=("uint8", "uint32"))
def lower_bitshift(node: NodeView, ctx: LowerContext) -> None:
    """Shifts with ONNX's rules: shifts outside [0, width) give the sign fill (right) or 0 (left).

    Opset 28 added signed types (arithmetic right shift, left shifts that wrap) and defined
    negative shifts. Right shifts of 64-bit values have no LiteRT kernel and are refused.
    """
    x, k = ctx.input(0), ctx.input(1)
    _same_dtype(ctx, x, k)
    direction = str(node.attr("direction", "")).upper()
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"BitShift direction must be LEFT or RIGHT, got "
                                                           f"'{node.attr('direction')}'")
    if direction == "RIGHT" and _bits(x.dtype) == 64:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"right BitShift of {x.dtype.name}: LiteRT's RIGHT_SHIFT "
                                                 f"takes 8/16/32-bit integers only")
    out = _same_output(ctx, x, k)
    valid, k64 = _shift_amount(ctx, k, _bits(x.dtype))
    if direction == "RIGHT":
        _right_shift(ctx, x, valid, k64, out)
    else:
        _left_shift(ctx, x, valid, k64, out)


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
