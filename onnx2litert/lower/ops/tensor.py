"""Lowerings of the tensor family (see the package docstring for the op list).

These ops move data without arithmetic, so they claim every dtype the emitted LiteRT
kernels accept (checked in the stock interpreter with its XNNPACK delegate). Index
arithmetic (Slice clamping, Pad cropping, Gather negative indices, Split chunking) is done
in numpy at conversion time wherever the parameters are constant, so the emitted ops only
see normalized, in-range values.

Not foldable here means the frontend kept the node: either an input is computed at run
time, or the node produces a graph output (the frontend never folds those).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from onnx import numpy_helper

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering
from .elementwise import via_float32

# Every ONNX tensor element type; these ops accept all of them in ONNX.
ONNX_ALL = ("float32", "float16", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
            "uint16", "uint32", "uint64", "bool", "string", "complex64", "complex128")
FLOAT_TYPES = ("float32", "float16", "float64", "bfloat16")
# Dtypes the data-movement kernels (TRANSPOSE, CONCATENATION, STRIDED_SLICE, PAD, PADV2,
# MIRROR_PAD, GATHER, SHAPE, FILL) accept in the stock interpreter, each verified by a test.
DATA = ("float32", "float16", "int32", "int64", "bool", "int8", "uint8")
# RESHAPE-based ops (Flatten, Reshape, Squeeze, Unsqueeze, Identity). The stock op resolver
# registers only RESHAPE v1, for every dtype; the exporter must version it 1 (it does).
# RESHAPE and SHAPE also take bfloat16 as is.
RESHAPE_DATA = DATA + ("bfloat16",)
# The other data-movement ops take bfloat16 through float32 (``via_float32``: exact CASTs).
DATA_BF16 = DATA + ("bfloat16",)

# Kernel rank limits measured in the stock interpreter.
_MAX_RANK_TRANSPOSE = 6
_MAX_RANK_CONCAT = 6  # XNNPACK refuses rank-7 CONCATENATION; higher ranks go through 3-D.
_MAX_RANK_PAD = 5  # the builtin PAD kernel (reference_ops::PadKernelMaxDimensionCount) stops at 5
_MAX_RANK_PADV2 = 5

_INT32_MAX = np.iinfo(np.int32).max


# -- small pure helpers ----------------------------------------------------------------------
def normalize_axis(axis: int, rank: int) -> int | None:
    """``axis`` in [0, rank), or None when it is outside [-rank, rank)."""
    axis = int(axis)
    if axis < 0:
        axis += rank
    return axis if 0 <= axis < rank else None


def _axis(ctx: LowerContext, axis: int, rank: int, what: str = "axis") -> int:
    a = normalize_axis(axis, rank)
    if a is None:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{what} {axis} is out of range for rank {rank}")
    return a


def _axes(ctx: LowerContext, axes: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    out = [_axis(ctx, a, rank, what) for a in axes]
    if len(set(out)) != len(out):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{what} {list(axes)} repeat an axis")
    return out


def _ints(values: np.ndarray | Sequence[int]) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def _require_nonempty(ctx: LowerContext, shape: Sequence[int], what: str = "the output") -> None:
    """LiteRT kernels are not verified on zero-sized tensors: refuse them explicitly."""
    if any(int(d) <= 0 for d in shape):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{what} would have shape {list(shape)}; zero-sized tensors are not supported")


def is_empty(shape: Sequence[int]) -> bool:
    """True when a tensor of ``shape`` holds no elements."""
    return any(int(d) == 0 for d in shape)


def set_empty_output(ctx: LowerContext, index: int, shape: Sequence[int], dtype: np.dtype | type | None = None
                     ) -> None:
    """Register an empty constant of the static ``shape`` as ONNX output ``index``.

    A tensor with no elements has no values, so this is exact whatever the op computes; it keeps
    zero-sized tensors away from LiteRT kernels, which are not all safe on them. A graph output
    gets the driver's copy (a RESHAPE of the empty constant).
    """
    name = ctx.node.outputs[index]
    if dtype is None:
        dtype = ctx.graph.dtypes.get(name, ctx.input(0).dtype)
    ctx.graph.values[name] = ctx.new_const(np.zeros(tuple(int(d) for d in shape), np.dtype(dtype)), hint="empty")


def _const_or_attr(ctx: LowerContext, node: NodeView, input_index: int, attr: str, since: int,
                   what: str) -> list[int] | None:
    """An int list given as attribute ``attr`` before opset ``since`` and as input after it."""
    if node.opset < since:
        value = node.attr(attr)
        return None if value is None else _ints(value)
    if not ctx.has_input(input_index):
        return None
    return _ints(ctx.require_const(input_index, what))


def _implied_shape(ctx: LowerContext, what: str, index: int = 0) -> tuple[int, ...]:
    """The static shape of output ``index``, for a node whose parameter ``what`` is a run-time tensor.

    Used only where that shape alone determines the result (a valid model must produce it), e.g.
    Reshape / Squeeze / Unsqueeze (a copy into that shape) or Split sizes (one per output).
    """
    shape = ctx.out_shape(index)
    if shape is None or any(not isinstance(d, (int, np.integer)) or int(d) < 0 for d in shape):
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       f"{what} is computed at run time and the output shape is not known; make it a constant")
    return tuple(int(d) for d in shape)


def _copy_into_implied(ctx: LowerContext, x: Tensor, what: str) -> None:
    """Copy ``x`` into output 0 whose static shape is implied (same element count required)."""
    shape = _implied_shape(ctx, what)
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ctx.fail(Reason.INVALID_MODEL,
                       f"output shape {list(shape)} does not hold the {x.size} elements of the input")
    _copy_or_empty(ctx, x, shape)


def _copy_or_empty(ctx: LowerContext, x: Tensor, shape: Sequence[int]) -> None:
    """Output 0 = ``x`` in ``shape`` (same element count): a RESHAPE, or an empty constant."""
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, x.dtype)
        return
    copy_to(ctx, x, ctx.output(0, shape=tuple(shape), dtype=x.dtype))


def copy_to(ctx: LowerContext, x: Tensor, out: Tensor) -> Tensor:
    """Copy ``x`` into ``out`` (same element count) with one RESHAPE."""
    return ctx.reshape(x, out.shape, out=out)


def strided_slice(ctx: LowerContext, x: Tensor, begin: Sequence[int], end: Sequence[int],
                  strides: Sequence[int], end_mask: int = 0, out: Tensor | None = None) -> Tensor:
    """Emit STRIDED_SLICE with normalized constant parameters; the output shape is computed here."""
    shape = []
    for axis, (b, e, s) in enumerate(zip(begin, end, strides)):
        if end_mask & (1 << axis):
            e = -1 if s < 0 else x.shape[axis]
        shape.append(max(0, math.ceil((e - b) / s)))
    return ctx.emit1("STRIDED_SLICE", [x, ctx.new_const(np.array(begin, np.int32), hint="begin"),
                                       ctx.new_const(np.array(end, np.int32), hint="end"),
                                       ctx.new_const(np.array(strides, np.int32), hint="strides")],
                     tuple(shape), x.dtype, "slice", out, beginMask=0, endMask=end_mask, ellipsisMask=0,
                     newAxisMask=0, shrinkAxisMask=0)


def onnx_slice_bounds(start: int, end: int, step: int, dim: int) -> tuple[int, int, int]:
    """ONNX Slice clamping of one axis: (start, end, count), with end == -1 meaning 'past index 0'.

    Negative values count from the end; starts clamp to [0, dim] (step > 0) or [0, dim-1]
    (step < 0); ends clamp to [0, dim] or [-1, dim-1]. Works on Python ints, so INT64_MAX /
    INT64_MIN style 'to the end' values are exact.
    """
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    count = max(0, -((end - start) // -step)) if step > 0 else max(0, -((start - end) // step))
    return start, end, count


def onnx_pad_index(begin: int, end: int, dim: int, mode: str) -> np.ndarray:
    """Source indices along one axis for ONNX Pad ``edge``/``wrap`` (negative pads crop first)."""
    lo, hi = max(-begin, 0), dim - max(-end, 0)
    n = hi - lo
    j = np.arange(-max(begin, 0), n + max(end, 0))
    local = np.clip(j, 0, n - 1) if mode == "edge" else np.mod(j, n)
    return (lo + local).astype(np.int32)


# -- Flatten / Reshape / Squeeze / Unsqueeze / Identity: one RESHAPE --------------------------
@lowering("Flatten", since=1, onnx_dtypes=ONNX_ALL, dtypes=RESHAPE_DATA, verified=RESHAPE_DATA, zero_size_inputs=True)
def lower_flatten(node: NodeView, ctx: LowerContext) -> None:
    """Flatten -> RESHAPE to (prod(shape[:axis]), prod(shape[axis:])); axis may be negative."""
    x = ctx.input(0)
    axis = int(node.attr("axis", 1))
    if axis < 0:
        axis += x.rank
    if not 0 <= axis <= x.rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axis {node.attr('axis')} is out of range")
    shape = (int(np.prod(x.shape[:axis], dtype=np.int64)), int(np.prod(x.shape[axis:], dtype=np.int64)))
    _copy_or_empty(ctx, x, shape)


def reshape_target(in_shape: Sequence[int], spec: Sequence[int], allowzero: bool) -> tuple[int, ...] | str:
    """ONNX Reshape's output shape, or an error message."""
    out = []
    for i, d in enumerate(spec):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                return f"shape[{i}] = 0 copies a dimension the input (rank {len(in_shape)}) does not have"
            d = in_shape[i]
        out.append(int(d))
    size = int(np.prod(in_shape, dtype=np.int64))
    if out.count(-1) > 1:
        return f"shape {list(spec)} has more than one -1"
    if any(d < -1 for d in out):
        return f"shape {list(spec)} has a negative dimension"
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if known == 0 or size % known:
            return f"cannot infer the -1 in {list(spec)} for {size} elements"
        out[out.index(-1)] = size // known
    if int(np.prod(out, dtype=np.int64)) != size:
        return f"shape {list(spec)} does not hold the {size} elements of shape {list(in_shape)}"
    return tuple(out)


