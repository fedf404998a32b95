"""Lowerings of the quantized family (see the package docstring for the op list).

Quantized ONNX comes in two forms, and both end up as the same IR:

* QDQ: ``QuantizeLinear`` -> QUANTIZE (the output tensor is int8/uint8 and carries the ONNX
  scale and zero point as its ``Quantization``); ``DequantizeLinear`` of a run-time tensor ->
  DEQUANTIZE. ``DequantizeLinear`` of a constant (weights, int32 biases) becomes the float
  constant ``(q - zp) * scale`` computed here bit for bit like ONNX Runtime, so float
  lowerings (Conv, Gemm, ...) that need constant weights keep working; the QDQ pass
  (``passes/qdq.py``) later proves those constants are exactly quantized and turns
  ``DEQUANTIZE -> float op -> QUANTIZE`` into the integer op.
* QOperator (``QLinearConv``, ``QLinearMatMul``, ``QLinearAdd``/``Mul``,
  ``QLinearAveragePool``, ``QLinearConcat``, ``QLinearGlobalAveragePool``): each is written
  as that same ``DEQUANTIZE -> float op -> QUANTIZE`` pattern (re-using the float lowering of
  the op), which the QDQ pass turns into one integer op.

Integer ops with an int32 result (``MatMulInteger``, ``ConvInteger``) and
``DynamicQuantizeLinear`` are computed exactly with float32 kernels on small integers:
every partial sum stays below 2**24, so float32 arithmetic is exact (the reduction is split
into chunks whose results are added in int32 when one pass could exceed that bound).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from onnx import helper

from ...errors import Reason
from ...ir import Quantization, Tensor
from ..context import LowerContext, NodeView
from ..registry import REGISTRY, lowering

_F32 = np.dtype(np.float32)
_QTYPES = ("int8", "uint8")
_MS = "com.microsoft"
# Opset of the synthetic standard-domain nodes the QOperator lowerings hand to float lowerings
# (the ops used have the same semantics from opset 13 to 21).
_INNER_OPSET = 17
# float32 represents every integer of magnitude below 2**24 exactly.
_EXACT_F32 = (1 << 24) - 1


# -- quantization parameters (pure helpers) ----------------------------------------------------

def _qrange(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def quantization(scale: np.ndarray, zero_point: np.ndarray, axis: int) -> Quantization:
    """IR quantization parameters: one element per tensor, or one per channel along ``axis``."""
    scale = np.asarray(scale, np.float32).reshape(-1)
    zero_point = np.broadcast_to(np.asarray(zero_point, np.int64).reshape(-1), scale.shape).copy()
    return Quantization(scale, zero_point, int(axis) if scale.size > 1 else 0)


def same_quantization(a: Quantization | None, b: Quantization | None) -> bool:
    """Equal scales, zero points and (for per-channel parameters) axis."""
    if a is None or b is None:
        return a is b
    sa, sb = np.asarray(a.scale).reshape(-1), np.asarray(b.scale).reshape(-1)
    za, zb = np.asarray(a.zero_point).reshape(-1), np.asarray(b.zero_point).reshape(-1)
    if sa.shape != sb.shape or za.shape != zb.shape:
        return False
    return bool(np.array_equal(sa, sb) and np.array_equal(za, zb) and (sa.size == 1 or a.axis == b.axis))


def _broadcast_param(p: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A per-axis parameter reshaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    shape = [1] * rank
    shape[axis] = p.size
    return p.reshape(shape)


def dequantize_values(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int) -> np.ndarray:
    """``(q - zp) * scale`` in float32, as ONNX Runtime computes DequantizeLinear."""
    q = np.asarray(q)
    zp = _broadcast_param(np.asarray(zero_point, np.int64), q.ndim, axis)
    s = _broadcast_param(np.asarray(scale, np.float32), q.ndim, axis)
    return ((q.astype(np.int64) - zp).astype(np.float32) * s).astype(np.float32)


def quantize_values(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int,
                    dtype: np.dtype) -> np.ndarray:
    """``saturate(round_half_even(x / scale) + zp)``, as ONNX QuantizeLinear."""
    x = np.asarray(x, np.float32)
    s = _broadcast_param(np.asarray(scale, np.float32), x.ndim, axis)
    zp = _broadcast_param(np.asarray(zero_point, np.int64), x.ndim, axis)
    lo, hi = _qrange(dtype)
    return np.clip(np.rint(x / s).astype(np.int64) + zp, lo, hi).astype(dtype)


# -- reading ONNX parameters -------------------------------------------------------------------

def _axis(ctx: LowerContext, axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if rank and not 0 <= a < rank:
        raise ctx.fail(Reason.INVALID_MODEL, f"axis {axis} is out of range for rank {rank}")
    return a


def _params(ctx: LowerContext, scale_i: int, zp_i: int, rank: int, axis: int,
            zp_dtype: np.dtype | None = None) -> tuple[np.ndarray, np.ndarray, int, np.dtype]:
    """(scale, zero point, axis, quantized dtype) of a node's constant scale/zero-point pair."""
    scale = np.asarray(ctx.require_const(scale_i, f"scale (input {scale_i})"), np.float32)
    zp = ctx.const(zp_i)
    if ctx.has_input(zp_i) and zp is None:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, f"zero point (input {zp_i}) must be a constant")
    dtype = np.dtype(zp_dtype) if zp_dtype is not None else (np.dtype(zp.dtype) if zp is not None
                                                              else np.dtype(np.uint8))
    zp = np.zeros(scale.shape, np.int64) if zp is None else np.asarray(zp).astype(np.int64)
    if scale.size > 1 and (scale.ndim != 1 or zp.size not in (1, scale.size)):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"scale of shape {list(scale.shape)}: only per-tensor and per-axis (1-D) parameters "
                       "are supported (blocked quantization is not)")
    if scale.size == 1 and zp.size != 1:
        raise ctx.fail(Reason.INVALID_MODEL, "a scalar scale needs a scalar zero point")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "scales must be finite and positive")
    ax = _axis(ctx, axis, rank) if scale.size > 1 else 0
    if scale.size > 1 and rank and scale.size != ctx.input(0).shape[ax]:
        raise ctx.fail(Reason.INVALID_MODEL, f"{scale.size} scales for axis {ax} of size "
                                             f"{ctx.input(0).shape[ax]}")
    return scale.reshape(-1), zp.reshape(-1), ax, dtype


