"""Lowerings of the reduce family (see the package docstring for the op list).

ReduceMean/Sum/Max/Min/Prod map to MEAN/SUM/REDUCE_MAX/REDUCE_MIN/REDUCE_PROD with a constant
int32 axes tensor; ReduceL2 is SQRT(SUM(SQUARE(x))). Axes come from the ``axes`` attribute
before opset 18 (before 13 for ReduceSum) and from an optional constant input after.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ...errors import Reason
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


def _lower_reduce(node: NodeView, ctx: LowerContext) -> None:
    x = ctx.input(0)
    keepdims = bool(node.attr("keepdims", 1))
    noop = bool(node.attr("noop_with_empty_axes", 0))
    given = _node_axes(node, ctx)
    if not given and noop:
        # noop_with_empty_axes and no axes: nothing is reduced, but the per-element part of the
        # reduction still applies (ONNX Runtime and the reference agree): L2 of one element is |x|.
        out = ctx.output(0, x.shape, x.dtype)
        if node.op_type == "ReduceL2":
            ctx.emit("ABS", [x], [out])
        else:
            ctx.reshape(x, x.shape, out=out)
        return
    axes = normalize_axes(given if given else range(x.rank), x.rank)
    if axes is None:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"axes {given} are out of range or repeated for rank {x.rank}")
    shape = reduced_shape(x.shape, axes, keepdims)
    out = ctx.output(0, shape, x.dtype)
    if not axes:
        ctx.reshape(x, x.shape, out=out)  # reducing a rank-0 tensor over no axes
        return
    axes_t = ctx.new_const(np.array(axes, np.int32), hint="axes")
    if node.op_type == "ReduceL2":
        sq = ctx.emit1("SQUARE", [x], x.shape, x.dtype, "square")
        total = ctx.emit1("SUM", [sq, axes_t], shape, x.dtype, "sum_sq", keepDims=keepdims)
        ctx.emit("SQRT", [total], [out])
        return
    opcode = _BOOL_OPCODE[node.op_type] if x.dtype == _BOOL else _OPCODE[node.op_type]
    ctx.emit(opcode, [x, axes_t], [out], keepDims=keepdims)


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