@lowering("Reshape", since=5, onnx_dtypes=ONNX_ALL, dtypes=RESHAPE_DATA, verified=RESHAPE_DATA, zero_size_inputs=True)
def lower_reshape(node: NodeView, ctx: LowerContext) -> None:
    """Reshape (0 copies a dim unless allowzero, -1 is inferred) -> RESHAPE.

    A run-time shape input is only accepted when the node's static output shape is known: a
    reshape is fully determined by its output shape.
    """
    x = ctx.input(0)
    if ctx.const(1) is None:  # a run-time shape: the static output shape is the result's shape
        _copy_into_implied(ctx, x, "the shape input")
        return
    spec = _ints(ctx.require_const(1, "the shape input"))
    allowzero = node.opset >= 14 and bool(node.attr("allowzero", 0))
    shape = reshape_target(x.shape, spec, allowzero)
    if isinstance(shape, str):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, shape)
    _copy_or_empty(ctx, x, shape)


@lowering("Squeeze", since=1, onnx_dtypes=ONNX_ALL, dtypes=RESHAPE_DATA, verified=RESHAPE_DATA, zero_size_inputs=True)
def lower_squeeze(node: NodeView, ctx: LowerContext) -> None:
    """Squeeze (axes attribute < 13, input >= 13; none = every size-1 dim) -> RESHAPE."""
    x = ctx.input(0)
    if node.opset >= 13 and ctx.has_input(1) and ctx.const(1) is None:
        _copy_into_implied(ctx, x, "the axes input")  # a squeeze is a reshape to its output shape
        return
    axes = _const_or_attr(ctx, node, 1, "axes", 13, "the axes input")
    if axes is None:
        drop = {i for i, d in enumerate(x.shape) if d == 1}
    else:
        drop = set(_axes(ctx, axes, x.rank))
        bad = [a for a in drop if x.shape[a] != 1]
        if bad:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"cannot squeeze axes {sorted(bad)} of shape {list(x.shape)}: size is not 1")
    shape = tuple(d for i, d in enumerate(x.shape) if i not in drop)
    _copy_or_empty(ctx, x, shape)


@lowering("Unsqueeze", since=1, onnx_dtypes=ONNX_ALL, dtypes=RESHAPE_DATA, verified=RESHAPE_DATA, zero_size_inputs=True)
def lower_unsqueeze(node: NodeView, ctx: LowerContext) -> None:
    """Unsqueeze (axes attribute < 13, input >= 13; negative axes count in the output) -> RESHAPE."""
    x = ctx.input(0)
    if node.opset >= 13 and ctx.has_input(1) and ctx.const(1) is None:
        _copy_into_implied(ctx, x, "the axes input")  # an unsqueeze is a reshape to its output shape
        return
    axes = _const_or_attr(ctx, node, 1, "axes", 13, "the axes input")
    if not axes:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "Unsqueeze needs axes")
    rank = x.rank + len(axes)
    new = set(_axes(ctx, axes, rank))
    dims = iter(x.shape)
    shape = tuple(1 if i in new else next(dims) for i in range(rank))
    _copy_or_empty(ctx, x, shape)


@lowering("Identity", since=1, onnx_dtypes=ONNX_ALL, dtypes=RESHAPE_DATA, verified=RESHAPE_DATA, zero_size_inputs=True)
def lower_identity(node: NodeView, ctx: LowerContext) -> None:
    """Identity (kept by the frontend only when it feeds a graph output) -> a RESHAPE copy."""
    x = ctx.input(0)
    _copy_or_empty(ctx, x, x.shape)