def _check_qdtype(ctx: LowerContext, dtype: np.dtype, what: str) -> None:
    if dtype.name not in _QTYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"{what} has dtype {dtype.name}; int8 and uint8 are supported")


# -- emit helpers ------------------------------------------------------------------------------

def _annotate(ctx: LowerContext, x: Tensor, q: Quantization) -> None:
    """Give the run-time integer tensor ``x`` the parameters a consumer reads it with."""
    if x.quantization is None:
        # A plain integer tensor (e.g. a graph input): its meaning is what the consumer says.
        x.quantization = q
        if np.asarray(q.scale).size == 1:
            # The driver exposes some graph inputs channels-last behind a TRANSPOSE; the layout
            # pass may read the graph input directly later, so it must carry the parameters too.
            for op in ctx.graph.operators:
                if any(o is x for o in op.outputs) and op.opcode in ("TRANSPOSE", "RESHAPE"):
                    src = op.inputs[0]
                    if src is not None and not src.is_const and src.dtype == x.dtype and src.quantization is None:
                        src.quantization = q
    elif not same_quantization(x.quantization, q):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"tensor '{x.name}' is dequantized with parameters different from the ones it was "
                       "quantized with")


def dequantize(ctx: LowerContext, x: Tensor, q: Quantization, out: Tensor | None = None) -> Tensor:
    """Float view of the integer tensor ``x`` (a constant is dequantized at conversion time)."""
    if x.is_const:
        value = dequantize_values(x.data, q.scale, q.zero_point, q.axis)
        if out is not None:
            return ctx.reshape(ctx.new_const(value, hint="dequantized"), out.shape, out=out)
        return ctx.new_const(value, hint="dequantized")
    if x.dtype.name not in _QTYPES and x.dtype != np.int16:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"DEQUANTIZE of a run-time {x.dtype.name} tensor")
    _annotate(ctx, x, q)
    return ctx.emit1("DEQUANTIZE", [x], x.shape, _F32, "dequantized", out)


def quantize(ctx: LowerContext, x: Tensor, q: Quantization, dtype: np.dtype, out: Tensor | None = None
             ) -> Tensor:
    """QUANTIZE float ``x`` into a ``dtype`` tensor carrying ``q``."""
    if x.is_const and out is None:
        data = quantize_values(x.data, q.scale, q.zero_point, q.axis, dtype)
        return Tensor(ctx.graph.unique(f"{ctx.node.name}/quantized"), data.shape, dtype, data=data, quantization=q)
    if np.asarray(q.scale).size > 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       "per-axis QuantizeLinear of a run-time tensor is not supported")
    y = out if out is not None else ctx.tmp(x.shape, dtype, "quantized")
    if y.dtype != dtype:
        raise ctx.fail(Reason.INTERNAL_ERROR, f"quantized output has dtype {y.dtype}, expected {dtype}")
    y.quantization = q
    ctx.emit("QUANTIZE", [x], [y])
    return y


def run_float_lowering(ctx: LowerContext, op_type: str, inputs: list[Tensor | None], out: Tensor,
                       attrs: dict[str, Any] | None = None) -> None:
    """Lower a synthetic standard-domain ``op_type`` node on IR tensors into ``out``.

    The QOperator lowerings re-use the float lowerings (Conv, MatMul, AveragePool, Concat...)
    instead of duplicating their geometry handling; the operators they emit count as this
    node's, so a failure removes them all.
    """
    entry = REGISTRY.find("", op_type, _INNER_OPSET)
    if entry is None:
        raise ctx.fail(Reason.INTERNAL_ERROR, f"no float lowering for {op_type}")
    names = []
    for i, t in enumerate(inputs):
        if t is None:
            names.append("")
            continue
        name = ctx.graph.unique(f"{ctx.node.name}::in{i}")
        ctx.graph.values[name] = t
        names.append(name)
    out_name = ctx.graph.unique(f"{ctx.node.name}::out")
    ctx.graph.values[out_name] = out
    proto = helper.make_node(op_type, names, [out_name], name=f"{ctx.node.name}/{op_type}", **(attrs or {}))
    inner = LowerContext(NodeView(proto, 0, _INNER_OPSET), ctx.graph)
    try:
        entry.fn(inner.node, inner)
    finally:
        ctx.emitted.extend(inner.emitted)


# -- run-time parameters (arithmetic form) -----------------------------------------------------
# Scales or zero points computed at run time cannot become IR quantization parameters, so such
# nodes are written with the arithmetic ONNX defines: (x - zp) * scale, and
# saturate(round_half_even(x / scale) + zp). float32 holds every 8/16-bit integer exactly.

_ARITH_QTYPES = ("int8", "uint8", "int16", "uint16")


def _is_runtime(ctx: LowerContext, i: int) -> bool:
    return ctx.has_input(i) and ctx.const(i) is None


def _param_shape(ctx: LowerContext, t: Tensor, rank: int, axis: int, what: str) -> tuple[int, ...]:
    """The shape a per-tensor or per-axis (1-D) parameter broadcasts with on a rank-``rank`` tensor."""
    if t.size == 1:
        return ()
    if t.rank != 1 or not rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{what} of shape {list(t.shape)}: only per-tensor and per-axis (1-D) parameters "
                       "are supported (blocked quantization is not)")
    shape = [1] * rank
    shape[axis] = t.size
    return tuple(shape)


