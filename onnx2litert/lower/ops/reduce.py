"""Lowerings of the reduce family (see the package docstring for the op list).

ReduceMean/Sum/Max/Min/Prod map to MEAN/SUM/REDUCE_MAX/REDUCE_MIN/REDUCE_PROD with a constant
int32 axes tensor; ReduceL2 is SQRT(SUM(SQUARE(x))), ReduceL1 SUM(ABS(x)), ReduceSumSquare
SUM(SQUARE(x)), ReduceLogSum LOG(SUM(x)), and ReduceLogSumExp the max-subtracted
LOG(SUM(EXP(x - max))) + max. Axes come from the ``axes`` attribute before opset 18 (before
13 for ReduceSum) and from an optional constant input after.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering

_OPCODE = {"ReduceMean": "MEAN", "ReduceSum": "SUM", "ReduceMax": "REDUCE_MAX", "ReduceMin": "REDUCE_MIN",
           "ReduceProd": "REDUCE_PROD", "ReduceL2": "SUM"}
# Boolean max/min (ONNX opset 20) are logical any/all.
_BOOL_OPCODE = {"ReduceMax": "REDUCE_ANY", "ReduceMin": "REDUCE_ALL"}
_BOOL = np.dtype(np.bool_)
# The opset from which ``axes`` is an input (and ``noop_with_empty_axes`` exists).
_AXES_INPUT_SINCE = {"ReduceSum": 13}
_DEFAULT_AXES_INPUT_SINCE = 18


def normalize_axes(axes: Iterable[int], rank: int) -> tuple[int, ...] | None:
    """Sorted non-negative axes, or None when one is out of range or repeated."""
    out = []
    for a in axes:
        a = int(a)
        if not -rank <= a < rank:
            return None
        out.append(a + rank if a < 0 else a)
    return tuple(sorted(out)) if len(set(out)) == len(out) else None


def reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    """Shape after reducing ``axes`` of ``shape``."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _node_axes(node: NodeView, ctx: LowerContext) -> list[int] | None:
    """The axes the node names (None = not given)."""
    if node.opset >= _AXES_INPUT_SINCE.get(node.op_type, _DEFAULT_AXES_INPUT_SINCE):
        if not ctx.has_input(1):
            return None
        value = ctx.require_const(1, "the axes input")
        return [int(v) for v in np.asarray(value).reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else [int(v) for v in axes]


def _emit_per_element(ctx: LowerContext, op_type: str, x: Tensor, out: Tensor) -> None:
    """A reduction over no axes: only its per-element part applies (|x|, x^2, log x, or a copy)."""
    elementwise = _NOOP_ELEMENTWISE.get(op_type)
    if elementwise is not None:
        ctx.emit(elementwise, [x], [out])
    else:
        ctx.reshape(x, x.shape, out=out)


def _lower_reduce(node: NodeView, ctx: LowerContext) -> None:
    x = ctx.input(0)
    keepdims = bool(node.attr("keepdims", 1))
    noop = bool(node.attr("noop_with_empty_axes", 0))
    given = _node_axes(node, ctx)
    if not given and noop:
        # noop_with_empty_axes and no axes: nothing is reduced, but the per-element part of the
        # reduction still applies (ONNX Runtime and the reference agree): L2 of one element is |x|.
        out = ctx.output(0, x.shape, x.dtype)
        _emit_per_element(ctx, node.op_type, x, out)
        return
    axes = normalize_axes(given if given else range(x.rank), x.rank)
    if axes is None:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"axes {given} are out of range or repeated for rank {x.rank}")
    shape = reduced_shape(x.shape, axes, keepdims)
    out = ctx.output(0, shape, x.dtype)
    if not axes:  # reducing a rank-0 tensor over no axes: only the per-element part applies
        _emit_per_element(ctx, node.op_type, x, out)
        return
    axes_t = ctx.new_const(np.array(axes, np.int32), hint="axes")
    if node.op_type in _COMPOSITE:
        _COMPOSITE[node.op_type](ctx, x, axes_t, shape, keepdims, out)
        return
    if node.op_type == "ReduceL2":
        sq = ctx.emit1("SQUARE", [x], x.shape, x.dtype, "square")
        total = ctx.emit1("SUM", [sq, axes_t], shape, x.dtype, "sum_sq", keepDims=keepdims)
        ctx.emit("SQRT", [total], [out])
        return
    opcode = _BOOL_OPCODE[node.op_type] if x.dtype == _BOOL else _OPCODE[node.op_type]
    ctx.emit(opcode, [x, axes_t], [out], keepDims=keepdims)