# -- Dropout (inference) -------------------------------------------------------------------------
def _dropout_is_inference(node: NodeView, ctx: LowerContext) -> None:
    """Fail unless this Dropout computes its inference form (output = input, mask = all ones).

    Training mode with a ratio > 0 draws random numbers; no converted model could reproduce them.
    """
    if node.opset < 7:
        if int(node.attr("is_test", 0)) == 0 and float(node.attr("ratio", 0.5)) != 0.0:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           "is_test=0 with ratio > 0 drops random elements; it cannot be converted exactly")
        return
    if node.opset < 12 or not ctx.has_input(2):
        return
    ratio = ctx.const(1) if ctx.has_input(1) else np.array(0.5, np.float32)
    if ratio is not None and float(np.asarray(ratio).reshape(-1)[0]) == 0.0:
        return  # a ratio of 0 drops nothing, in training mode too (the mask is all true)
    training = ctx.const(2)
    if training is None:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       "training_mode is computed at run time and the ratio is not a constant 0: with "
                       "training_mode true Dropout drops random elements, which no converted model can "
                       "reproduce; make training_mode a constant false (or the ratio a constant 0)")
    if not bool(np.asarray(training).reshape(-1)[0]):
        return
    raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                   "training_mode=true with a ratio that is not a constant 0 drops random elements")


@lowering("Dropout", since=1, onnx_dtypes=FLOAT_TYPES, dtypes=("float32",), verified=("float32",),
          zero_size_inputs=True)
def lower_dropout(node: NodeView, ctx: LowerContext) -> None:
    """Dropout at inference (or training with ratio 0): a copy of the input; mask = all true (FILL).

    The mask output is only lowered from opset 12, where its inference value is defined.
    """
    _dropout_is_inference(node, ctx)
    x = ctx.input(0)
    _copy_or_empty(ctx, x, x.shape)
    if len(node.outputs) < 2 or not node.outputs[1]:
        return
    if node.opset < 12:
        # Before opset 12 the inference mask is not pinned down: ONNX Runtime returns all zeros
        # (false), the reference implementation all ones. Refuse rather than pick one.
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "the mask output before opset 12 has no defined "
                       "inference value (ONNX Runtime gives zeros, the ONNX reference ones)")
    dtype = np.dtype(np.bool_)
    ones = np.ones((), dtype)
    if is_empty(x.shape):
        set_empty_output(ctx, 1, x.shape, dtype)
        return
    if x.rank == 0:
        ctx.graph.values[node.outputs[1]] = ctx.new_const(ones, hint="mask")
        return
    ctx.emit("FILL", [ctx.new_const(np.array(x.shape, np.int32), hint="dims"), ctx.new_const(ones, hint="one")],
             [ctx.output(1, shape=x.shape, dtype=dtype)])


# -- Transpose / Concat ------------------------------------------------------------------------
@lowering("Transpose", since=1, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, zero_size_inputs=True)
@via_float32
def lower_transpose(node: NodeView, ctx: LowerContext) -> None:
    """Transpose (perm, default reversed) -> TRANSPOSE (rank <= 6)."""
    x = ctx.input(0)
    perm = node.attr("perm")
    perm = list(range(x.rank))[::-1] if perm is None else _ints(perm)
    if sorted(perm) != list(range(x.rank)):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"perm {perm} is not a permutation of rank {x.rank}")
    if x.rank > _MAX_RANK_TRANSPOSE:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"rank {x.rank} > {_MAX_RANK_TRANSPOSE}: LiteRT TRANSPOSE supports at most 6 dims")
    shape = tuple(x.shape[p] for p in perm)
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, x.dtype)
        return
    ctx.transpose(x, tuple(perm), out=ctx.output(0, shape=shape))


@lowering("Concat", since=4, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, zero_size_inputs=True)
@via_float32
def lower_concat(node: NodeView, ctx: LowerContext) -> None:
    """Concat (axis, negative allowed) -> CONCATENATION; rank > 6 goes through 3-D reshapes."""
    xs = [ctx.input(i) for i in range(len(node.inputs)) if ctx.has_input(i)]
    rank = xs[0].rank
    if any(x.rank != rank for x in xs) or rank == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "Concat inputs must share one rank >= 1")
    axis = _axis(ctx, node.attr("axis", 1 if node.opset < 4 else 0), rank)
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, xs[0].dtype)
        return
    out = ctx.output(0, shape=tuple(shape))
    xs = [x for x in xs if x.shape[axis] > 0]  # empty pieces contribute nothing
    if len(xs) == 1:
        copy_to(ctx, xs[0], out)
        return
    if rank <= _MAX_RANK_CONCAT:
        ctx.emit("CONCATENATION", xs, [out], axis=axis, fusedActivationFunction="NONE")
        return
    outer, inner = int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1:], dtype=np.int64))
    parts = [ctx.reshape(x, (outer, x.shape[axis], inner)) for x in xs]
    y = ctx.emit1("CONCATENATION", parts, (outer, shape[axis], inner), out.dtype, "concat3d",
                  axis=1, fusedActivationFunction="NONE")
    copy_to(ctx, y, out)


# -- Split --------------------------------------------------------------------------------------
def split_sizes(node: NodeView, ctx: LowerContext, dim: int) -> list[int]:
    """Chunk sizes along the split axis for every opset's way of giving them."""
    n_out = len(node.outputs)
    if node.opset >= 13 and ctx.has_input(1) and ctx.const(1) is None:
        return _implied_split_sizes(node, ctx, dim)
    sizes = _const_or_attr(ctx, node, 1, "split", 13, "the split input")
    if sizes is not None and len(sizes) > 0:
        if len(sizes) != n_out or sum(sizes) != dim or min(sizes) < 0:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"split {sizes} does not divide dimension {dim} into {n_out} outputs")
        return sizes
    num = node.attr("num_outputs") if node.opset >= 18 else None
    if num is not None:
        chunk = -(-dim // int(num))  # ceil: every chunk but the last is full
        sizes = [chunk] * (int(num) - 1) + [dim - chunk * (int(num) - 1)]
        if int(num) != n_out or sizes[-1] <= 0:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"num_outputs={num} cannot split dimension {dim} into {n_out} outputs")
        return sizes
    if dim % n_out:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"dimension {dim} is not divisible by {n_out} outputs")
    return [dim // n_out] * n_out


def _implied_split_sizes(node: NodeView, ctx: LowerContext, dim: int) -> list[int]:
    """Run-time split sizes, read from the static output shapes (one size per output)."""
    axis = int(node.attr("axis", 0))
    sizes = []
    for i, name in enumerate(node.outputs):
        if not name:
            raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                           f"the split input is computed at run time and output {i} is unused (its size unknown)")
        shape = _implied_shape(ctx, "the split input", i)
        rank = len(shape)
        a = normalize_axis(axis, rank)
        if a is None:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axis {axis} is out of range for rank {rank}")
        sizes.append(shape[a])
    if sum(sizes) != dim:
        raise ctx.fail(Reason.INVALID_MODEL, f"output sizes {sizes} do not add up to dimension {dim}")
    return sizes