def _block_param(ctx: LowerContext, t: Tensor, x_shape: tuple[int, ...], axis: int, block: int,
                 what: str) -> Tensor:
    """A blocked parameter (one value per ``block`` elements along ``axis``) repeated to ``x_shape``."""
    want = list(x_shape)
    want[axis] = -(-x_shape[axis] // block)
    if list(t.shape) != want:
        raise ctx.fail(Reason.INVALID_MODEL, f"blocked {what} has shape {list(t.shape)}, expected {want}")
    index = np.arange(x_shape[axis]) // block  # element i along the axis uses block i // block
    if t.is_const:
        return ctx.new_const(np.take(np.asarray(t.data, np.float64), index, axis=axis).astype(_F32), hint="param")
    f = t if t.dtype == _F32 else ctx.emit1("CAST", [t], t.shape, _F32, "param_f32")
    return ctx.emit1("GATHER", [f, ctx.new_const(index.astype(np.int32), hint="block_index")], tuple(x_shape),
                     _F32, "param_blocks", axis=axis)


def _float_param(ctx: LowerContext, i: int, rank: int, axis: int, what: str,
                 block: int = 0, x_shape: tuple[int, ...] = ()) -> Tensor:
    """Input ``i`` (a scale or a zero point, constant or not) as float32, shaped to broadcast."""
    t = ctx.input(i)
    if block:
        return _block_param(ctx, t, x_shape, axis, block, what)
    shape = _param_shape(ctx, t, rank, axis, what)
    if t.is_const:
        return ctx.new_const(np.asarray(t.data, np.float64).astype(_F32).reshape(shape), hint="param")
    if t.dtype.kind == "f" and t.dtype not in (_F32, np.dtype(np.float16)):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"a run-time {what} of dtype {t.dtype.name}")
    f = t if t.dtype == _F32 else ctx.emit1("CAST", [t], t.shape, _F32, "param_f32")
    return f if tuple(f.shape) == shape else ctx.reshape(f, shape)


def _round_to_f16(ctx: LowerContext, x: Tensor) -> Tensor:
    """Round a float32 tensor to float16 precision (and back), as numpy float16 arithmetic does."""
    h = ctx.emit1("CAST", [x], x.shape, np.float16, "as_f16")
    return ctx.emit1("CAST", [h], x.shape, _F32, "from_f16")


def _scale_dtype(ctx: LowerContext, i: int) -> np.dtype:
    return np.dtype(ctx.input(i).dtype)


def _saturate_cast(ctx: LowerContext, y: Tensor, dtype: np.dtype, out: Tensor) -> None:
    """CAST float32 integers to ``dtype`` after clamping to its range."""
    lo, hi = _qrange(dtype)
    y = ctx.emit1("MAXIMUM", [y, ctx.new_const(np.float32(lo), hint="qmin")], y.shape, _F32, "sat_lo")
    y = ctx.emit1("MINIMUM", [y, ctx.new_const(np.float32(hi), hint="qmax")], y.shape, _F32, "sat_hi")
    ctx.emit("CAST", [y], [out])


def _dequantize_arith(node: NodeView, ctx: LowerContext, x: Tensor) -> None:
    """DequantizeLinear as (x - zp) * scale with run-time parameters or 16-bit inputs."""
    if _scale_dtype(ctx, 1) != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"DequantizeLinear with {_scale_dtype(ctx, 1).name} scales "
                                                 "(a float32 output is supported)")
    block = int(node.attr("block_size", 0) or 0)
    axis = _axis(ctx, int(node.attr("axis", 1)), x.rank) if ctx.input(1).size > 1 or block else 0
    scale = _float_param(ctx, 1, x.rank, axis, "scale", block, x.shape)
    out = ctx.output(0, x.shape, _F32)
    if x.dtype == np.int32 and block:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "blocked DequantizeLinear of int32 data")
    if x.dtype == np.int32:
        # (x - zp) in int32 first, as ONNX Runtime: float32 cannot hold every int32 difference.
        d = x
        if ctx.has_input(2):
            zp = ctx.input(2)
            shape = _param_shape(ctx, zp, x.rank, axis, "zero point")
            zp = zp if tuple(zp.shape) == shape else ctx.reshape(zp, shape)
            d = ctx.emit1("SUB", [x, zp], x.shape, np.int32, "centered", fusedActivationFunction="NONE")
        f = ctx.emit1("CAST", [d], x.shape, _F32, "as_float")
    else:
        f = ctx.emit1("CAST", [x], x.shape, _F32, "as_float")
        if ctx.has_input(2):
            zp = _float_param(ctx, 2, x.rank, axis, "zero point", block, x.shape)
            f = ctx.emit1("SUB", [f, zp], x.shape, _F32, "centered", fusedActivationFunction="NONE")
    ctx.emit("MUL", [f, scale], [out], fusedActivationFunction="NONE")


def _quantize_arith(node: NodeView, ctx: LowerContext, x: Tensor, dtype: np.dtype) -> None:
    """QuantizeLinear as saturate(round_half_even(x / scale) + zp) with run-time parameters."""
    if x.dtype != _F32 or _scale_dtype(ctx, 1) != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "QuantizeLinear with run-time parameters needs float32 x and scale")
    block = int(node.attr("block_size", 0) or 0)
    axis = _axis(ctx, int(node.attr("axis", 1)), x.rank) if ctx.input(1).size > 1 or block else 0
    scale = _float_param(ctx, 1, x.rank, axis, "scale", block, x.shape)
    y = ctx.emit1("DIV", [x, scale], x.shape, _F32, "scaled", fusedActivationFunction="NONE")
    y = ctx.emit1("ROUND", [y], x.shape, _F32, "rounded")  # LiteRT ROUND: half to even, as ONNX
    if ctx.has_input(2):
        y = ctx.emit1("ADD", [y, _float_param(ctx, 2, x.rank, axis, "zero point", block, x.shape)], x.shape,
                      _F32, "shifted", fusedActivationFunction="NONE")
    _saturate_cast(ctx, y, dtype, ctx.output(0, x.shape, dtype))


# -- QuantizeLinear / DequantizeLinear ---------------------------------------------------------