# noop_with_empty_axes with no axes reduces nothing, but the per-element part still applies
# (checked against ONNX Runtime): |x|, x^2, log(x); LogSumExp of one element is x itself.
_NOOP_ELEMENTWISE = {"ReduceL2": "ABS", "ReduceL1": "ABS", "ReduceSumSquare": "SQUARE", "ReduceLogSum": "LOG"}


def _emit_sum_of(ctx: LowerContext, elementwise: str, x: Tensor, axes_t: Tensor, shape: tuple[int, ...],
                 keepdims: bool, out: Tensor) -> Tensor:
    """SUM(elementwise(x)) into ``out``."""
    mapped = ctx.emit1(elementwise, [x], x.shape, x.dtype, elementwise.lower())
    return ctx.emit1("SUM", [mapped, axes_t], shape, x.dtype, "sum", out, keepDims=keepdims)


def _reduce_l1(ctx: LowerContext, x: Tensor, axes_t: Tensor, shape: tuple[int, ...], keepdims: bool,
               out: Tensor) -> None:
    _emit_sum_of(ctx, "ABS", x, axes_t, shape, keepdims, out)


def _reduce_sum_square(ctx: LowerContext, x: Tensor, axes_t: Tensor, shape: tuple[int, ...], keepdims: bool,
                       out: Tensor) -> None:
    _emit_sum_of(ctx, "SQUARE", x, axes_t, shape, keepdims, out)


def _reduce_log_sum(ctx: LowerContext, x: Tensor, axes_t: Tensor, shape: tuple[int, ...], keepdims: bool,
                    out: Tensor) -> None:
    total = ctx.emit1("SUM", [x, axes_t], shape, x.dtype, "sum", keepDims=keepdims)
    ctx.emit("LOG", [total], [out])


def _reduce_log_sum_exp(ctx: LowerContext, x: Tensor, axes_t: Tensor, shape: tuple[int, ...], keepdims: bool,
                        out: Tensor) -> None:
    """log(sum(exp(x))) = m + log(sum(exp(x - m))) with m = max(x): EXP never overflows."""
    kept = reduced_shape(x.shape, tuple(int(a) for a in axes_t.data), True)
    m = ctx.emit1("REDUCE_MAX", [x, axes_t], kept, x.dtype, "max", keepDims=True)
    shifted = ctx.emit1("SUB", [x, m], x.shape, x.dtype, "shifted", fusedActivationFunction="NONE")
    e = ctx.emit1("EXP", [shifted], x.shape, x.dtype, "exp")
    total = ctx.emit1("SUM", [e, axes_t], shape, x.dtype, "sum", keepDims=keepdims)
    logged = ctx.emit1("LOG", [total], shape, x.dtype, "log")
    m_out = m if keepdims else ctx.reshape(m, shape)
    ctx.emit("ADD", [logged, m_out], [out], fusedActivationFunction="NONE")


_COMPOSITE = {"ReduceL1": _reduce_l1, "ReduceSumSquare": _reduce_sum_square, "ReduceLogSum": _reduce_log_sum,
              "ReduceLogSumExp": _reduce_log_sum_exp}


def _register(op_type: str, dtypes: tuple[str, ...]) -> None:
    onnx_dtypes = ("float32", "float16", "float64", "bfloat16", "int32", "int64", "uint32", "uint64",
                   "int8", "uint8") + (("bool",) if op_type in _BOOL_OPCODE else ())
    lowering(op_type, since=7, onnx_dtypes=onnx_dtypes, dtypes=dtypes, verified=dtypes)(_lower_reduce)


# Dtypes verified end to end (LiteRT vs ONNX Runtime) in tests/test_ops_reduce.py.
_register("ReduceMean", ("float32", "int32", "int64"))
_register("ReduceSum", ("float32", "int32", "int64"))
_register("ReduceMax", ("float32", "int32", "int64", "bool"))
_register("ReduceMin", ("float32", "int32", "int64", "bool"))
_register("ReduceProd", ("float32", "int32", "int64"))
_register("ReduceL2", ("float32",))
_register("ReduceL1", ("float32",))
_register("ReduceSumSquare", ("float32",))
_register("ReduceLogSum", ("float32",))
_register("ReduceLogSumExp", ("float32",))