# Dtypes the SPLIT / SPLIT_V kernels refuse; those splits become one STRIDED_SLICE per output.
_SPLIT_REFUSES = {"bool", "float16"}  # the builtin SPLIT kernel refuses float16 (XNNPACK takes it)
_SPLIT_V_REFUSES = {"bool", "float16"}


@lowering("Split", since=2, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, zero_size_inputs=True)
@via_float32
def lower_split(node: NodeView, ctx: LowerContext) -> None:
    """Split (split attr < 13, input >= 13, num_outputs >= 18, equal default) -> SPLIT / SPLIT_V."""
    x = ctx.input(0)
    axis = _axis(ctx, node.attr("axis", 0), x.rank)
    all_sizes = split_sizes(node, ctx, x.shape[axis])
    outs, sizes = [], []
    for i, size in enumerate(all_sizes):
        shape = list(x.shape)
        shape[axis] = size
        if is_empty(shape):  # an empty chunk has no values (and takes no room along the axis)
            if node.outputs[i]:
                set_empty_output(ctx, i, shape, x.dtype)
            continue
        sizes.append(size)
        outs.append(ctx.output(i, shape=tuple(shape)) if node.outputs[i] else ctx.tmp(tuple(shape), x.dtype, "unused"))
    if not outs:
        return
    if len(outs) == 1:
        copy_to(ctx, x, outs[0])
        return
    equal = len(set(sizes)) == 1
    if equal and x.dtype.name not in _SPLIT_REFUSES:
        ctx.emit("SPLIT", [ctx.new_const(np.array(axis, np.int32), hint="axis"), x], outs, numSplits=len(outs))
    elif not equal and x.dtype.name not in _SPLIT_V_REFUSES:
        ctx.emit("SPLIT_V", [x, ctx.new_const(np.array(sizes, np.int32), hint="sizes"),
                             ctx.new_const(np.array(axis, np.int32), hint="axis")], outs, numSplits=len(outs))
    else:
        offset = 0
        for size, out in zip(sizes, outs):
            begin, end = [0] * x.rank, list(x.shape)
            begin[axis], end[axis] = offset, offset + size
            strided_slice(ctx, x, begin, end, [1] * x.rank, out=out)
            offset += size



# -- run-time parameter helpers (int32 index arithmetic emitted into the model) -----------------
# Run-time starts / ends / steps / pads are clamped to +-2**30 in their own dtype before any CAST
# to int32: every value beyond a dimension's size behaves the same under ONNX's own clamping.
_RUNTIME_CLAMP = 1 << 30
_I32 = np.dtype(np.int32)
# Dtypes verified for the run-time-parameter paths (STRIDED_SLICE / GATHER / SELECT_V2).
_RUNTIME_DATA = ("float32", "int32", "int64")


def _op2(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor, dtype: np.dtype | None = None,
         hint: str = "t") -> Tensor:
    """A broadcasting binary op (output dtype ``a``'s unless given)."""
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    options = {"fusedActivationFunction": "NONE"} if opcode in ("ADD", "SUB", "MUL") else {}
    return ctx.emit1(opcode, [a, b], shape, dtype or a.dtype, hint, **options)


def _c32(ctx: LowerContext, value: np.ndarray | int | list, hint: str = "c") -> Tensor:
    return ctx.new_const(np.asarray(value, np.int32), hint=hint)


def _clamp(ctx: LowerContext, x: Tensor, lo: Tensor, hi: Tensor, hint: str = "clamped") -> Tensor:
    return _op2(ctx, "MINIMUM", _op2(ctx, "MAXIMUM", x, lo, hint=hint), hi, hint=hint)


def _select(ctx: LowerContext, cond: Tensor, a: Tensor, b: Tensor, hint: str = "select") -> Tensor:
    shape = tuple(np.broadcast_shapes(cond.shape, a.shape, b.shape))
    return ctx.emit1("SELECT_V2", [cond, a, b], shape, a.dtype, hint)


def _runtime_int32(ctx: LowerContext, i: int, what: str) -> Tensor:
    """Run-time (or constant) int input ``i`` flattened, clamped to +-2**30 and CAST to int32."""
    t = ctx.input(i)
    if t.dtype.name not in ("int32", "int64"):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"{what} dtype {t.dtype.name} is not int32/int64")
    if t.is_const:
        v = np.clip(np.asarray(t.data, np.int64).reshape(-1), -_RUNTIME_CLAMP, _RUNTIME_CLAMP)
        return _c32(ctx, v, hint="param")
    if t.rank != 1:
        t = ctx.reshape(t, (t.size,))
    lim = np.array(_RUNTIME_CLAMP, t.dtype)
    t = _clamp(ctx, t, ctx.new_const(-lim, hint="lo"), ctx.new_const(lim, hint="hi"), hint="param")
    if t.dtype != _I32:
        t = ctx.emit1("CAST", [t], t.shape, _I32, "param_i32", inDataType=t.dtype, outDataType=_I32)
    return t


def _runtime_axes(ctx: LowerContext, i: int, n: int, rank: int) -> tuple[Tensor, Tensor | np.ndarray]:
    """(axes as int32 [n] in [0, rank), the normalized constant axes or None when run-time).

    Run-time axes are wrapped with FLOOR_MOD (valid ONNX axes lie in [-rank, rank)).
    """
    value = ctx.const(i) if ctx.has_input(i) else np.arange(n)
    if value is not None:
        axes = _axes(ctx, _ints(value), rank)
        if len(axes) != n:
            raise ctx.fail(Reason.INVALID_MODEL, f"{len(axes)} axes for {n} parameters")
        return _c32(ctx, axes, hint="axes"), np.asarray(axes, np.int64)
    t = _runtime_int32(ctx, i, "axes")
    if t.size != n:
        raise ctx.fail(Reason.INVALID_MODEL, f"{t.size} axes for {n} parameters")
    return _op2(ctx, "FLOOR_MOD", t, _c32(ctx, rank, "rank"), hint="axes"), None  # type: ignore[return-value]


def _scatter_axes(ctx: LowerContext, axes: Tensor, values: Tensor, rank: int, hint: str) -> Tensor:
    """An int32 [rank] vector holding ``values[i]`` at ``axes[i]`` and 0 elsewhere (SCATTER_ND)."""
    index = ctx.reshape(axes, (axes.size, 1)) if not axes.is_const else _c32(
        ctx, axes.data.reshape(-1, 1), hint="axes_index")
    return ctx.emit1("SCATTER_ND", [index, values, _c32(ctx, [rank], "rank_shape")], (rank,), _I32, hint)