@lowering("QuantizeLinear", since=10, onnx_dtypes=("float32", "float16", "bfloat16", "int32"),
          dtypes=("float32",), verified=("float32",))
def lower_quantize_linear(node: NodeView, ctx: LowerContext) -> None:
    """QuantizeLinear -> QUANTIZE (per tensor; a constant input is quantized at conversion time)."""
    x = ctx.input(0)
    blocked = bool(int(node.attr("block_size", 0) or 0))  # blocked parameters: the arithmetic form
    out_dtype = node.attr("output_dtype", 0)
    zp_dtype = helper.tensor_dtype_to_np_dtype(out_dtype) if out_dtype else None
    precision = int(node.attr("precision", 0) or 0)
    if precision and helper.tensor_dtype_to_np_dtype(precision) != _scale_dtype(ctx, 1):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"precision {helper.tensor_dtype_to_np_dtype(precision)} differs from the scale dtype")
    if blocked or _is_runtime(ctx, 1) or _is_runtime(ctx, 2) or (
            np.dtype(zp_dtype) if zp_dtype is not None else ctx.input(2).dtype if ctx.has_input(2)
            else np.dtype(np.uint8)).name in ("int16", "uint16"):
        dtype = np.dtype(zp_dtype) if zp_dtype is not None else (
            ctx.input(2).dtype if ctx.has_input(2) else np.dtype(np.uint8))
        if dtype.name not in _ARITH_QTYPES:
            raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"the quantized output has dtype {dtype.name}")
        _quantize_arith(node, ctx, x, dtype)
        return
    scale, zp, axis, dtype = _params(ctx, 1, 2, x.rank, int(node.attr("axis", 1)), zp_dtype)
    _check_qdtype(ctx, dtype, "the quantized output")
    q = quantization(scale, zp, axis)
    if x.is_const:
        y = quantize(ctx, x, q, dtype)
        ctx.graph.values[node.outputs[0]] = y
        return
    quantize(ctx, x, q, dtype, out=ctx.output(0, x.shape, dtype))


# Opsets 24, 25 and 28 only add element types (float8e8m0 scales, 2-bit and 6-bit formats) that
# the dtype checks refuse; the semantics for the supported types is unchanged.
for _since, _until in ((24, 24), (25, 27), (28, None)):
    lowering("QuantizeLinear", since=_since, until=_until,
             onnx_dtypes=("float32", "float16", "bfloat16", "int32"), dtypes=("float32",),
             verified=("float32",))(lower_quantize_linear)


@lowering("DequantizeLinear", since=10, onnx_dtypes=("int8", "uint8", "int16", "uint16", "int32"),
          dtypes=("int8", "uint8", "int16", "uint16", "int32"), verified=("int8", "uint8", "int16", "uint16", "int32"))
def lower_dequantize_linear(node: NodeView, ctx: LowerContext) -> None:
    """DequantizeLinear -> DEQUANTIZE; constants (weights, biases) become float constants.

    Run-time scales / zero points and 16-bit inputs use the arithmetic form (x - zp) * scale.
    """
    x = ctx.input(0)
    blocked = bool(int(node.attr("block_size", 0) or 0))  # blocked parameters: the arithmetic form
    out_dtype = int(node.attr("output_dtype", 0) or 0)
    if _scale_dtype(ctx, 1) != _F32 or (out_dtype and helper.tensor_dtype_to_np_dtype(out_dtype) != _F32):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "DequantizeLinear to a float16/bfloat16 output is not supported "
                                                 "(float32 scales and output are)")
    if not x.is_const and (blocked or _is_runtime(ctx, 1) or _is_runtime(ctx, 2)
                           or x.dtype.name in ("int16", "uint16")):
        _dequantize_arith(node, ctx, x)
        return
    scale, zp, axis, _ = _params(ctx, 1, 2, x.rank, int(node.attr("axis", 1)), x.dtype)
    q = quantization(scale, zp, axis)
    if x.is_const:
        ctx.graph.values[node.outputs[0]] = Tensor(ctx.graph.unique(node.outputs[0]), x.shape, _F32,
                                                   data=dequantize_values(x.data, scale, zp, axis))
        return
    out = ctx.output(0, x.shape, _F32)
    if x.dtype == np.int32:
        # No int32 DEQUANTIZE kernel: (x - zp) in int32 (as ONNX Runtime), then CAST and MUL.
        if scale.size > 1:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "per-axis DequantizeLinear of a run-time int32 tensor")
        d = x
        if int(zp[0]):
            d = ctx.emit1("SUB", [x, ctx.new_const(np.int32(zp[0]), hint="zero_point")], x.shape, np.int32,
                          "centered", fusedActivationFunction="NONE")
        f = ctx.emit1("CAST", [d], x.shape, _F32, "as_float")
        ctx.emit("MUL", [f, ctx.new_const(np.float32(scale[0]), hint="scale")], [out], fusedActivationFunction="NONE")
        return
    _check_qdtype(ctx, x.dtype, "the quantized input")
    dequantize(ctx, x, q, out=out)


# -- QOperator ops -----------------------------------------------------------------------------

def _dq_input(ctx: LowerContext, i: int, scale_i: int, zp_i: int, axis: int = 1) -> Tensor:
    """Input ``i`` of a QLinear* node, dequantized with its (scale, zero point) inputs."""
    x = ctx.input(i)
    _check_qdtype(ctx, x.dtype, f"input {i}")
    scale, zp, ax, _ = _params_for(ctx, scale_i, zp_i, x, axis)
    return dequantize(ctx, x, quantization(scale, zp, ax))


