"""Lowerings of the reduce family (see the package docstring for the op list).

ReduceMean/Sum/Max/Min/Prod map to MEAN/SUM/REDUCE_MAX/REDUCE_MIN/REDUCE_PROD with a constant
int32 axes tensor; ReduceL2 is SQRT(SUM(SQUARE(x))), ReduceL1 SUM(ABS(x)), ReduceSumSquare
SUM(SQUARE(x)), ReduceLogSum LOG(SUM(x)), and ReduceLogSumExp the max-subtracted
LOG(SUM(EXP(x - max))) + max. Axes come from the ``axes`` attribute before opset 18 (before
13 for ReduceSum) and from an optional constant input after.
"""
from __future__ import annotations

import itertools
from typing import Iterable

import ml_dtypes
import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering
from .elementwise import float32_route

_BF16 = np.dtype(ml_dtypes.bfloat16)
_F16 = np.dtype(np.float16)

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


class _RuntimeAxes:
    """Marker: the axes are a non-constant input (see :func:`implied_axes`)."""


_RUNTIME = _RuntimeAxes()


def _node_axes(node: NodeView, ctx: LowerContext) -> list[int] | None | _RuntimeAxes:
    """The axes the node names (None = not given, ``_RUNTIME`` = a non-constant input)."""
    if node.opset >= _AXES_INPUT_SINCE.get(node.op_type, _DEFAULT_AXES_INPUT_SINCE):
        if not ctx.has_input(1):
            return None
        value = ctx.const(1)
        if value is None:
            # A statically empty axes tensor is known to be empty whatever its values.
            return [] if 0 in ctx.in_shape(1) else _RUNTIME
        return [int(v) for v in np.asarray(value).reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else [int(v) for v in axes]


def implied_axes(in_shape: tuple[int, ...], out_shape: tuple[int, ...], keepdims: bool,
                 max_rank: int = 10) -> tuple[int, ...] | None:
    """The reduced axes of size > 1 implied by the static shapes, or None when not unique.

    Reducing a size-1 axis does not change any value (nor does reducing nothing), so only the
    reduced axes with size > 1 matter; the result is then reshaped to the static output shape.
    With keepdims those are exactly the axes where the size drops to 1. Without keepdims every
    way of deleting axes from the input shape that leaves the output shape is tried, and the
    answer must be the same for all of them (e.g. (3, 2, 2) -> (3, 2) is ambiguous).
    """
    rank = len(in_shape)
    if keepdims:
        if len(out_shape) != rank:
            return None
        axes = []
        for i, (a, b) in enumerate(zip(in_shape, out_shape)):
            if a == b:
                continue
            if b != 1:
                return None
            axes.append(i)
        return tuple(axes)
    removed = rank - len(out_shape)
    if removed < 0 or rank > max_rank:
        return None
    found: set[tuple[int, ...]] = set()
    for drop in itertools.combinations(range(rank), removed):
        if tuple(d for i, d in enumerate(in_shape) if i not in drop) == tuple(out_shape):
            found.add(tuple(i for i in drop if in_shape[i] != 1))
    return found.pop() if len(found) == 1 else None


def _empty_identity(op_type: str, dtype: np.dtype) -> float | bool | None:
    """The value of a reduction over an empty set, or None when it has none we can represent."""
    if dtype == _BOOL:
        return {"ReduceMax": False, "ReduceMin": True}.get(op_type)
    if dtype.kind != "f":
        return {"ReduceSum": 0, "ReduceProd": 1}.get(op_type)
    return {"ReduceSum": 0.0, "ReduceL1": 0.0, "ReduceL2": 0.0, "ReduceSumSquare": 0.0, "ReduceProd": 1.0,
            "ReduceMax": -np.inf, "ReduceMin": np.inf, "ReduceLogSum": -np.inf,
            "ReduceLogSumExp": -np.inf}.get(op_type)  # ONNX leaves ReduceMean of an empty set undefined


def _lower_zero_sized(node: NodeView, ctx: LowerContext, x: Tensor) -> None:
    """A zero-sized input: every output element reduces an empty set, so the output is a constant."""
    shape = ctx.out_shape(0)
    if shape is None:
        raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, "the output shape of a reduction of a zero-sized "
                                                         "input is not known")
    value = _empty_identity(node.op_type, x.dtype)
    if value is None and int(np.prod(shape)) > 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{node.op_type} over an empty set of {x.dtype} values has no representable result")
    filled = np.full(tuple(shape), 0 if value is None else value, dtype=x.dtype)
    ctx.graph.values[node.outputs[0]] = ctx.new_const(filled, hint="empty_reduction")