def _slice_runtime(node: NodeView, ctx: LowerContext, x: Tensor) -> None:
    """Slice with run-time starts / ends / axes / steps -> STRIDED_SLICE with run-time int32 vectors.

    ONNX's per-axis normalization (negative values count from the end; starts clamp to [0, d]
    or [0, d-1], ends to [0, d] or [-1, d-1] by the step's sign) is emitted as int32 ops, then an
    end of -1 ('past index 0') is written -1 - d, which LiteRT's kernel maps back to -1. Axes not
    named keep begin 0, end d, stride 1. The output shape is the node's static output shape.
    """
    if x.rank == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "Slice needs an input of rank >= 1")
    out_shape = _implied_shape(ctx, "starts / ends / axes / steps")
    if len(out_shape) != x.rank:
        raise ctx.fail(Reason.INVALID_MODEL, "the output rank differs from the input rank")
    if is_empty(out_shape):  # no values to compute, whatever the run-time parameters are
        set_empty_output(ctx, 0, out_shape, x.dtype)
        return
    if ctx.input(1).size == 0:  # no axis is sliced: the output is the input
        _copy_or_empty(ctx, x, x.shape)
        return
    if x.dtype.name not in _RUNTIME_DATA:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                       f"a run-time Slice of {x.dtype.name} is not supported (verified: {', '.join(_RUNTIME_DATA)})")
    starts = _runtime_int32(ctx, 1, "starts")
    ends = _runtime_int32(ctx, 2, "ends")
    n = starts.size
    if ends.size != n:
        raise ctx.fail(Reason.INVALID_MODEL, "starts and ends differ in length")
    steps = _runtime_int32(ctx, 4, "steps") if ctx.has_input(4) else _c32(ctx, [1] * n, "steps")
    if steps.size != n:
        raise ctx.fail(Reason.INVALID_MODEL, "steps and starts differ in length")
    if steps.is_const and 0 in steps.data:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "a step of 0 is not valid")
    axes, const_dims = _runtime_axes(ctx, 3, n, x.rank)
    all_dims = _c32(ctx, list(x.shape), "dims")
    dims = _c32(ctx, [x.shape[int(a)] for a in const_dims], "axis_dims") if const_dims is not None else ctx.emit1(
        "GATHER", [all_dims, axes], (n,), _I32, "axis_dims", axis=0, batchDims=0)
    zero, one = _c32(ctx, 0, "zero"), _c32(ctx, 1, "one")

    def from_end(v: Tensor, hint: str) -> Tensor:
        return _select(ctx, _op2(ctx, "LESS", v, zero, np.dtype(np.bool_), "negative"),
                       _op2(ctx, "ADD", v, dims, hint=hint), v, hint)

    positive = _op2(ctx, "GREATER", steps, zero, np.dtype(np.bool_), "forward")
    dims_m1 = _op2(ctx, "SUB", dims, one, hint="last")
    s = from_end(starts, "starts")
    s = _select(ctx, positive, _clamp(ctx, s, zero, dims), _clamp(ctx, s, zero, dims_m1), "begin")
    e = from_end(ends, "ends")
    e = _select(ctx, positive, _clamp(ctx, e, zero, dims), _clamp(ctx, e, _c32(ctx, -1, "m1"), dims_m1), "end")
    e = _select(ctx, _op2(ctx, "LESS", e, zero, np.dtype(np.bool_), "before_first"),
                _op2(ctx, "SUB", e, dims, hint="end"), e, "end")
    begin = _scatter_axes(ctx, axes, s, x.rank, "begin_full")
    end = _op2(ctx, "ADD", _scatter_axes(ctx, axes, _op2(ctx, "SUB", e, dims, hint="end_rel"), x.rank,
                                         "end_rel_full"), all_dims, hint="end_full")
    strides = _op2(ctx, "ADD", _scatter_axes(ctx, axes, _op2(ctx, "SUB", steps, one, hint="step_rel"), x.rank,
                                             "step_rel_full"), one, hint="strides_full")
    ctx.emit("STRIDED_SLICE", [x, begin, end, strides], [ctx.output(0, shape=out_shape)], beginMask=0,
             endMask=0, ellipsisMask=0, newAxisMask=0, shrinkAxisMask=0)


# -- Slice ---------------------------------------------------------------------------------------
@lowering("Slice", since=1, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, zero_size_inputs=True)
@via_float32
def lower_slice(node: NodeView, ctx: LowerContext) -> None:
    """Slice (attributes < 10, inputs >= 10; negative, clamped and reversed ranges) -> STRIDED_SLICE."""
    x = ctx.input(0)
    if node.opset >= 10 and any(ctx.has_input(i) and ctx.const(i) is None for i in (1, 2, 3, 4)):
        _slice_runtime(node, ctx, x)
        return
    if node.opset < 10:
        starts, ends = _ints(node.attr("starts", [])), _ints(node.attr("ends", []))
        axes = node.attr("axes")
        steps = [1] * len(starts)
    else:
        starts = _ints(ctx.require_const(1, "the starts input"))
        ends = _ints(ctx.require_const(2, "the ends input"))
        axes = ctx.require_const(3, "the axes input") if ctx.has_input(3) else None
        steps = _ints(ctx.require_const(4, "the steps input")) if ctx.has_input(4) else [1] * len(starts)
    axes = list(range(len(starts))) if axes is None else _axes(ctx, _ints(axes), x.rank)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "starts, ends, axes and steps differ in length")
    if 0 in steps:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "a step of 0 is not valid")
    begin, end, strides, end_mask = [0] * x.rank, list(x.shape), [1] * x.rank, 0
    shape = list(x.shape)
    for a, s, e, st in zip(axes, starts, ends, steps):
        b, e2, count = onnx_slice_bounds(s, e, st, x.shape[a])
        if abs(st) > _INT32_MAX:
            st = _INT32_MAX if st > 0 else -_INT32_MAX  # any step >= dim takes one element
        begin[a], end[a], strides[a], shape[a] = b, e2, st, count
        if e2 == -1:  # 'past index 0' is not expressible as an index: mask the end instead
            end_mask |= 1 << a
            end[a] = 0
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, x.dtype)
        return
    strided_slice(ctx, x, begin, end, strides, end_mask, out=ctx.output(0, shape=tuple(shape)))


# -- Pad -----------------------------------------------------------------------------------------
def _pad_params(node: NodeView, ctx: LowerContext, rank: int) -> tuple[list[tuple[int, int]], str]:
    """Per-axis (begin, end) pads for the whole rank, and the mode."""
    mode = node.attr("mode", "constant")
    if node.opset < 11:
        pads = _ints(node.attr("pads", node.attr("paddings", [])))
        axes = list(range(rank))
    else:
        pads = _ints(ctx.require_const(1, "the pads input"))
        if node.opset >= 18 and ctx.has_input(3):
            axes = _axes(ctx, _ints(ctx.require_const(3, "the axes input")), rank)
        else:
            axes = list(range(rank))
    if len(pads) != 2 * len(axes):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"pads {pads} do not match {len(axes)} axes")
    per_axis = [(0, 0)] * rank
    for i, a in enumerate(axes):
        per_axis[a] = (pads[i], pads[len(axes) + i])
    known = ("constant", "reflect", "edge") + (("wrap",) if node.opset >= 19 else ())
    if mode not in known:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"Pad mode '{mode}' is not supported")
    return per_axis, mode