def _params_for(ctx: LowerContext, scale_i: int, zp_i: int, x: Tensor, axis: int
                ) -> tuple[np.ndarray, np.ndarray, int, np.dtype]:
    scale = np.asarray(ctx.require_const(scale_i, f"scale (input {scale_i})"), np.float32).reshape(-1)
    zp_c = ctx.const(zp_i)
    if ctx.has_input(zp_i) and zp_c is None:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, f"zero point (input {zp_i}) must be a constant")
    zp = np.zeros(scale.shape, np.int64) if zp_c is None else np.asarray(zp_c).astype(np.int64).reshape(-1)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "scales must be finite and positive")
    ax = _axis(ctx, axis, x.rank) if scale.size > 1 else 0
    if scale.size > 1 and scale.size != x.shape[ax]:
        raise ctx.fail(Reason.INVALID_MODEL, f"{scale.size} scales for axis {ax} of size {x.shape[ax]}")
    if zp.size not in (1, scale.size):
        raise ctx.fail(Reason.INVALID_MODEL, "zero point and scale sizes differ")
    return scale, zp, ax, x.dtype


def _quantize_output(ctx: LowerContext, y: Tensor, scale_i: int, zp_i: int, dtype: np.dtype) -> None:
    scale = np.asarray(ctx.require_const(scale_i, "output scale"), np.float32).reshape(-1)
    zp_c = ctx.const(zp_i)
    zp = np.zeros(1, np.int64) if zp_c is None else np.asarray(zp_c).astype(np.int64).reshape(-1)
    if scale.size != 1 or zp.size != 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "the output must be quantized per tensor")
    if not np.isfinite(scale[0]) or scale[0] <= 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "scales must be finite and positive")
    _check_qdtype(ctx, np.dtype(dtype), "the output")
    quantize(ctx, y, quantization(scale, zp, 0), np.dtype(dtype), out=ctx.output(0, y.shape, dtype))


def _out_dtype(ctx: LowerContext, zp_i: int, fallback: int = 0) -> np.dtype:
    zp = ctx.const(zp_i)
    return np.dtype(zp.dtype) if zp is not None else ctx.input(fallback).dtype


def _float_tmp(ctx: LowerContext, hint: str = "float") -> Tensor:
    shape = ctx.out_shape(0)
    if shape is None:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, "the output shape is not known")
    return ctx.tmp(shape, _F32, hint)


@lowering("QLinearConv", since=10, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES)
def lower_qlinear_conv(node: NodeView, ctx: LowerContext) -> None:
    """QLinearConv -> (DEQUANTIZE, float Conv lowering, QUANTIZE), made integer by the QDQ pass."""
    x = _dq_input(ctx, 0, 1, 2)
    w_q = ctx.input(3)
    if not w_q.is_const:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, "QLinearConv weights must be constant")
    _check_qdtype(ctx, w_q.dtype, "the weights")
    ws, wzp, wax, _ = _params_for(ctx, 4, 5, w_q, 0)
    w = dequantize(ctx, w_q, quantization(ws, wzp, wax))
    bias = None
    if ctx.has_input(8):
        b = ctx.require_const(8, "bias (input 8)")
        xs = np.asarray(ctx.const(1), np.float32).reshape(-1)
        # The bias is int32 with scale x_scale * w_scale (ONNX QLinearConv's definition).
        bias = ctx.new_const(dequantize_values(b, xs[0] * ws, np.zeros(1), 0), hint="bias")
    y = _float_tmp(ctx, "conv")
    attrs = {k: v for k, v in node.attrs.items() if k in ("auto_pad", "dilations", "group", "kernel_shape",
                                                          "pads", "strides")}
    run_float_lowering(ctx, "Conv", [x, w, bias], y, attrs)
    _quantize_output(ctx, y, 6, 7, _out_dtype(ctx, 7))


@lowering("QLinearMatMul", since=10, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES)
def lower_qlinear_matmul(node: NodeView, ctx: LowerContext) -> None:
    """QLinearMatMul -> (DEQUANTIZE, float MatMul lowering, QUANTIZE), made integer by the QDQ pass.

    With run-time (or float16) scales / zero points: the exact integer product, then
    round_half_even(C * (a_scale * b_scale / y_scale) + y_zp) saturated, as ONNX defines it.
    """
    if any(_is_runtime(ctx, i) for i in (1, 2, 4, 5, 6, 7)) or any(
            _scale_dtype(ctx, i) != _F32 for i in (1, 4, 6)):
        _qlinear_matmul_arith(ctx)
        return
    a = _dq_input(ctx, 0, 1, 2)
    b_q = ctx.input(3)
    axis = b_q.rank - 1  # per-column parameters of B
    b = _dq_input(ctx, 3, 4, 5, axis)
    y = _float_tmp(ctx, "matmul")
    run_float_lowering(ctx, "MatMul", [a, b], y)
    _quantize_output(ctx, y, 6, 7, _out_dtype(ctx, 7))