def _lower_runtime_axes(node: NodeView, ctx: LowerContext, x: Tensor, keepdims: bool) -> None:
    """Axes computed at run time: use the ones the static output shape implies, else pass them on."""
    shape = ctx.out_shape(0)
    if shape is None:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       "the axes input must be a constant when the output shape is not known")
    shape = tuple(shape)
    out = ctx.output(0, shape, x.dtype)
    axes = implied_axes(x.shape, shape, keepdims)
    if axes is not None:
        if not axes:
            # Nothing of size > 1 is reduced: only the per-element part applies.
            y = out if shape == x.shape else ctx.tmp(x.shape, x.dtype, "elementwise")
            _emit_per_element(ctx, node.op_type, x, y)
        else:
            kept = reduced_shape(x.shape, axes, True)
            y = out if shape == kept else ctx.tmp(kept, x.dtype, "reduced")
            _emit_reduction(ctx, node.op_type, x, ctx.new_const(np.array(axes, np.int32), hint="axes"),
                            kept, True, y)
        if y is not out:
            ctx.reshape(y, shape, out=out)
        return
    if node.op_type == "ReduceLogSumExp":
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       "the axes input must be a constant (the output shape does not determine it)")
    # Ambiguous only without keepdims and with fewer output than input dims, so the runtime axes
    # are non-empty (an empty axes tensor would reduce all or nothing). The LiteRT reduce kernels
    # take int32 axes at run time, resolve negative axes and ignore repeats, as ONNX does.
    axes_in = ctx.input(1)
    axes_t = axes_in if axes_in.dtype == np.int32 else ctx.emit1(
        "CAST", [axes_in], axes_in.shape, np.int32, "axes_i32")
    _emit_reduction(ctx, node.op_type, x, axes_t, shape, keepdims, out)


def _emit_reduction(ctx: LowerContext, op_type: str, x: Tensor, axes_t: Tensor, shape: tuple[int, ...],
                    keepdims: bool, out: Tensor) -> None:
    """Reduce ``x`` over the (non-empty) axes in ``axes_t`` into ``out`` of static shape ``shape``."""
    if op_type in _COMPOSITE:
        _COMPOSITE[op_type](ctx, x, axes_t, shape, keepdims, out)
        return
    if op_type == "ReduceL2":
        sq = ctx.emit1("SQUARE", [x], x.shape, x.dtype, "square")
        total = ctx.emit1("SUM", [sq, axes_t], shape, x.dtype, "sum_sq", keepDims=keepdims)
        ctx.emit("SQRT", [total], [out])
        return
    opcode = _BOOL_OPCODE[op_type] if x.dtype == _BOOL else _OPCODE[op_type]
    ctx.emit(opcode, [x, axes_t], [out], keepDims=keepdims)


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
    if 0 in x.shape:
        _lower_zero_sized(node, ctx, x)
        return
    given = _node_axes(node, ctx)
    if given is _RUNTIME:
        _lower_runtime_axes(node, ctx, x, keepdims)
        return
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
    _emit_reduction(ctx, node.op_type, x, ctx.new_const(np.array(axes, np.int32), hint="axes"), shape,
                    keepdims, out)


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
    # bfloat16/float16 max/min are exact through float32 (values are only selected, never rounded).
    fn = float32_route(_BF16, _F16)(_lower_reduce) if "bfloat16" in dtypes else _lower_reduce
    lowering(op_type, since=7, onnx_dtypes=onnx_dtypes, dtypes=dtypes, verified=dtypes,
             zero_size_inputs=True)(fn)


# Dtypes verified end to end (LiteRT vs ONNX Runtime) in tests/test_ops_reduce.py.
_register("ReduceMean", ("float32", "int32", "int64"))
_register("ReduceSum", ("float32", "int32", "int64"))
_register("ReduceMax", ("float32", "int32", "int64", "bool", "bfloat16", "float16"))
_register("ReduceMin", ("float32", "int32", "int64", "bool", "bfloat16", "float16"))
_register("ReduceProd", ("float32", "int32", "int64"))
_register("ReduceL2", ("float32",))
_register("ReduceL1", ("float32",))
_register("ReduceSumSquare", ("float32",))
_register("ReduceLogSum", ("float32",))
_register("ReduceLogSumExp", ("float32",))