def _crop(ctx: LowerContext, x: Tensor, pads: list[tuple[int, int]]) -> Tensor:
    """Apply the negative part of ``pads`` (cropping) with one STRIDED_SLICE."""
    if all(b >= 0 and e >= 0 for b, e in pads):
        return x
    begin = [max(-b, 0) for b, _ in pads]
    end = [d - max(-e, 0) for d, (_, e) in zip(x.shape, pads)]
    return strided_slice(ctx, x, begin, end, [1] * x.rank)


@lowering("Pad", since=2, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, zero_size_inputs=True)
@via_float32
def lower_pad(node: NodeView, ctx: LowerContext) -> None:
    """Pad: constant -> PAD / PADV2, reflect -> MIRROR_PAD, edge / wrap -> GATHER per axis.

    Negative pads crop first (ONNX Runtime's order), then the positive pads are applied.
    """
    x = ctx.input(0)
    if node.opset >= 11 and (ctx.const(1) is None or (node.opset >= 18 and ctx.has_input(3)
                                                       and ctx.const(3) is None)):
        _pad_runtime(node, ctx, x)
        return
    pads, mode = _pad_params(node, ctx, x.rank)
    shape = tuple(d + b + e for d, (b, e) in zip(x.shape, pads))
    if any(d < 0 for d in shape):
        raise ctx.fail(Reason.INVALID_MODEL, f"pads {pads} crop more than the input shape {list(x.shape)}")
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, x.dtype)
        return
    if is_empty(x.shape):
        _pad_empty_input(node, ctx, x, shape, mode)
        return
    out = ctx.output(0, shape=shape)
    if all(b == 0 and e == 0 for b, e in pads):
        copy_to(ctx, x, out)
        return
    if mode in ("edge", "wrap"):
        _pad_by_gather(ctx, x, pads, mode, out)
        return
    grow = [(max(b, 0), max(e, 0)) for b, e in pads]
    if mode == "reflect":
        cropped_shape = [d - max(-b, 0) - max(-e, 0) for d, (b, e) in zip(x.shape, pads)]
        bad = [a for a, (d, (b, e)) in enumerate(zip(cropped_shape, grow)) if max(b, e) > d - 1]
        if bad:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"reflect pads on axes {bad} are not smaller than the (cropped) dimension")
    value = _pad_value(node, ctx, x) if mode == "constant" else None
    if value is not None and x.rank > _MAX_RANK_PADV2:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"rank {x.rank} > {_MAX_RANK_PADV2}: LiteRT PADV2 (non-zero pad value) is limited")
    y = _crop(ctx, x, pads)
    if all(b == 0 and e == 0 for b, e in grow):
        copy_to(ctx, y, out)
        return
    if mode == "constant" and x.rank > _MAX_RANK_PAD:
        y, grow = _merge_unpadded_dims(ctx, y, grow)
        if y.rank > _MAX_RANK_PAD:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"rank {x.rank} pad with {y.rank} independent axes > {_MAX_RANK_PAD}: LiteRT PAD is limited")
        padded_shape = tuple(d + b + e for d, (b, e) in zip(y.shape, grow))
        paddings = ctx.new_const(np.array(grow, np.int32).reshape(y.rank, 2), hint="paddings")
        flat = ctx.emit1("PAD", [y, paddings], padded_shape, y.dtype, "padded")
        ctx.reshape(flat, out.shape, out=out)
        return
    paddings = ctx.new_const(np.array(grow, np.int32).reshape(x.rank, 2), hint="paddings")
    if mode == "reflect":
        ctx.emit("MIRROR_PAD", [y, paddings], [out], mode="REFLECT")
    elif value is None:
        ctx.emit("PAD", [y, paddings], [out])
    else:
        ctx.emit("PADV2", [y, paddings, value], [out])


def _pad_empty_input(node: NodeView, ctx: LowerContext, x: Tensor, shape: tuple[int, ...], mode: str) -> None:
    """Constant-mode padding of an empty input: every output element is the (constant) pad value."""
    if mode != "constant":
        raise ctx.fail(Reason.INVALID_MODEL, f"Pad mode '{mode}' has no input values to pad an empty input with")
    value = _pad_value(node, ctx, x)
    if value is not None and not value.is_const:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       "padding an empty input needs a constant pad value (the whole output is that value)")
    fill = np.zeros((), x.dtype) if value is None else np.asarray(value.data, x.dtype).reshape(())
    ctx.graph.values[node.outputs[0]] = ctx.new_const(np.full(shape, fill, x.dtype), hint="padded")


def _pad_runtime(node: NodeView, ctx: LowerContext, x: Tensor) -> None:
    """Pad with run-time pads (and axes): one GATHER per padded axis with run-time source indices.

    Output position j of an axis with begin pad b, end pad e reads position ``j - b`` of the input
    (constant mode: the pad value where that is outside [0, d), via SELECT_V2); edge / reflect /
    wrap map it into the cropped range [max(-b, 0), d - max(-e, 0)) as ONNX defines. The output
    shape is the node's static output shape.
    """
    mode = node.attr("mode", "constant")
    known = ("constant", "reflect", "edge") + (("wrap",) if node.opset >= 19 else ())
    if mode not in known:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"Pad mode '{mode}' is not supported")
    out_shape = _implied_shape(ctx, "the pads input")
    if len(out_shape) != x.rank:
        raise ctx.fail(Reason.INVALID_MODEL, "the output rank differs from the input rank")
    if is_empty(out_shape):  # no values to compute, whatever the run-time pads are
        set_empty_output(ctx, 0, out_shape, x.dtype)
        return
    _require_nonempty(ctx, x.shape, "the input (with run-time pads)")
    if x.dtype.name not in _RUNTIME_DATA:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE,
                       f"run-time pads for {x.dtype.name} are not supported (verified: {', '.join(_RUNTIME_DATA)})")
    if x.rank == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "Pad needs an input of rank >= 1")
    pads = _runtime_int32(ctx, 1, "pads")
    if pads.size % 2:
        raise ctx.fail(Reason.INVALID_MODEL, f"pads has an odd length {pads.size}")
    n = pads.size // 2
    has_axes = node.opset >= 18 and ctx.has_input(3)
    if not has_axes and n != x.rank:
        raise ctx.fail(Reason.INVALID_MODEL, f"pads has {pads.size} values for rank {x.rank}")
    axes, const_axes = _runtime_axes(ctx, 3, n, x.rank) if has_axes else (None, np.arange(x.rank))
    begins = ctx.emit1("SLICE", [pads, _c32(ctx, [0], "b0"), _c32(ctx, [n], "n")], (n,), _I32, "begins")
    ends = ctx.emit1("SLICE", [pads, _c32(ctx, [n], "b1"), _c32(ctx, [n], "n")], (n,), _I32, "ends")
    if const_axes is None:  # run-time axes: every axis may be padded
        begins = _scatter_axes(ctx, axes, begins, x.rank, "begins_full")
        ends = _scatter_axes(ctx, axes, ends, x.rank, "ends_full")
        where = list(range(x.rank))
    else:
        where = [int(a) for a in const_axes]
    value = _pad_value(node, ctx, x) if mode == "constant" else None
    if mode == "constant" and value is None:
        value = ctx.new_const(np.zeros((), x.dtype), hint="pad_value")
    y = x
    padded = [(k, a) for k, a in enumerate(where)]
    shape = list(x.shape)
    out = ctx.output(0, shape=out_shape)
    for step, (k, a) in enumerate(padded):
        b = ctx.emit1("SLICE", [begins, _c32(ctx, [k], "at"), _c32(ctx, [1], "one")], (1,), _I32, "b")
        e = ctx.emit1("SLICE", [ends, _c32(ctx, [k], "at"), _c32(ctx, [1], "one")], (1,), _I32, "e")
        index, valid = _pad_source_index(ctx, b, e, x.shape[a], out_shape[a], mode)
        shape[a] = out_shape[a]
        last = step == len(padded) - 1
        direct = last and valid is None
        g = ctx.emit1("GATHER", [y, index], tuple(shape), x.dtype, "pad", out if direct else None,
                      axis=a, batchDims=0)
        if valid is not None:
            mask_shape = [1] * x.rank
            mask_shape[a] = out_shape[a]
            mask = ctx.reshape(valid, tuple(mask_shape))
            g = ctx.emit1("SELECT_V2", [mask, g, value], tuple(shape), x.dtype, "pad", out if last else None)
        y = g
    if not padded:
        copy_to(ctx, x, out)