def _qlinear_matmul_arith(ctx: LowerContext) -> None:
    a, b = ctx.input(0), ctx.input(3)
    for i, t in ((0, a), (3, b)):
        _check_qdtype(ctx, t.dtype, f"input {i}")
    for i in (1, 2, 4, 5, 6, 7):
        if ctx.has_input(i) and ctx.input(i).size != 1:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           "QLinearMatMul with run-time parameters: only per-tensor parameters are supported")
    scale_dtype = _scale_dtype(ctx, 1)
    if scale_dtype not in (_F32, np.dtype(np.float16)) or any(_scale_dtype(ctx, i) != scale_dtype for i in (4, 6)):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "QLinearMatMul scales must all be float32 or all float16")
    shape = ctx.out_shape(0)
    if shape is None or a.rank < 2 or b.rank < 2:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, "QLinearMatMul needs static operands of rank >= 2")
    shape = tuple(shape)
    k = a.shape[-1]
    azp, bzp = _zero_point(ctx, 2), _zero_point(ctx, 5)
    if k * _abs_bound(a, azp) * _abs_bound(b, bzp) > _EXACT_F32:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"QLinearMatMul inner size {k}: integer sums could exceed 2**24 (float32 exactness)")
    af, bf = _centered_float(ctx, a, azp), _centered_float(ctx, b, bzp)
    if a.rank == 2 and b.rank == 2:
        # FULLY_CONNECTED takes (N, K) weights: transpose B.
        bt = ctx.transpose(bf, (1, 0))
        c = ctx.emit1("FULLY_CONNECTED", [af, bt, None], shape, _F32, "matmul", fusedActivationFunction="NONE",
                      weightsFormat="DEFAULT", keepNumDims=False)
    else:
        c = ctx.emit1("BATCH_MATMUL", [af, bf], shape, _F32, "matmul", adjX=False, adjY=False)
    # m = a_scale * b_scale / y_scale in the scales' precision (float16 rounding emulated exactly:
    # float32 holds a float16 product exactly and a float32 quotient rounds to the same float16).
    sa, sb, sy = (_float_param(ctx, i, 0, 0, "scale") for i in (1, 4, 6))
    m = ctx.emit1("MUL", [sa, sb], (), _F32, "scale_ab", fusedActivationFunction="NONE")
    if scale_dtype != _F32:
        m = _round_to_f16(ctx, m)
    m = ctx.emit1("DIV", [m, sy], (), _F32, "multiplier", fusedActivationFunction="NONE")
    if scale_dtype != _F32:
        m = _round_to_f16(ctx, m)
    d = ctx.emit1("MUL", [c, m], shape, _F32, "scaled", fusedActivationFunction="NONE")
    if ctx.has_input(7):
        d = ctx.emit1("ADD", [d, _float_param(ctx, 7, 0, 0, "zero point")], shape, _F32, "shifted",
                      fusedActivationFunction="NONE")
    d = ctx.emit1("ROUND", [d], shape, _F32, "rounded")
    dtype = ctx.input(7).dtype if ctx.has_input(7) else a.dtype
    _saturate_cast(ctx, d, np.dtype(dtype), ctx.output(0, shape, dtype))


def _qlinear_binary(ctx: LowerContext, op_type: str) -> None:
    a = _dq_input(ctx, 0, 1, 2)
    b = _dq_input(ctx, 3, 4, 5)
    y = _float_tmp(ctx, op_type.lower())
    run_float_lowering(ctx, op_type, [a, b], y)
    _quantize_output(ctx, y, 6, 7, _out_dtype(ctx, 7))


@lowering("QLinearAdd", domain=_MS, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES)
def lower_qlinear_add(node: NodeView, ctx: LowerContext) -> None:
    """com.microsoft QLinearAdd -> (DEQUANTIZE x2, ADD, QUANTIZE), made integer by the QDQ pass."""
    _qlinear_binary(ctx, "Add")


@lowering("QLinearMul", domain=_MS, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES)
def lower_qlinear_mul(node: NodeView, ctx: LowerContext) -> None:
    """com.microsoft QLinearMul -> (DEQUANTIZE x2, MUL, QUANTIZE), made integer by the QDQ pass."""
    _qlinear_binary(ctx, "Mul")


def _no_channels_last(node: NodeView, ctx: LowerContext) -> None:
    if int(node.attr("channels_last", 0)):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "channels_last=1 is not supported")


@lowering("QLinearAveragePool", domain=_MS, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES)
def lower_qlinear_average_pool(node: NodeView, ctx: LowerContext) -> None:
    """com.microsoft QLinearAveragePool -> (DEQUANTIZE, AveragePool lowering, QUANTIZE)."""
    _no_channels_last(node, ctx)
    x = _dq_input(ctx, 0, 1, 2)
    y = _float_tmp(ctx, "pool")
    attrs = {k: v for k, v in node.attrs.items() if k in ("auto_pad", "ceil_mode", "count_include_pad",
                                                          "kernel_shape", "pads", "strides")}
    run_float_lowering(ctx, "AveragePool", [x], y, attrs)
    _quantize_output(ctx, y, 3, 4, _out_dtype(ctx, 4))


@lowering("QLinearGlobalAveragePool", domain=_MS, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES)
def lower_qlinear_global_average_pool(node: NodeView, ctx: LowerContext) -> None:
    """com.microsoft QLinearGlobalAveragePool -> (DEQUANTIZE, MEAN, QUANTIZE)."""
    _no_channels_last(node, ctx)
    x = _dq_input(ctx, 0, 1, 2)
    y = _float_tmp(ctx, "pool")
    run_float_lowering(ctx, "GlobalAveragePool", [x], y)
    _quantize_output(ctx, y, 3, 4, _out_dtype(ctx, 4))