def _pad_source_index(ctx: LowerContext, b: Tensor, e: Tensor, d: int, out_d: int, mode: str
                      ) -> tuple[Tensor, Tensor | None]:
    """int32 source indices [out_d] along one axis (and, for constant mode, which are in range)."""
    j = _c32(ctx, np.arange(out_d), "positions")
    zero = _c32(ctx, 0, "zero")
    src = _op2(ctx, "SUB", j, b, hint="source")
    if mode == "constant":
        inside = _op2(ctx, "LOGICAL_AND", _op2(ctx, "GREATER_EQUAL", src, zero, np.dtype(np.bool_), "ge"),
                      _op2(ctx, "LESS", src, _c32(ctx, d, "dim"), np.dtype(np.bool_), "lt"), hint="inside")
        return _clamp(ctx, src, zero, _c32(ctx, d - 1, "last")), inside
    neg = ctx.emit1("NEG", [b], b.shape, _I32, "neg_b")
    lo = _op2(ctx, "MAXIMUM", neg, zero, hint="lo")
    crop_end = _op2(ctx, "MAXIMUM", ctx.emit1("NEG", [e], e.shape, _I32, "neg_e"), zero, hint="crop_end")
    hi = _op2(ctx, "SUB", _c32(ctx, d, "dim"), crop_end, hint="hi")  # exclusive end of the cropped range
    if mode == "edge":
        return _clamp(ctx, src, lo, _op2(ctx, "SUB", hi, _c32(ctx, 1, "one"), hint="hi_m1")), None
    n = _op2(ctx, "SUB", hi, lo, hint="n")
    t = _op2(ctx, "SUB", j, _op2(ctx, "MAXIMUM", b, zero, hint="grow"), hint="offset")  # relative to lo
    if mode == "wrap":
        local = _op2(ctx, "FLOOR_MOD", t, _op2(ctx, "MAXIMUM", n, _c32(ctx, 1, "one"), hint="n1"), hint="local")
    else:  # reflect: period 2(n-1); local = (n-1) - |(n-1) - t mod period|
        n_m1 = _op2(ctx, "SUB", n, _c32(ctx, 1, "one"), hint="n_m1")
        period = _op2(ctx, "MAXIMUM", _op2(ctx, "ADD", n_m1, n_m1, hint="period"), _c32(ctx, 1, "one"),
                      hint="period")
        m = _op2(ctx, "FLOOR_MOD", t, period, hint="phase")
        dist = _op2(ctx, "SUB", n_m1, m, hint="dist")
        absd = _op2(ctx, "MAXIMUM", dist, ctx.emit1("NEG", [dist], dist.shape, _I32, "neg_dist"), hint="abs")
        local = _op2(ctx, "SUB", n_m1, absd, hint="local")
    return _op2(ctx, "ADD", lo, local, hint="index"), None


def _merge_unpadded_dims(ctx: LowerContext, x: Tensor, grow: list[tuple[int, int]]
                         ) -> tuple[Tensor, list[tuple[int, int]]]:
    """Drop unpadded size-1 axes and merge runs of adjacent unpadded axes (a pure reshape), to bring
    the rank under PAD's limit."""
    shape: list[int] = []
    merged: list[tuple[int, int]] = []
    for d, (b, e) in zip(x.shape, grow):
        if b == 0 and e == 0 and d == 1 and len(grow) > 1:
            continue  # an unpadded size-1 axis carries no data: drop it
        if b == 0 and e == 0 and merged and merged[-1] == (0, 0):
            shape[-1] *= d
        else:
            shape.append(d)
            merged.append((b, e))
    if not shape:
        shape, merged = [1], [(0, 0)]
    return (ctx.reshape(x, tuple(shape)) if len(shape) < x.rank else x), merged


def _pad_value(node: NodeView, ctx: LowerContext, x: Tensor) -> Tensor | None:
    """The PADV2 scalar, or None when the pad value is a constant zero (plain PAD)."""
    if node.opset < 11:
        v = float(node.attr("value", 0.0))
        return None if v == 0 else ctx.new_const(np.array(v).astype(x.dtype), hint="pad_value")
    if not ctx.has_input(2):
        return None
    const = ctx.const(2)
    if const is not None:
        if const.size != 1:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "constant_value must hold one element")
        v = np.asarray(const).reshape(()).astype(x.dtype)
        return None if not v else ctx.new_const(v, hint="pad_value")
    t = ctx.input(2)
    if t.size != 1 or t.dtype != x.dtype:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "constant_value must be one element of the data dtype")
    return t if t.rank == 0 else ctx.reshape(t, ())


def _pad_by_gather(ctx: LowerContext, x: Tensor, pads: list[tuple[int, int]], mode: str, out: Tensor) -> None:
    """Edge / wrap padding: one GATHER per changed axis with a constant source-index vector."""
    changed = [a for a, (b, e) in enumerate(pads) if b or e]
    y = x
    shape = list(x.shape)
    for k, a in enumerate(changed):
        b, e = pads[a]
        index = onnx_pad_index(b, e, x.shape[a], mode)
        shape[a] = len(index)
        last = k == len(changed) - 1
        y = ctx.emit1("GATHER", [y, ctx.new_const(index, hint="pad_index")], tuple(shape), x.dtype, "pad",
                      out if last else None, axis=a, batchDims=0)