@lowering("QLinearConcat", domain=_MS, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES, dtype_input=2)
def lower_qlinear_concat(node: NodeView, ctx: LowerContext) -> None:
    """com.microsoft QLinearConcat(Y_scale, Y_zp, (X, X_scale, X_zp)...) -> DEQUANTIZE, Concat, QUANTIZE."""
    n = len(node.inputs) - 2
    if n < 3 or n % 3:
        raise ctx.fail(Reason.INVALID_MODEL, "QLinearConcat needs (tensor, scale, zero point) triples")
    parts = [_dq_input(ctx, 2 + 3 * k, 3 + 3 * k, 4 + 3 * k) for k in range(n // 3)]
    y = _float_tmp(ctx, "concat")
    run_float_lowering(ctx, "Concat", parts, y, {"axis": int(node.attr("axis", 0))})
    _quantize_output(ctx, y, 0, 1, _out_dtype(ctx, 1, fallback=2))


# -- dynamic quantization ----------------------------------------------------------------------

@lowering("DynamicQuantizeLinear", since=11, onnx_dtypes=("float32",), dtypes=("float32",), verified=("float32",))
def lower_dynamic_quantize_linear(node: NodeView, ctx: LowerContext) -> None:
    """DynamicQuantizeLinear -> min/max reductions and float arithmetic, exactly as ONNX defines it.

    scale = (max(0, max x) - min(0, min x)) / 255; zp = saturate(round(-min(0, min x) / scale));
    y = saturate(round(x / scale) + zp) as uint8 (rounding half to even).
    """
    x = ctx.input(0)
    axes = ctx.new_const(np.arange(x.rank, dtype=np.int32), hint="all_axes")
    zero = ctx.new_const(np.float32(0), hint="zero")
    hi = ctx.emit1("REDUCE_MAX", [x, axes], (), _F32, "max", keepDims=False)
    lo = ctx.emit1("REDUCE_MIN", [x, axes], (), _F32, "min", keepDims=False)
    hi = ctx.emit1("MAXIMUM", [hi, zero], (), _F32, "max0")
    lo = ctx.emit1("MINIMUM", [lo, zero], (), _F32, "min0")
    rng = ctx.emit1("SUB", [hi, lo], (), _F32, "range", fusedActivationFunction="NONE")
    scale = ctx.emit1("DIV", [rng, ctx.new_const(np.float32(255), hint="qrange")], (), _F32, "scale",
                      ctx.output(1, (), _F32), fusedActivationFunction="NONE")
    neg = ctx.emit1("NEG", [lo], (), _F32, "neg_min")
    zp_f = ctx.emit1("DIV", [neg, scale], (), _F32, "zp_raw", fusedActivationFunction="NONE")
    zp_f = ctx.emit1("ROUND", [zp_f], (), _F32, "zp_round")
    lim_lo = ctx.new_const(np.float32(0), hint="qmin")
    lim_hi = ctx.new_const(np.float32(255), hint="qmax")
    zp_f = ctx.emit1("MINIMUM", [ctx.emit1("MAXIMUM", [zp_f, lim_lo], (), _F32, "zp_lo"), lim_hi], (), _F32,
                     "zp_clamped")
    ctx.emit1("CAST", [zp_f], (), np.uint8, "zp", ctx.output(2, (), np.uint8))
    y = ctx.emit1("DIV", [x, scale], x.shape, _F32, "scaled", fusedActivationFunction="NONE")
    y = ctx.emit1("ROUND", [y], x.shape, _F32, "rounded")
    y = ctx.emit1("ADD", [y, zp_f], x.shape, _F32, "shifted", fusedActivationFunction="NONE")
    y = ctx.emit1("MAXIMUM", [y, lim_lo], x.shape, _F32, "sat_lo")
    y = ctx.emit1("MINIMUM", [y, lim_hi], x.shape, _F32, "sat_hi")
    ctx.emit1("CAST", [y], x.shape, np.uint8, "y", ctx.output(0, x.shape, np.uint8))


def _zero_point_const(ctx: LowerContext, i: int, what: str) -> np.ndarray:
    if not ctx.has_input(i):
        return np.zeros(1, np.int64)
    return np.asarray(ctx.require_const(i, what)).astype(np.int64)


def _zero_point(ctx: LowerContext, i: int) -> np.ndarray | Tensor:
    """A zero-point input: its constant value, or the run-time scalar tensor (absent: 0)."""
    if not ctx.has_input(i):
        return np.zeros(1, np.int64)
    value = ctx.const(i)
    if value is not None:
        return np.asarray(value).astype(np.int64)
    t = ctx.input(i)
    if t.size != 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "a run-time zero point must be a scalar")
    return t


def _centered_float(ctx: LowerContext, x: Tensor, zp: np.ndarray | Tensor) -> Tensor:
    """float32(x - zp) for a run-time 8-bit integer tensor and a scalar zero point (exact)."""
    f = ctx.emit1("CAST", [x], x.shape, _F32, "as_float")
    if isinstance(zp, Tensor):
        zf = ctx.emit1("CAST", [zp], zp.shape, _F32, "zero_point")
        return ctx.emit1("SUB", [f, zf], x.shape, _F32, "centered", fusedActivationFunction="NONE")
    if int(zp.reshape(-1)[0]) == 0:
        return f
    return ctx.emit1("SUB", [f, ctx.new_const(np.float32(zp.reshape(-1)[0]), hint="zero_point")], x.shape, _F32,
                     "centered", fusedActivationFunction="NONE")


def _abs_bound(x: Tensor, zp: np.ndarray | Tensor) -> int:
    """Largest |x - zp| an 8-bit tensor can hold (its data when constant)."""
    if isinstance(zp, Tensor):
        lo, hi = _qrange(x.dtype)
        return hi - lo
    if x.is_const:
        return int(np.abs(x.data.astype(np.int64) - zp.reshape(-1)[0]).max(initial=0))
    lo, hi = _qrange(x.dtype)
    z = int(zp.reshape(-1)[0])
    return max(abs(lo - z), abs(hi - z))


def _chunks(k: int, limit: int) -> list[tuple[int, int]]:
    """Split range(k) into contiguous pieces of at most ``limit`` elements."""
    limit = max(1, limit)
    return [(s, min(k, s + limit)) for s in range(0, k, limit)]


@lowering("MatMulInteger", since=10, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES)
def lower_matmul_integer(node: NodeView, ctx: LowerContext) -> None:
    """MatMulInteger -> exact float32 FULLY_CONNECTED/BATCH_MATMUL on centered values, CAST to int32.

    Every partial sum is an integer below 2**24 (the reduction is split into chunks where it
    could exceed that, and chunk results are added in int32), so the result is exact.
    """
    a, b = ctx.input(0), ctx.input(1)
    for i, t in ((0, a), (1, b)):
        _check_qdtype(ctx, t.dtype, f"input {i}")
    if a.rank < 2 or b.rank != 2:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"MatMulInteger of ranks {a.rank} x {b.rank}: A must have rank >= 2 and B rank 2")
    azp = _zero_point(ctx, 2)
    bzp = _zero_point(ctx, 3)
    if not isinstance(azp, Tensor) and azp.size != 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "a per-row a_zero_point is not supported")
    k, n = b.shape
    if a.shape[-1] != k:
        raise ctx.fail(Reason.INVALID_MODEL, f"inner dims differ: {list(a.shape)} x {list(b.shape)}")
    if bzp.size not in (1, n):
        raise ctx.fail(Reason.INVALID_MODEL, f"b_zero_point has {bzp.size} elements, expected 1 or {n}")
    out_shape = tuple(a.shape[:-1]) + (n,)
    out = ctx.output(0, out_shape, np.int32)
    af = _centered_float(ctx, a, azp)
    a_bound = _abs_bound(a, azp)
    const_b = b.is_const and not isinstance(bzp, Tensor)
    if const_b:
        wt = (b.data.astype(np.int64) - bzp.reshape(1, -1)).T  # (N, K)
        col = np.abs(wt)
        limit = k
        if a_bound * int(col.sum(axis=1).max(initial=0)) > _EXACT_F32:
            per_k = max(1, int(col.max(initial=1)) * a_bound)
            limit = max(1, _EXACT_F32 // per_k)
        pieces = _chunks(k, limit)
    else:
        if bzp.size != 1:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "per-column b_zero_point needs a constant B")
        bf = _centered_float(ctx, b, bzp)
        pieces = _chunks(k, _EXACT_F32 // max(1, a_bound * _abs_bound(b, bzp)))
    acc: Tensor | None = None
    for s, e in pieces:
        a_part = af if (s, e) == (0, k) else _slice_last(ctx, af, s, e)
        shape = tuple(a.shape[:-1]) + (n,)
        if const_b:
            w = ctx.new_const(np.ascontiguousarray(wt[:, s:e], dtype=_F32), hint="weights")
            y = ctx.emit1("FULLY_CONNECTED", [a_part, w, None], shape, _F32, "fc", fusedActivationFunction="NONE",
                          weightsFormat="DEFAULT", keepNumDims=a.rank > 2)
        else:
            b_part = bf if (s, e) == (0, k) else _slice_rows(ctx, bf, s, e)
            y = ctx.emit1("BATCH_MATMUL", [a_part, b_part], shape, _F32, "matmul", adjX=False, adjY=False)
        last = (s, e) == pieces[-1]
        yi = ctx.emit1("CAST", [y], shape, np.int32, "as_int", out if last and acc is None else None)
        if acc is not None:
            yi = ctx.emit1("ADD", [acc, yi], shape, np.int32, "sum", out if last else None,
                           fusedActivationFunction="NONE")
        acc = yi


def _slice_last(ctx: LowerContext, x: Tensor, s: int, e: int) -> Tensor:
    begin = np.zeros(x.rank, np.int32)
    begin[-1] = s
    size = np.array(x.shape, np.int32)
    size[-1] = e - s
    return ctx.emit1("SLICE", [x, ctx.new_const(begin, hint="begin"), ctx.new_const(size, hint="size")],
                     tuple(int(v) for v in size), x.dtype, "part")


def _slice_rows(ctx: LowerContext, x: Tensor, s: int, e: int) -> Tensor:
    return ctx.emit1("SLICE", [x, ctx.new_const(np.array([s, 0], np.int32), hint="begin"),
                               ctx.new_const(np.array([e - s, x.shape[1]], np.int32), hint="size")],
                     (e - s, x.shape[1]), x.dtype, "part")


@lowering("ConvInteger", since=10, onnx_dtypes=_QTYPES, dtypes=_QTYPES, verified=_QTYPES)
def lower_conv_integer(node: NodeView, ctx: LowerContext) -> None:
    """ConvInteger -> exact float32 convolution of (x - x_zp) and (w - w_zp), CAST to int32.

    ONNX pads the centered input with zeros. Fails when a partial sum could reach 2**24
    (float32 would no longer be exact).
    """
    x, w = ctx.input(0), ctx.input(1)
    _check_qdtype(ctx, x.dtype, "input 0")
    _check_qdtype(ctx, w.dtype, "the weights")
    xzp = _zero_point(ctx, 2)
    if not isinstance(xzp, Tensor) and xzp.size != 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "x_zero_point must be a scalar")
    c_out = w.shape[0]
    zp_shape = (-1,) + (1,) * (w.rank - 1)
    if w.is_const and not _is_runtime(ctx, 3):
        wzp = _zero_point_const(ctx, 3, "w_zero_point")
        if wzp.size not in (1, c_out):
            raise ctx.fail(Reason.INVALID_MODEL, f"w_zero_point has {wzp.size} elements, expected 1 or {c_out}")
        centered = w.data.astype(np.int64) - wzp.reshape(zp_shape)
        w_sum = int(np.abs(centered).reshape(c_out, -1).sum(axis=1).max(initial=0))
        wf = ctx.new_const(centered.astype(_F32), hint="weights")
    else:
        # Run-time weights (or zero points): bound the sums by the dtype ranges. The float Conv
        # lowering decides whether it takes run-time weights.
        lo, hi = _qrange(w.dtype)
        w_sum = (hi - lo) * int(np.prod(w.shape[1:]))
        wf = ctx.emit1("CAST", [w], w.shape, _F32, "w_float")
        if ctx.has_input(3):
            zp_t = ctx.input(3)
            if zp_t.size not in (1, c_out):
                raise ctx.fail(Reason.INVALID_MODEL, f"w_zero_point has {zp_t.size} elements, expected 1 or {c_out}")
            zp_f = _float_param(ctx, 3, 0, 0, "w_zero_point") if zp_t.size == 1 else ctx.reshape(
                _float_param(ctx, 3, 1, 0, "w_zero_point"), (c_out,) + (1,) * (w.rank - 1))
            wf = ctx.emit1("SUB", [wf, zp_f], w.shape, _F32, "w_centered", fusedActivationFunction="NONE")
    if _abs_bound(x, xzp) * w_sum > _EXACT_F32:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       "ConvInteger sums could exceed 2**24; LiteRT has no exact int32 convolution for them")
    xf = _centered_float(ctx, x, xzp)
    shape = ctx.out_shape(0)
    if shape is None:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, "the output shape is not known")
    y = ctx.tmp(shape, _F32, "conv")
    attrs = {k: v for k, v in node.attrs.items() if k in ("auto_pad", "dilations", "group", "kernel_shape",
                                                          "pads", "strides")}
    run_float_lowering(ctx, "Conv", [xf, wf, None], y, attrs)
    ctx.emit1("CAST", [y], shape, np.int32, "as_int", ctx.output(0, shape, np.int32))