# -- Gather --------------------------------------------------------------------------------------
@lowering("Gather", since=1, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, zero_size_inputs=True)
@via_float32
def lower_gather(node: NodeView, ctx: LowerContext) -> None:
    """Gather (axis may be negative) -> GATHER; negative indices are normalized.

    Constant indices are normalized in numpy. Run-time indices go through FLOOR_MOD by the
    axis size, which maps every valid ONNX index in [-dim, dim) to its non-negative form
    (LiteRT GATHER rejects negative indices).
    """
    x, idx = ctx.input(0), ctx.input(1)
    axis = _axis(ctx, node.attr("axis", 0), x.rank)
    dim = x.shape[axis]
    shape = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    if idx.dtype.name not in ("int32", "int64"):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"indices dtype {idx.dtype.name} is not int32/int64")
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, x.dtype)
        return
    if dim == 0:
        raise ctx.fail(Reason.INVALID_MODEL, f"indices into axis {axis} of size 0 are out of range")
    if idx.is_const:
        values = np.asarray(idx.data).astype(np.int64)
        if values.size and (values.min() < -dim or values.max() >= dim):
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"indices are out of range for dimension {dim}")
        indices = ctx.new_const(np.where(values < 0, values + dim, values).astype(np.int32), hint="indices")
    else:
        indices = ctx.emit1("FLOOR_MOD", [idx, ctx.new_const(np.array(dim, idx.dtype), hint="dim")],
                            idx.shape, idx.dtype, "indices")
    ctx.emit("GATHER", [x, indices], [ctx.output(0, shape=shape)], axis=axis, batchDims=0)


# -- Shape / Size / ConstantOfShape / Constant --------------------------------------------------
@lowering("Shape", since=1, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, zero_size_inputs=True)
def lower_shape(node: NodeView, ctx: LowerContext) -> None:
    """Shape (start/end from opset 15) -> SHAPE (+ STRIDED_SLICE for a sub-range)."""
    x = ctx.input(0)
    start, end = 0, x.rank
    if node.opset >= 15:
        start = int(node.attr("start", 0))
        end = int(node.attr("end", x.rank))
        start = min(max(start + x.rank if start < 0 else start, 0), x.rank)
        end = min(max(end + x.rank if end < 0 else end, 0), x.rank)
    if end <= start:
        set_empty_output(ctx, 0, (0,), np.int64)
        return
    if is_empty(x.shape):  # keep the zero-sized tensor away from SHAPE: its shape is static anyway
        ctx.graph.values[node.outputs[0]] = ctx.new_const(np.array(x.shape[start:end], np.int64), hint="shape")
        return
    out = ctx.output(0, shape=(end - start,), dtype=np.int64)
    if (start, end) == (0, x.rank):
        ctx.emit("SHAPE", [x], [out], outType="INT64")
        return
    full = ctx.emit1("SHAPE", [x], (x.rank,), np.int64, "shape", outType="INT64")
    strided_slice(ctx, full, [start], [end], [1], out=out)


@lowering("Size", since=1, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, zero_size_inputs=True)
def lower_size(node: NodeView, ctx: LowerContext) -> None:
    """Size -> SHAPE + REDUCE_PROD (a rank-0 input is the constant 1)."""
    x = ctx.input(0)
    if x.rank == 0 or is_empty(x.shape):  # static: 1 for a scalar, 0 for a zero-sized tensor
        ctx.graph.values[node.outputs[0]] = ctx.new_const(np.array(x.size, np.int64), hint="size")
        return
    full = ctx.emit1("SHAPE", [x], (x.rank,), np.int64, "shape", outType="INT64")
    ctx.emit("REDUCE_PROD", [full, ctx.new_const(np.array([0], np.int32), hint="axis")],
             [ctx.output(0, shape=(), dtype=np.int64)], keepDims=False)


# Output dtypes FILL accepts (verified for ConstantOfShape).
_FILL_DTYPES = DATA


@lowering("ConstantOfShape", since=9, onnx_dtypes=ONNX_ALL, dtypes=_FILL_DTYPES, verified=_FILL_DTYPES,
          dtype_input=None, zero_size_inputs=True)
def lower_constant_of_shape(node: NodeView, ctx: LowerContext) -> None:
    """ConstantOfShape (value attribute, default float32 0) -> FILL."""
    proto = node.attr("value")
    value = numpy_helper.to_array(proto).reshape(-1) if proto is not None else np.zeros(1, np.float32)
    if value.size != 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "value must hold exactly one element")
    if value.dtype.name not in _FILL_DTYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"value dtype {value.dtype.name} is not supported by FILL")
    dims_const = ctx.const(0)
    if dims_const is not None:
        shape = tuple(_ints(dims_const))
        dims = ctx.new_const(np.array(shape, np.int32), hint="dims")
    else:
        shape = ctx.out_shape(0)
        if shape is None:
            raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED, "the output shape is not known at conversion time")
        dims = ctx.input(0)
    if any(int(d) < 0 for d in shape):
        raise ctx.fail(Reason.INVALID_MODEL, f"the shape {list(shape)} has a negative dimension")
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, value.dtype)
        return
    if not shape:  # FILL needs a dims vector; a scalar result is just the value
        ctx.graph.values[node.outputs[0]] = ctx.new_const(value.reshape(()), hint="value")
        return
    out = ctx.output(0, shape=shape, dtype=value.dtype)
    ctx.emit("FILL", [dims, ctx.new_const(value.reshape(()), hint="value")], [out])


@lowering("Constant", since=1, onnx_dtypes=ONNX_ALL, dtypes=DATA_BF16, verified=DATA_BF16, dtype_input=None,
          zero_size_inputs=True)
def lower_constant(node: NodeView, ctx: LowerContext) -> None:
    """Constant: emit nothing, register the value (a graph output gets the driver's copy)."""
    value = constant_value(node)
    if isinstance(value, str):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, value)
    if value.dtype.name not in DATA_BF16:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"constant dtype {value.dtype.name} is not supported")
    ctx.graph.values[node.outputs[0]] = ctx.new_const(value, hint="value")


def constant_value(node: NodeView) -> np.ndarray | str:
    """The value of a Constant node, or an error message."""
    attrs = node.attrs
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    if "value_float" in attrs:
        return np.array(attrs["value_float"], np.float32)
    if "value_floats" in attrs:
        return np.array(attrs["value_floats"], np.float32)
    if "value_int" in attrs:
        return np.array(attrs["value_int"], np.int64)
    if "value_ints" in attrs:
        return np.array(attrs["value_ints"], np.int64)
    if "sparse_value" in attrs:
        return "sparse_value constants are not supported"
    if "value_string" in attrs or "value_strings" in attrs:
        return "string constants are not supported by LiteRT builtin ops"
    return "Constant has no value attribute"
