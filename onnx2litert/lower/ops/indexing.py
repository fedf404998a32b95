"""Lowerings of the indexing family.

Ops: ArgMax, ArgMin, GatherND, GatherElements, ScatterND, ScatterElements, OneHot, TopK, CumSum,
Range, Tile, Expand, Trilu, EyeLike, NonZero, Compress, Unique.

Index arithmetic is done in numpy at conversion time wherever the indices are constant, so
the emitted kernels only see normalized, in-range int32 indices. Run-time indices are
normalized with FLOOR_MOD by the indexed dimension, which maps every valid ONNX index in
[-dim, dim) to its non-negative form (LiteRT's gather/scatter kernels reject negatives).

Element-wise gathers and scatters (GatherElements, ScatterElements) are written as their
GatherND / ScatterND equivalents: a full coordinate tuple per element, built from a
constant coordinate grid plus the (run-time or constant) indices on the indexed axis.

LiteRT's SCATTER_ND writes the scattered updates into a *zero* tensor, while ONNX updates
a copy of ``data``; the lowering selects between the two with a mask of written positions
(SELECT_V2, exact for every value including inf/NaN), or adds them for reduction='add'.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from onnx import helper

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView, inverse_perm
from ..registry import lowering
from .elementwise import via_float32
from .tensor import is_empty, set_empty_output

ONNX_ALL = ("float32", "float16", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
            "uint16", "uint32", "uint64", "bool", "string", "complex64", "complex128")
ONNX_NUMERIC = ("float32", "float16", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8",
                "uint16", "uint32", "uint64")
_F32_I32_I64 = ("float32", "int32", "int64")
_INDEX_DTYPES = ("int32", "int64")

_I32 = np.dtype(np.int32)
_I64 = np.dtype(np.int64)
_BOOL = np.dtype(np.bool_)


# -- small pure helpers ----------------------------------------------------------------------------
def _norm_axis(ctx: LowerContext, axis: int, rank: int, what: str = "axis") -> int:
    """``axis`` in [0, rank); fails when it is outside [-rank, rank)."""
    a = int(axis)
    if a < 0:
        a += rank
    if not 0 <= a < rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{what} {axis} is out of range for rank {rank}")
    return a


def _require_nonempty(ctx: LowerContext, shape: Sequence[int], what: str = "the output") -> None:
    """LiteRT kernels are not verified on zero-sized tensors: refuse them explicitly."""
    if any(int(d) <= 0 for d in shape):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{what} would have shape {list(shape)}; zero-sized tensors are not supported")


def _index_dtype(ctx: LowerContext, t: Tensor, what: str = "indices") -> None:
    if t.dtype.name not in _INDEX_DTYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"{what} dtype {t.dtype.name} is not int32/int64")


def _scalar_int(ctx: LowerContext, i: int, what: str) -> int:
    """A constant single-element input as a Python int."""
    value = np.asarray(ctx.require_const(i, what)).reshape(-1)
    if value.size != 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{what} must hold exactly one value")
    return int(value[0])


def normalize_const_indices(ctx: LowerContext, values: np.ndarray, dims: Sequence[int] | int) -> np.ndarray:
    """Constant indices with negatives wrapped (per trailing coordinate when ``dims`` is a list)."""
    v = np.asarray(values).astype(np.int64)
    d = np.asarray(dims, dtype=np.int64)
    if v.size and (np.any(v < -d) or np.any(v >= d)):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"constant indices are out of range for {d.tolist()}")
    return np.where(v < 0, v + d, v).astype(np.int32)


def _coordinate_grid(shape: Sequence[int]) -> np.ndarray:
    """int32 array of shape ``shape + [len(shape)]`` holding each element's own coordinates."""
    grids = np.indices(tuple(shape), dtype=np.int32)
    return np.moveaxis(grids, 0, -1).copy()


def _binary(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor, out: Tensor | None = None,
            hint: str = "t", dtype: np.dtype | None = None) -> Tensor:
    """A broadcasting binary op; output dtype is ``a``'s unless given."""
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    options = {"fusedActivationFunction": "NONE"} if opcode in ("ADD", "SUB", "MUL", "DIV") else {}
    return ctx.emit1(opcode, [a, b], shape, dtype or a.dtype, hint, out, **options)


def _cast(ctx: LowerContext, x: Tensor, dtype: np.dtype | type, out: Tensor | None = None,
          hint: str = "cast") -> Tensor:
    dtype = np.dtype(dtype)
    return ctx.emit1("CAST", [x], x.shape, dtype, hint, out, inDataType=x.dtype, outDataType=dtype)


def _select(ctx: LowerContext, cond: Tensor, a: Tensor, b: Tensor, out: Tensor | None = None,
            hint: str = "select") -> Tensor:
    shape = tuple(np.broadcast_shapes(cond.shape, a.shape, b.shape))
    return ctx.emit1("SELECT_V2", [cond, a, b], shape, a.dtype, hint, out)


def _floor_mod_indices(ctx: LowerContext, idx: Tensor, dims: Sequence[int] | int, to_int32: bool = False) -> Tensor:
    """Run-time indices wrapped into [0, dim) (valid ONNX indices lie in [-dim, dim)).

    ``to_int32`` first narrows int64 indices (for kernels that only take int32, e.g.
    SCATTER_ND); every valid index of a tensor LiteRT can hold fits in int32.
    """
    if to_int32 and idx.dtype != _I32:
        idx = _cast(ctx, idx, _I32, hint="indices_i32")
    d = ctx.new_const(np.asarray(dims, dtype=idx.dtype), hint="dims")
    return _binary(ctx, "FLOOR_MOD", idx, d, hint="indices")


def _copy(ctx: LowerContext, x: Tensor, out: Tensor) -> Tensor:
    return ctx.reshape(x, out.shape, out=out)


# Static extent recorded for a data-dependent dimension (its shape_signature entry is -1).
# Zero, not LiteRT's customary 1: a later lowering that wrongly trusts the static shape then
# sees a zero-sized tensor, which shape-dependent lowerings refuse, instead of a plausible
# extent of 1 that would silently bake wrong constants (slice bounds, reshape targets).
_DYNAMIC = 0


def _set_const_output(ctx: LowerContext, value: np.ndarray, hint: str = "value") -> None:
    """Register a conversion-time result for output 0 (a graph output gets the driver's copy)."""
    ctx.graph.values[ctx.node.outputs[0]] = ctx.new_const(value, hint=hint)


# -- ArgMax / ArgMin -------------------------------------------------------------------------------
_ARG_DTYPES = ("float32", "int32", "uint8", "int8", "bfloat16")


@lowering("ArgMax", "ArgMin", since=1, onnx_dtypes=ONNX_NUMERIC, dtypes=_ARG_DTYPES, verified=_ARG_DTYPES,
          zero_size_inputs=True)
@via_float32
def lower_arg(node: NodeView, ctx: LowerContext) -> None:
    """ARG_MAX / ARG_MIN with int64 output; keepdims via RESHAPE.

    select_last_index=1 (opset 12) reverses the axis (REVERSE_V2), takes the first
    extremum and maps its position j back to dim - 1 - j.
    """
    x = ctx.input(0)
    if x.rank == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "a scalar input has no axis to reduce")
    axis = _norm_axis(ctx, node.attr("axis", 0), x.rank)
    keepdims = int(node.attr("keepdims", 1))
    last = int(node.attr("select_last_index", 0)) if node.opset >= 12 else 0
    dim = x.shape[axis]
    if dim == 0:
        raise ctx.fail(Reason.INVALID_MODEL, f"axis {axis} has no elements to take an extremum of")
    reduced = x.shape[:axis] + x.shape[axis + 1:]
    kept = x.shape[:axis] + (1,) + x.shape[axis + 1:]
    if is_empty(x.shape):
        set_empty_output(ctx, 0, kept if keepdims else reduced, _I64)
        return
    out = ctx.output(0, kept if keepdims else reduced, _I64)
    axis_t = ctx.new_const(np.array([axis], np.int32), hint="axis")
    src = x
    if last:
        src = ctx.emit1("REVERSE_V2", [x, axis_t], x.shape, x.dtype, "reversed")
    opcode = "ARG_MAX" if node.op_type == "ArgMax" else "ARG_MIN"
    direct = not last and not keepdims
    y = ctx.emit1(opcode, [src, axis_t], reduced, _I64, "arg", out if direct else None, outputType="INT64")
    if last:
        y = _binary(ctx, "SUB", ctx.new_const(np.array(dim - 1, np.int64), hint="last"), y,
                    out=None if keepdims else out, hint="index")
    if keepdims:
        ctx.reshape(y, kept, out=out)


# -- GatherND / GatherElements ---------------------------------------------------------------------
_GATHER_DTYPES = ("float32", "int32", "int64", "int8", "uint8", "bool", "bfloat16")


@lowering("GatherND", since=11, onnx_dtypes=ONNX_ALL, dtypes=_GATHER_DTYPES, verified=_GATHER_DTYPES,
          zero_size_inputs=True)
@via_float32
def lower_gather_nd(node: NodeView, ctx: LowerContext) -> None:
    """GATHER_ND; batch_dims (opset 12) by prefixing each index tuple with its batch coordinates."""
    data, idx = ctx.input(0), ctx.input(1)
    _index_dtype(ctx, idx)
    b = int(node.attr("batch_dims", 0)) if node.opset >= 12 else 0
    if idx.rank < 1 or not 0 <= b < min(idx.rank, data.rank + 1):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"batch_dims {b} is invalid for these ranks")
    k = idx.shape[-1]
    if k < 1 or b + k > data.rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"index tuples of length {k} do not fit data of rank {data.rank} with batch_dims {b}")
    if idx.shape[:b] != data.shape[:b]:
        raise ctx.fail(Reason.INVALID_MODEL, "the batch dimensions of data and indices differ")
    out_shape = idx.shape[:-1] + data.shape[b + k:]
    if is_empty(out_shape):
        set_empty_output(ctx, 0, out_shape, data.dtype)
        return
    if is_empty(data.shape):
        raise ctx.fail(Reason.INVALID_MODEL, "index tuples into zero-sized data are out of range")
    dims = list(data.shape[b:b + k])
    # The batch coordinates of every index tuple: shape idx.shape[:-1] + [b].
    batch = np.broadcast_to(_coordinate_grid(idx.shape[:b]).reshape(idx.shape[:b] + (1,) * (idx.rank - 1 - b) + (b,)),
                            idx.shape[:-1] + (b,))
    if idx.is_const:
        full = normalize_const_indices(ctx, idx.data, dims)
        if b:
            full = np.concatenate([batch, full], axis=-1)
        indices = ctx.new_const(full, hint="indices")
    else:
        indices = _floor_mod_indices(ctx, idx, dims)
        if b:
            shape = idx.shape[:-1] + (b + k,)
            indices = ctx.emit1("CONCATENATION", [ctx.new_const(batch.astype(idx.dtype), hint="batch"), indices],
                                shape, idx.dtype, "indices", axis=idx.rank - 1, fusedActivationFunction="NONE")
    ctx.emit("GATHER_ND", [data, indices], [ctx.output(0, out_shape, data.dtype)])


def element_coordinates(ctx: LowerContext, idx: Tensor, axis: int, dim: int, to_int32: bool = False) -> Tensor:
    """Full coordinates (shape idx.shape + [rank]) of the elements an element-wise index names.

    Element p of the result is p itself with coordinate ``axis`` replaced by idx[p]
    (negative indices wrapped by ``dim``).
    """
    grid = _coordinate_grid(idx.shape)
    if idx.is_const:
        grid[..., axis] = normalize_const_indices(ctx, idx.data, dim)
        return ctx.new_const(grid, hint="coords")
    grid[..., axis] = 0
    wrapped = _floor_mod_indices(ctx, idx, dim, to_int32)
    onehot = np.zeros(idx.rank, wrapped.dtype)
    onehot[axis] = 1
    column = ctx.reshape(wrapped, idx.shape + (1,))
    # MUL + ADD, not a CONCATENATION of the column among constant coordinates: concatenating
    # one-element-wide pieces on the last axis is about 2x slower in LiteRT's kernel.
    placed = _binary(ctx, "MUL", column, ctx.new_const(onehot, hint="axis_onehot"), hint="placed")
    return _binary(ctx, "ADD", placed, ctx.new_const(grid.astype(wrapped.dtype), hint="grid"), hint="coords")


def row_index(ctx: LowerContext, idx: Tensor, axis: int, data_shape: Sequence[int]) -> Tensor | None:
    """``idx[..., :axis+1]`` when the element-wise index only repeats it along the axes after ``axis``.

    PyTorch's ``scatter(dim, index.unsqueeze(-1).expand_as(src), src)`` idiom names whole rows:
    then one coordinate tuple per row (GATHER_ND / SCATTER_ND of row slices) replaces one per
    element, which also drops the index broadcast. The trailing axes must span the data's.
    """
    rank = idx.rank
    if axis == rank - 1 or tuple(idx.shape[axis + 1:]) != tuple(data_shape[axis + 1:]):
        return None
    prefix = tuple(idx.shape[:axis + 1])
    if idx.is_const:
        first = np.asarray(idx.data)[(slice(None),) * (axis + 1) + (slice(0, 1),) * (rank - axis - 1)]
        if not np.array_equal(np.broadcast_to(first, idx.shape), idx.data):
            return None
        return ctx.new_const(first.reshape(prefix), hint="row_index")
    op = ctx.producer(idx)
    if op is None or op.opcode != "BROADCAST_TO":
        return None
    src = op.inputs[0]
    if src.rank != rank or tuple(src.shape[:axis + 1]) != prefix or any(d != 1 for d in src.shape[axis + 1:]):
        return None
    return ctx.reshape(src, prefix)


@lowering("GatherElements", since=11, onnx_dtypes=ONNX_ALL, dtypes=_GATHER_DTYPES, verified=_GATHER_DTYPES,
          zero_size_inputs=True)
@via_float32
def lower_gather_elements(node: NodeView, ctx: LowerContext) -> None:
    """GatherElements as GATHER_ND over full per-element coordinates."""
    data, idx = ctx.input(0), ctx.input(1)
    _index_dtype(ctx, idx)
    if data.rank == 0 or idx.rank != data.rank:
        raise ctx.fail(Reason.INVALID_MODEL, "data and indices must have the same rank >= 1")
    axis = _norm_axis(ctx, node.attr("axis", 0), data.rank)
    if any(i > d for a, (i, d) in enumerate(zip(idx.shape, data.shape)) if a != axis):
        raise ctx.fail(Reason.INVALID_MODEL, "indices exceed data on a non-indexed axis")
    if is_empty(idx.shape):
        set_empty_output(ctx, 0, idx.shape, data.dtype)
        return
    if is_empty(data.shape):
        raise ctx.fail(Reason.INVALID_MODEL, "indices into zero-sized data are out of range")
    rows = row_index(ctx, idx, axis, data.shape)
    coords = element_coordinates(ctx, idx if rows is None else rows, axis, data.shape[axis])
    ctx.emit("GATHER_ND", [data, coords], [ctx.output(0, idx.shape, data.dtype)])


# -- ScatterND / ScatterElements -------------------------------------------------------------------
def _reduction(ctx: LowerContext, node: NodeView) -> str:
    reduction = node.attr("reduction", "none") if node.opset >= 16 else "none"
    if reduction not in ("none", "add", "mul", "max", "min") or (reduction in ("max", "min") and node.opset < 18):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"reduction '{reduction}' is not supported")
    return reduction


# reduction -> the element-wise op that folds one update into the running result.
_FOLD_OPS = {"mul": "MUL", "max": "MAXIMUM", "min": "MINIMUM"}
# mul / max / min apply the updates one by one (one SCATTER_ND each): a bound on the op count.
_MAX_SEQUENTIAL_UPDATES = 64


def _scatter_sequential(ctx: LowerContext, data: Tensor, coords: Tensor, updates: Tensor, reduction: str,
                        out: Tensor) -> None:
    """reduction mul / max / min: fold the update tuples into ``data`` one at a time, in index order.

    Update i is written into a zero tensor (SCATTER_ND), combined with the running result
    (MUL / MAXIMUM / MINIMUM) and selected where its own one-position mask is set. Applying the
    updates in order gives ONNX's result exactly, duplicates included (mul rounds in that order).
    """
    k = coords.shape[-1]
    n = int(np.prod(coords.shape[:-1], dtype=np.int64))
    if n > _MAX_SEQUENTIAL_UPDATES:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"reduction '{reduction}' with {n} index tuples (> {_MAX_SEQUENTIAL_UPDATES}) is not supported")
    rest = data.shape[k:]
    flat_coords = ctx.reshape(coords, (n, k))
    flat_updates = ctx.reshape(updates, (n,) + rest)
    shape = ctx.new_const(np.array(data.shape, np.int32), hint="shape")
    mask_dims = ctx.new_const(np.array(data.shape[:k], np.int32), hint="mask_shape")
    one = ctx.new_const(np.ones((1,), np.int32), hint="one")
    mask_shape = data.shape[:k] + (1,) * (data.rank - k)
    result = data
    for i in range(n):
        c = ctx.emit1("SLICE", [flat_coords, ctx.new_const(np.array([i, 0], np.int32), hint="at"),
                                ctx.new_const(np.array([1, k], np.int32), hint="size")], (1, k), _I32, "coord")
        u = ctx.emit1("SLICE", [flat_updates, ctx.new_const(np.array([i] + [0] * len(rest), np.int32), hint="at"),
                                ctx.new_const(np.array([1, *rest], np.int32), hint="size")],
                      (1,) + rest, data.dtype, "update")
        placed = ctx.emit1("SCATTER_ND", [c, u, shape], data.shape, data.dtype, "placed")
        hit = ctx.emit1("SCATTER_ND", [c, one, mask_dims], data.shape[:k], _I32, "hit")
        written = _binary(ctx, "GREATER", hit, ctx.new_const(np.array(0, np.int32), hint="zero"),
                          hint="written", dtype=_BOOL)
        if written.shape != mask_shape:
            written = ctx.reshape(written, mask_shape)
        folded = _binary(ctx, _FOLD_OPS[reduction], result, placed, hint="folded")
        result = _select(ctx, written, folded, result, out=out if i == n - 1 else None, hint="result")


def scatter_nd_update(ctx: LowerContext, data: Tensor, coords: Tensor, updates: Tensor, reduction: str,
             out: Tensor) -> None:
    """ONNX ScatterND semantics from LiteRT's zero-based SCATTER_ND; ``coords`` are normalized int32
    (the stock SCATTER_ND kernel takes int32 indices only)."""
    k = coords.shape[-1]
    if updates.shape != coords.shape[:-1] + data.shape[k:]:
        raise ctx.fail(Reason.INVALID_MODEL, f"updates shape {list(updates.shape)} does not match the indices")
    if updates.dtype != data.dtype:
        raise ctx.fail(Reason.INVALID_MODEL, "data and updates have different dtypes")
    if reduction in _FOLD_OPS:
        _scatter_sequential(ctx, data, coords, updates, reduction, out)
        return
    if reduction == "none" and coords.is_const:
        flat = coords.data.reshape(-1, k)
        if len({tuple(r) for r in flat.tolist()}) != len(flat):
            # ONNX leaves duplicates undefined for reduction='none'; refuse rather than guess.
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "constant indices contain duplicates")
    shape = ctx.new_const(np.array(data.shape, np.int32), hint="shape")
    if data.is_const and not np.any(np.asarray(data.data)):
        # Into zeros, SCATTER_ND is the whole answer: it sums duplicates (reduction add) and ONNX
        # rules duplicates out for reduction none; the unwritten places keep data's zeros.
        ctx.emit("SCATTER_ND", [coords, updates, shape], [out])
        return
    scattered = ctx.emit1("SCATTER_ND", [coords, updates, shape], data.shape, data.dtype, "scattered")
    if reduction == "add":
        _binary(ctx, "ADD", data, scattered, out=out)
        return
    mask_shape = data.shape[:k] + (1,) * (data.rank - k)
    if coords.is_const:
        flat = coords.data.reshape(-1, k)
        mask = np.zeros(data.shape[:k], bool)
        mask[tuple(flat.T)] = True
        written = ctx.new_const(mask.reshape(mask_shape), hint="mask")
    else:
        ones = ctx.new_const(np.ones(coords.shape[:-1], np.int32), hint="ones")
        count = ctx.emit1("SCATTER_ND", [coords, ones, ctx.new_const(np.array(data.shape[:k], np.int32),
                                                                     hint="mask_shape")],
                          data.shape[:k], _I32, "count")
        written = _binary(ctx, "GREATER", count, ctx.new_const(np.array(0, np.int32), hint="zero"),
                          hint="written", dtype=_BOOL)
        if written.shape != mask_shape:
            written = ctx.reshape(written, mask_shape)
    _select(ctx, written, scattered, data, out=out)


_SCATTER_DTYPES = _F32_I32_I64


def _scatter_trivial(ctx: LowerContext, data: Tensor, idx: Tensor) -> bool:
    """Handle zero-sized scatters: empty data -> empty output; no index tuples -> a copy of data."""
    if is_empty(data.shape):
        set_empty_output(ctx, 0, data.shape, data.dtype)
        return True
    if is_empty(idx.shape[:-1] if ctx.node.op_type == "ScatterND" else idx.shape):
        _copy(ctx, data, ctx.output(0, data.shape, data.dtype))
        return True
    return False


@lowering("ScatterND", since=11, onnx_dtypes=ONNX_ALL, dtypes=_SCATTER_DTYPES, verified=_SCATTER_DTYPES,
          zero_size_inputs=True)
def lower_scatter_nd(node: NodeView, ctx: LowerContext) -> None:
    """ScatterND (reduction none/add/mul/max/min) with constant or run-time indices."""
    data, idx, updates = ctx.input(0), ctx.input(1), ctx.input(2)
    _index_dtype(ctx, idx)
    k = idx.shape[-1] if idx.rank else 0
    if k < 1 or k > data.rank:
        raise ctx.fail(Reason.INVALID_MODEL, f"index tuples of length {k} do not fit data of rank {data.rank}")
    reduction = _reduction(ctx, node)
    if _scatter_trivial(ctx, data, idx):
        return
    dims = list(data.shape[:k])
    if idx.is_const:
        coords = ctx.new_const(normalize_const_indices(ctx, idx.data, dims), hint="indices")
    else:
        coords = _floor_mod_indices(ctx, idx, dims, to_int32=True)
    scatter_nd_update(ctx, data, coords, updates, reduction, ctx.output(0, data.shape, data.dtype))


@lowering("Scatter", since=9, until=10, onnx_dtypes=ONNX_ALL, dtypes=_SCATTER_DTYPES, verified=_SCATTER_DTYPES,
          zero_size_inputs=True)
@lowering("ScatterElements", since=11, onnx_dtypes=ONNX_ALL, dtypes=_SCATTER_DTYPES, verified=_SCATTER_DTYPES,
          zero_size_inputs=True)
def lower_scatter_elements(node: NodeView, ctx: LowerContext) -> None:
    """ScatterElements (reduction none/add/mul/max/min, any axis) as a scatter of per-element
    coordinates, or of per-row coordinates when the index repeats along the trailing axes.

    Scatter (opsets 9-10) is the same operator under its old name, without reduction.
    """
    data, idx, updates = ctx.input(0), ctx.input(1), ctx.input(2)
    _index_dtype(ctx, idx)
    if data.rank == 0 or idx.rank != data.rank or updates.shape != idx.shape:
        raise ctx.fail(Reason.INVALID_MODEL, "data, indices and updates must have the same rank; "
                       "indices and updates the same shape")
    axis = _norm_axis(ctx, node.attr("axis", 0), data.rank)
    reduction = _reduction(ctx, node)
    if _scatter_trivial(ctx, data, idx):
        return
    rows = row_index(ctx, idx, axis, data.shape)
    coords = element_coordinates(ctx, idx if rows is None else rows, axis, data.shape[axis], to_int32=True)
    scatter_nd_update(ctx, data, coords, updates, reduction, ctx.output(0, data.shape, data.dtype))


# -- OneHot ----------------------------------------------------------------------------------------
_ONE_HOT_DTYPES = ("float32", "int32", "int64", "int8", "uint8", "bool", "bfloat16")


@lowering("OneHot", since=9, onnx_dtypes=ONNX_ALL, dtypes=_ONE_HOT_DTYPES, verified=_F32_I32_I64 + ("bfloat16",),
          dtype_input=2, zero_size_inputs=True)
@via_float32
def lower_one_hot(node: NodeView, ctx: LowerContext) -> None:
    """ONE_HOT with a constant depth; negative indices wrap (index + depth) per the ONNX spec.

    Indices outside [-depth, depth) give all-off rows in both ONNX and LiteRT.
    """
    idx, values = ctx.input(0), ctx.input(2)
    if values.size != 2:
        raise ctx.fail(Reason.INVALID_MODEL, "values must hold [off_value, on_value]")
    axis = _norm_axis(ctx, node.attr("axis", -1), idx.rank + 1)
    depth = _one_hot_depth(ctx, axis)
    if depth < 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"depth {depth} must be positive")
    if idx.dtype.name in _ONE_HOT_FLOAT_INDICES:
        idx = _float_indices(ctx, idx, depth)
    _index_dtype(ctx, idx)
    out_shape = idx.shape[:axis] + (depth,) + idx.shape[axis:]
    if is_empty(out_shape):
        set_empty_output(ctx, 0, out_shape, values.dtype)
        return
    if idx.is_const:
        v = np.asarray(idx.data).astype(np.int64)
        indices = ctx.new_const(np.where(v < 0, v + depth, v).astype(idx.dtype), hint="indices")
    else:
        neg = _binary(ctx, "LESS", idx, ctx.new_const(np.array(0, idx.dtype), hint="zero"), hint="negative",
                      dtype=_BOOL)
        shifted = _binary(ctx, "ADD", idx, ctx.new_const(np.array(depth, idx.dtype), hint="depth"), hint="wrapped")
        indices = _select(ctx, neg, shifted, idx, hint="indices")
    if values.is_const:
        flat = values.data.reshape(-1)
        off, on = ctx.new_const(flat[0], hint="off"), ctx.new_const(flat[1], hint="on")
    else:
        flat_t = ctx.reshape(values, (2,))
        off = ctx.reshape(ctx.emit1("SLICE", [flat_t, ctx.new_const(np.array([0], np.int32), hint="b0"),
                                              ctx.new_const(np.array([1], np.int32), hint="n")],
                                    (1,), values.dtype, "off"), ())
        on = ctx.reshape(ctx.emit1("SLICE", [flat_t, ctx.new_const(np.array([1], np.int32), hint="b1"),
                                             ctx.new_const(np.array([1], np.int32), hint="n")],
                                   (1,), values.dtype, "on"), ())
    ctx.emit("ONE_HOT", [indices, ctx.new_const(np.array(depth, np.int32), hint="depth"), on, off],
             [ctx.output(0, out_shape, values.dtype)], axis=axis)


# Float indices: ONNX says they are cast to int64, but ONNX Runtime and the ONNX reference both
# give an all-off row for a non-integral value (they compare positions with the value itself);
# both agree on integral values, so those keep their index and the others get an off row.
_ONE_HOT_FLOAT_INDICES = ("float32",)


def _one_hot_depth(ctx: LowerContext, axis: int) -> int:
    """depth from the constant input (any numeric type, truncated), or from the static output shape."""
    value = ctx.const(1)
    if value is not None:
        flat = np.asarray(value).reshape(-1)
        if flat.size != 1:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "depth must hold exactly one value")
        return int(flat[0])
    shape = ctx.out_shape(0)
    if shape is None or len(shape) <= axis:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       "depth is computed at run time and the output shape is not known")
    return int(shape[axis])


def _float_indices(ctx: LowerContext, idx: Tensor, depth: int) -> Tensor:
    """Float indices as int32: integral values keep their value, others become ``depth`` (an off row).

    Values are clamped to +-2**30 first so the CAST cannot overflow (such values are off rows anyway).
    """
    if idx.is_const:
        v = np.asarray(idx.data, np.float64)
        integral = np.isfinite(v) & (np.trunc(v) == v) & (np.abs(v) <= 2.0 ** 30)
        return ctx.new_const(np.where(integral, np.nan_to_num(v), depth).astype(np.int32), hint="indices")
    lim = float(2 ** 30)
    lo = _binary(ctx, "MAXIMUM", idx, ctx.new_const(np.array(-lim, idx.dtype), hint="lo"), hint="clamped")
    clamped = _binary(ctx, "MINIMUM", lo, ctx.new_const(np.array(lim, idx.dtype), hint="hi"), hint="clamped")
    as_int = _cast(ctx, clamped, _I32, hint="indices_i32")
    back = _cast(ctx, as_int, idx.dtype, hint="indices_back")
    # NaN compares unequal (MAXIMUM / MINIMUM may turn it into a bound, so compare with the input).
    integral = _binary(ctx, "EQUAL", back, idx, hint="integral", dtype=_BOOL)
    return _select(ctx, integral, as_int, ctx.new_const(np.array(depth, np.int32), hint="off_index"),
                   hint="indices")


# -- TopK ------------------------------------------------------------------------------------------
_TOPK_DTYPES = ("float32", "int32", "int64", "int8", "uint8", "bfloat16")


@lowering("TopK", since=1, onnx_dtypes=ONNX_NUMERIC, dtypes=_TOPK_DTYPES, verified=_F32_I32_I64 + ("bfloat16",),
          zero_size_inputs=True)
@via_float32
def lower_topk(node: NodeView, ctx: LowerContext) -> None:
    """TOPK_V2 on the last axis (other axes through TRANSPOSE); indices CAST to int64.

    largest=0 (opset 11) takes the top k of an order-reversing map: NEG for floats, and the
    overflow-free -1 - x (bitwise not) for signed integers. Ties keep the lower index first,
    as ONNX requires. sorted=0 leaves the order unspecified, so sorted output is valid.
    """
    x = ctx.input(0)
    if x.rank == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "TopK needs an input of rank >= 1")
    axis = _norm_axis(ctx, node.attr("axis", -1), x.rank)
    k = int(node.attr("k", 0)) if node.opset < 10 else _topk_k(ctx, axis)
    largest = int(node.attr("largest", 1)) if node.opset >= 11 else 1
    dim = x.shape[axis]
    if not 0 <= k <= dim:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"k={k} must lie in [0, {dim}]")
    out_shape = x.shape[:axis] + (k,) + x.shape[axis + 1:]
    if is_empty(out_shape):  # k = 0, or an empty input: no values and no indices to compute
        set_empty_output(ctx, 0, out_shape, x.dtype)
        if len(node.outputs) > 1 and node.outputs[1]:
            set_empty_output(ctx, 1, out_shape, _I64)
        return
    if not largest and x.dtype.name not in _F32_I32_I64:
        # The order-reversing map needs NEG / SUB kernels for the dtype (float32, int32, int64).
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"largest=0 is not supported for {x.dtype.name}")
    values_out = ctx.output(0, out_shape, x.dtype)
    index_out = ctx.output(1, out_shape, _I64)
    last = axis == x.rank - 1
    perm = tuple(i for i in range(x.rank) if i != axis) + (axis,)
    src = x if last else ctx.transpose(x, perm)
    if not largest:
        src = _order_reverse(ctx, src)
    top_shape = src.shape[:-1] + (k,)
    direct = last and largest  # TOPK_V2 can write ONNX output 0 itself
    vals = values_out if direct else ctx.tmp(top_shape, x.dtype, "values")
    idx = ctx.tmp(top_shape, _I32, "indices")
    ctx.emit("TOPK_V2", [src, ctx.new_const(np.array(k, np.int32), hint="k")], [vals, idx])
    if not largest:
        vals = _order_reverse(ctx, vals, out=values_out if last else None)
    if not last:
        inv = inverse_perm(perm)
        ctx.transpose(vals, inv, out=values_out)
        idx = ctx.transpose(idx, inv)
    _cast(ctx, idx, _I64, out=index_out)


def _topk_k(ctx: LowerContext, axis: int) -> int:
    """K from the constant input, or (run-time K) from the static output shape it alone determines."""
    if ctx.const(1) is not None:
        return _scalar_int(ctx, 1, "K")
    shape = ctx.out_shape(0)
    if shape is None or len(shape) <= axis:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, "K is computed at run time and the output shape is not known")
    return int(shape[axis])


def _order_reverse(ctx: LowerContext, x: Tensor, out: Tensor | None = None) -> Tensor:
    """An exact, self-inverse, order-reversing map: -x for floats, -1 - x for signed ints."""
    if x.dtype.kind == "f":
        return ctx.emit1("NEG", [x], x.shape, x.dtype, "reversed", out)
    return _binary(ctx, "SUB", ctx.new_const(np.array(-1, x.dtype), hint="minus_one"), x, out=out, hint="reversed")


# -- CumSum ----------------------------------------------------------------------------------------
@lowering("CumSum", since=11, onnx_dtypes=ONNX_NUMERIC, dtypes=_F32_I32_I64, verified=_F32_I32_I64,
          zero_size_inputs=True)
def lower_cumsum(node: NodeView, ctx: LowerContext) -> None:
    """CUMSUM; exclusive maps to its option, reverse to a forward scan between two REVERSE_V2
    (the kernel's reverse option with a run-time axis, which is passed to the kernel)."""
    x = ctx.input(0)
    if x.rank == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "CumSum needs an input of rank >= 1")
    if is_empty(x.shape):
        set_empty_output(ctx, 0, x.shape, x.dtype)
        return
    if ctx.const(1) is None:
        # A run-time axis goes to the kernel, which reads it at run time; FLOOR_MOD wraps a
        # negative axis (valid ONNX axes lie in [-rank, rank)).
        a = ctx.input(1)
        if a.dtype.name not in _INDEX_DTYPES or a.size != 1:
            raise ctx.fail(Reason.INVALID_MODEL, "axis must be one int32/int64 value")
        if a.dtype != _I32:
            a = _cast(ctx, a, _I32, hint="axis_i32")
        a = ctx.reshape(a, ()) if a.rank else a
        axis_t = _binary(ctx, "FLOOR_MOD", a, ctx.new_const(np.array(x.rank, np.int32), hint="rank"), hint="axis")
    else:
        axis_t = ctx.new_const(np.array(_norm_axis(ctx, _scalar_int(ctx, 1, "axis"), x.rank), np.int32), hint="axis")
    exclusive, reverse = bool(node.attr("exclusive", 0)), bool(node.attr("reverse", 0))
    out = ctx.output(0, x.shape, x.dtype)
    if reverse and axis_t.is_const:
        # LiteRT's reverse scan is ~18x slower than its forward one (measured at 1x256x32 and
        # 64^3); flipping (REVERSE_V2 copies whole rows), scanning forward and flipping back
        # adds the same elements in the same order.
        axes = ctx.new_const(axis_t.data.reshape(1), hint="axes")  # REVERSE_V2 takes a 1-D axis list
        flipped = ctx.emit1("REVERSE_V2", [x, axes], x.shape, x.dtype, "flipped")
        scanned = ctx.emit1("CUMSUM", [flipped, axis_t], x.shape, x.dtype, "scanned", exclusive=exclusive,
                            reverse=False)
        ctx.emit("REVERSE_V2", [scanned, axes], [out])
        return
    ctx.emit("CUMSUM", [x, axis_t], [out], exclusive=exclusive, reverse=reverse)


# -- Range -----------------------------------------------------------------------------------------
_RANGE_DTYPES = ("float32", "int32", "int64")


def range_length(start: float, limit: float, delta: float) -> int:
    """ONNX Range's element count: max(ceil((limit - start) / delta), 0)."""
    return max(int(math.ceil((limit - start) / delta)), 0)


@lowering("Range", since=11, until=26, onnx_dtypes=("float32", "float64", "int16", "int32", "int64"),
          dtypes=_RANGE_DTYPES, verified=_RANGE_DTYPES, zero_size_inputs=True)
def lower_range(node: NodeView, ctx: LowerContext) -> None:
    """Constant inputs: the value computed now. Run-time inputs: RANGE with a dynamic length.

    Opset 27 serves float32 / int32 / int64 through ``lower_range_27``.
    """
    start, limit, delta = ctx.const(0), ctx.const(1), ctx.const(2)
    dtype = ctx.input(0).dtype
    if start is not None and limit is not None and delta is not None:
        s, lim, d = (np.asarray(v).reshape(()).item() for v in (start, limit, delta))
        if d == 0:
            raise ctx.fail(Reason.INVALID_MODEL, "Range delta must not be zero")
        n = range_length(s, lim, d)
        # ONNX Runtime accumulates start + delta + delta ... in the element type.
        values = np.empty(n, dtype)
        acc = np.asarray(s, dtype)
        step = np.asarray(d, dtype)
        for i in range(n):
            values[i] = acc
            acc = (acc + step).astype(dtype)
        _set_const_output(ctx, values, "range")
        return
    known = ctx.out_shape(0)
    if known is not None and all(int(v) > 0 for v in known):
        out = ctx.output(0, tuple(known), dtype)
    else:
        out = ctx.output(0, (_DYNAMIC,), dtype)
        out.shape_signature = (-1,)
    ins = [ctx.reshape(ctx.input(i), ()) if ctx.input(i).rank else ctx.input(i) for i in range(3)]
    ctx.emit("RANGE", ins, [out])


@lowering("Range", since=27, onnx_dtypes=("float32", "float64", "int16", "int32", "int64", "float16", "bfloat16"),
          dtypes=_RANGE_DTYPES + ("bfloat16",), verified=_RANGE_DTYPES + ("bfloat16",), zero_size_inputs=True)
def lower_range_27(node: NodeView, ctx: LowerContext) -> None:
    """Range from opset 27: bfloat16 is computed in ``stash_type`` (float32 only) and rounded back.

    Opset 27 only added float16 / bfloat16 and stash_type, which applies to them alone; the
    float32 / int32 / int64 semantics are unchanged (see ``lower_range``).
    """
    stash = int(node.attr("stash_type", helper.np_dtype_to_tensor_dtype(np.dtype(np.float32))))
    if ctx.input(0).dtype.name == "bfloat16" and stash != helper.np_dtype_to_tensor_dtype(np.dtype(np.float32)):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"Range stash_type {stash}: only float32 (1) accumulation is supported for bfloat16")
    via_float32(lower_range)(node, ctx)


# -- Tile / Expand ---------------------------------------------------------------------------------
_BROADCAST_DTYPES = ("float32", "int32", "int64", "int8", "uint8", "bool", "bfloat16")
# BROADCAST_TO only moves bytes: float16 works natively with and without XNNPACK (checked bit for bit).
_EXPAND_DTYPES = _BROADCAST_DTYPES + ("float16",)


@lowering("Tile", since=6, onnx_dtypes=ONNX_ALL, dtypes=_BROADCAST_DTYPES, verified=_BROADCAST_DTYPES,
          zero_size_inputs=True)
@via_float32
def lower_tile(node: NodeView, ctx: LowerContext) -> None:
    """TILE; constant repeats become int32 multiples, run-time repeats need a known output shape."""
    x = ctx.input(0)
    repeats = ctx.const(1)
    if repeats is not None:
        reps = [int(r) for r in np.asarray(repeats).reshape(-1)]
        if len(reps) != x.rank or any(r < 0 for r in reps):
            raise ctx.fail(Reason.INVALID_MODEL, f"repeats {reps} do not match rank {x.rank}")
        shape = tuple(d * r for d, r in zip(x.shape, reps))
        multiples = ctx.new_const(np.array(reps, np.int32), hint="multiples")
    else:
        shape = ctx.out_shape(0)
        if shape is None:
            raise ctx.fail(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                           "repeats are computed at run time and the output shape is not known")
        multiples = ctx.input(1)
        _index_dtype(ctx, multiples, "repeats")
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, x.dtype)
        return
    out = ctx.output(0, tuple(shape), x.dtype)
    if x.rank == 0:
        _copy(ctx, x, out)
        return
    ctx.emit("TILE", [x, multiples], [out])


@lowering("Expand", since=8, onnx_dtypes=ONNX_ALL, dtypes=_EXPAND_DTYPES, verified=_EXPAND_DTYPES,
          zero_size_inputs=True)
@via_float32
def lower_expand(node: NodeView, ctx: LowerContext) -> None:
    """Expand (bidirectional broadcast) -> BROADCAST_TO the broadcast shape (or a copy)."""
    x = ctx.input(0)
    shape_value = ctx.const(1)
    if shape_value is not None:
        target = [int(d) for d in np.asarray(shape_value).reshape(-1)]
        try:
            shape = tuple(np.broadcast_shapes(x.shape, tuple(target)))
        except ValueError:
            raise ctx.fail(Reason.INVALID_MODEL, f"shape {target} does not broadcast with {list(x.shape)}") from None
    else:
        known = ctx.out_shape(0)
        if known is None:
            raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                           "shape is computed at run time and the output shape is not known")
        shape = tuple(int(d) for d in known)
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, x.dtype)
        return
    out = ctx.output(0, shape, x.dtype)
    if shape == x.shape:
        _copy(ctx, x, out)
        return
    ctx.emit("BROADCAST_TO", [x, ctx.new_const(np.array(shape, np.int32), hint="shape")], [out])


# -- Trilu / EyeLike -------------------------------------------------------------------------------
_SELECT_DTYPES = ("float32", "int32", "int64", "int8", "uint8", "bool", "bfloat16")


@lowering("Trilu", since=14, onnx_dtypes=ONNX_ALL, dtypes=_SELECT_DTYPES, verified=_F32_I32_I64 + ("bool", "bfloat16"),
          zero_size_inputs=True)
@via_float32
def lower_trilu(node: NodeView, ctx: LowerContext) -> None:
    """SELECT_V2 between the input and zero with a triangular mask (exact for inf/NaN).

    A constant k gives a constant mask; a run-time k compares constant column-minus-row offsets
    with it (GREATER_EQUAL / LESS_EQUAL).
    """
    x = ctx.input(0)
    if x.rank < 2:
        raise ctx.fail(Reason.INVALID_MODEL, "Trilu needs an input of rank >= 2")
    if is_empty(x.shape):  # no values to mask, whatever k is
        set_empty_output(ctx, 0, x.shape, x.dtype)
        return
    n, m = x.shape[-2:]
    rows, cols = np.indices((n, m))
    upper = bool(int(node.attr("upper", 1)))
    if ctx.has_input(1) and ctx.const(1) is None:
        # A run-time k: compare the constant diagonal offsets (col - row) with k at run time.
        k_t = ctx.input(1)
        if k_t.dtype.name not in _INDEX_DTYPES or k_t.size != 1:
            raise ctx.fail(Reason.INVALID_MODEL, "k must be one int64 value")
        k_t = ctx.reshape(k_t, ()) if k_t.rank else k_t
        offsets = ctx.new_const((cols - rows).astype(k_t.dtype), hint="offsets")
        mask = _binary(ctx, "GREATER_EQUAL" if upper else "LESS_EQUAL", offsets, k_t, hint="mask", dtype=_BOOL)
    else:
        k = _scalar_int(ctx, 1, "k") if ctx.has_input(1) else 0
        mask = ctx.new_const((cols - rows >= k) if upper else (cols - rows <= k), hint="mask")
    out = ctx.output(0, x.shape, x.dtype)
    _select(ctx, mask, x, ctx.new_const(np.zeros((), x.dtype), hint="zero"), out=out)


_EYE_DTYPES = ("float32", "int32", "int64", "int8", "uint8", "bool")


@lowering("EyeLike", since=9, onnx_dtypes=ONNX_NUMERIC + ("bool",), dtypes=_EYE_DTYPES, verified=_F32_I32_I64,
          dtype_input=None, zero_size_inputs=True)
def lower_eye_like(node: NodeView, ctx: LowerContext) -> None:
    """A constant: the input's static 2-D shape fully determines the output."""
    x = ctx.input(0)
    if x.rank != 2:
        raise ctx.fail(Reason.INVALID_MODEL, "EyeLike needs a 2-D input")
    dtype = x.dtype
    if node.attr("dtype") is not None:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(node.attr("dtype"))))
    if dtype.name not in _EYE_DTYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"output dtype {dtype.name} is not supported")
    _set_const_output(ctx, np.eye(x.shape[0], x.shape[1], int(node.attr("k", 0)), dtype=dtype), "eye")


# -- NonZero / Compress ----------------------------------------------------------------------------
_WHERE_DTYPES = ("float32", "int32", "int64", "int8", "uint8", "bool")


@lowering("NonZero", since=9, onnx_dtypes=ONNX_ALL, dtypes=_WHERE_DTYPES, verified=("float32", "int32", "bool"),
          zero_size_inputs=True)
def lower_nonzero(node: NodeView, ctx: LowerContext) -> None:
    """Constant input: the value now. Otherwise WHERE ([n, rank] int64, dynamic n) + TRANSPOSE."""
    x = ctx.input(0)
    if x.rank == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "NonZero of a scalar is not supported")
    if x.is_const:
        value = np.array(np.nonzero(x.data), np.int64).reshape(x.rank, -1)
        _set_const_output(ctx, value, "nonzero")
        return
    if is_empty(x.shape):  # no elements, so no non-zero ones: a static empty result
        set_empty_output(ctx, 0, (x.rank, 0), _I64)
        return
    coords = ctx.tmp((_DYNAMIC, x.rank), _I64, "coords")
    coords.shape_signature = (-1, x.rank)
    ctx.emit("WHERE", [x], [coords])
    out = ctx.output(0, (x.rank, _DYNAMIC), _I64)
    out.shape_signature = (x.rank, -1)
    ctx.emit("TRANSPOSE", [coords, ctx.new_const(np.array([1, 0], np.int32), hint="perm")], [out])


@lowering("Compress", since=9, onnx_dtypes=ONNX_ALL, dtypes=_GATHER_DTYPES, verified=_GATHER_DTYPES,
          zero_size_inputs=True)
@via_float32
def lower_compress(node: NodeView, ctx: LowerContext) -> None:
    """GATHER of the selected positions (the input flattened without axis).

    A constant condition gives constant positions. A run-time one goes through WHERE (the
    positions of its true elements); the compressed axis then has a data-dependent length,
    recorded like NonZero's (shape_signature -1) unless the node's output shape is static.
    """
    x = ctx.input(0)
    cond = ctx.const(1)
    axis_attr = node.attr("axis")
    src = x
    if axis_attr is None:
        src = ctx.reshape(x, (x.size,))
        axis = 0
    else:
        axis = _norm_axis(ctx, axis_attr, x.rank)
    if cond is None:
        _compress_runtime(ctx, src, axis)
        return
    cond = np.asarray(cond).reshape(-1).astype(bool)
    if cond.size > src.shape[axis]:
        raise ctx.fail(Reason.INVALID_MODEL, "condition is longer than the compressed axis")
    positions = np.nonzero(cond)[0].astype(np.int32)
    shape = src.shape[:axis] + (positions.size,) + src.shape[axis + 1:]
    if is_empty(shape):
        set_empty_output(ctx, 0, shape, x.dtype)
        return
    ctx.emit("GATHER", [src, ctx.new_const(positions, hint="positions")], [ctx.output(0, shape, x.dtype)],
             axis=axis, batchDims=0)


def _compress_runtime(ctx: LowerContext, src: Tensor, axis: int) -> None:
    """Compress with a run-time condition: WHERE -> int64 positions [n] -> GATHER along ``axis``."""
    cond = ctx.input(1)
    if cond.dtype != _BOOL:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"condition dtype {cond.dtype.name} is not bool")
    if cond.rank != 1:
        raise ctx.fail(Reason.INVALID_MODEL, "condition must be 1-D")
    if cond.size > src.shape[axis]:
        raise ctx.fail(Reason.INVALID_MODEL, "condition is longer than the compressed axis")
    if cond.size == 0:  # nothing selected
        set_empty_output(ctx, 0, src.shape[:axis] + (0,) + src.shape[axis + 1:], src.dtype)
        return
    _require_nonempty(ctx, src.shape, "the input")
    coords = ctx.tmp((_DYNAMIC, 1), _I64, "coords")
    coords.shape_signature = (-1, 1)
    ctx.emit("WHERE", [cond], [coords])
    positions = ctx.tmp((_DYNAMIC,), _I64, "positions")
    positions.shape_signature = (-1,)
    ctx.emit("RESHAPE", [coords, ctx.new_const(np.array([-1], np.int32), hint="flat")], [positions])
    known = ctx.out_shape(0)
    static = known is not None and len(known) == src.rank and all(int(d) > 0 for d in known)
    if static:
        out = ctx.output(0, tuple(int(d) for d in known), src.dtype)
    else:
        out = ctx.output(0, src.shape[:axis] + (_DYNAMIC,) + src.shape[axis + 1:], src.dtype)
        out.shape_signature = src.shape[:axis] + (-1,) + src.shape[axis + 1:]
    ctx.emit("GATHER", [src, positions], [out], axis=axis, batchDims=0)


# -- Unique ----------------------------------------------------------------------------------------
# Dtypes whose EQUAL / LESS / GATHER kernels the Unique lowering uses (verified against ONNX Runtime,
# which implements Unique for float32, int64 and int8 among these).
_UNIQUE_DTYPES = ("float32", "int64", "int8", "bfloat16")
# Bound on N * N * M (rows squared times row length): the pairwise comparison tensors' size.
_MAX_UNIQUE_PAIRS = 1 << 20


def _unique_rows(ctx: LowerContext, x: Tensor, axis: int | None) -> tuple[Tensor, int, int]:
    """The slices Unique compares, as a [N, M] matrix (row i = slice i, flattened in C order)."""
    if axis is None:
        return ctx.reshape(x, (x.size, 1)), x.size, 1
    n = x.shape[axis]
    m = x.size // n
    pre = int(np.prod(x.shape[:axis], dtype=np.int64))
    if pre == 1:
        return ctx.reshape(x, (n, m)), n, m
    # Through rank 3 (pre, N, post), so any input rank stays within TRANSPOSE's limit.
    src = ctx.transpose(ctx.reshape(x, (pre, n, m // pre)), (1, 0, 2))
    return ctx.reshape(src, (n, m)), n, m


def _unique_trivial(node: NodeView, ctx: LowerContext, x: Tensor, axis: int | None, n: int) -> None:
    """Unique with no rows (all outputs empty) or with empty rows (all rows equal: one unique slice)."""
    out_dim = 0 if n == 0 else 1
    y_shape = (out_dim,) if axis is None else x.shape[:axis] + (out_dim,) + x.shape[axis + 1:]
    values = {
        0: np.zeros(y_shape, x.dtype),
        1: np.zeros((out_dim,), np.int64),
        2: np.zeros((n,), np.int64),
        3: np.full((out_dim,), n, np.int64),
    }
    for i, value in values.items():
        if i < len(node.outputs) and node.outputs[i]:
            ctx.graph.values[node.outputs[i]] = ctx.new_const(value, hint="unique")


def _unique_less(ctx: LowerContext, a: Tensor, b: Tensor, n: int, m: int) -> Tensor:
    """[N, N] bool: row j < row i lexicographically (a = rows as [N, 1, M], b = rows as [1, N, M])."""
    if m == 1:
        return _binary(ctx, "LESS", ctx.reshape(a, (n, 1)), ctx.reshape(b, (1, n)), hint="less", dtype=_BOOL)
    less = _binary(ctx, "LESS", a, b, hint="less_k", dtype=_BOOL)
    differ = _cast(ctx, _binary(ctx, "NOT_EQUAL", a, b, hint="differ_k", dtype=_BOOL), _I32, hint="differ_i32")
    # Elements before k all equal <=> no difference before k (exclusive prefix count is 0).
    before = ctx.emit1("CUMSUM", [differ, ctx.new_const(np.array(2, np.int32), hint="axis")], (n, n, m), _I32,
                       "differ_before", exclusive=True, reverse=False)
    tied = _binary(ctx, "EQUAL", before, ctx.new_const(np.array(0, np.int32), hint="zero"), hint="tied", dtype=_BOOL)
    decides = _binary(ctx, "LOGICAL_AND", less, tied, hint="decides")
    return ctx.emit1("REDUCE_ANY", [decides, ctx.new_const(np.array([2], np.int32), hint="axis")], (n, n), _BOOL,
                     "less", keepDims=False)


@lowering("Unique", since=11, onnx_dtypes=ONNX_ALL, dtypes=_UNIQUE_DTYPES, verified=_UNIQUE_DTYPES,
          zero_size_inputs=True)
@via_float32
def lower_unique(node: NodeView, ctx: LowerContext) -> None:
    """Unique (axis or flattened, sorted or first-occurrence order) with pairwise comparisons.

    The N slices are compared pairwise ([N, N] EQUAL, and LESS for the lexicographic order).
    Each slice's group representative is its first equal slice (ARG_MAX of the equality row);
    the representatives are the unique slices. A unique slice's position in Y is the number of
    unique slices before it (in input order, or smaller when sorted); inverse_indices gathers the
    representatives' positions. indices / counts are computed for all N slots, then SLICEd to the
    run-time unique count K, so Y, indices and counts have a data-dependent length (static 0,
    shape_signature -1), like NonZero's output. Equality is the kernels' (NaN never equals NaN).
    """
    x = ctx.input(0)
    axis_attr = node.attr("axis")
    axis = None if axis_attr is None else _norm_axis(ctx, axis_attr, max(x.rank, 1))
    if axis is not None and x.rank == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "Unique with an axis needs an input of rank >= 1")
    sort = bool(int(node.attr("sorted", 1)))
    n = x.size if axis is None else x.shape[axis]
    m = 1 if axis is None else (x.size // n if n else 0)
    if n == 0 or m == 0:
        _unique_trivial(node, ctx, x, axis, n)
        return
    if n * n * m > _MAX_UNIQUE_PAIRS:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"Unique of {n} slices of {m} elements needs {n * n * m} pairwise comparisons "
                       f"(> {_MAX_UNIQUE_PAIRS})")
    # int8 comparisons take LiteRT's quantized path (it aborts without quantization parameters):
    # compare exact int32 copies instead.
    keys = _cast(ctx, x, _I32, hint="keys") if x.dtype == np.int8 else x
    rows, n, m = _unique_rows(ctx, keys, axis)
    a, b = ctx.reshape(rows, (n, 1, m)), ctx.reshape(rows, (1, n, m))
    if m == 1:
        same = _binary(ctx, "EQUAL", ctx.reshape(rows, (n, 1)), ctx.reshape(rows, (1, n)), hint="same", dtype=_BOOL)
    else:
        same_k = _binary(ctx, "EQUAL", a, b, hint="same_k", dtype=_BOOL)
        same = ctx.emit1("REDUCE_ALL", [same_k, ctx.new_const(np.array([2], np.int32), hint="axis")], (n, n),
                         _BOOL, "same", keepDims=False)
    last_axis = ctx.new_const(np.array([1], np.int32), hint="axis1")
    first_axis = ctx.new_const(np.array([0], np.int32), hint="axis0")
    # rep[i]: the first slice equal to slice i (ARG_MAX keeps the first of tied maxima).
    rep = ctx.emit1("ARG_MAX", [_cast(ctx, same, _I32, hint="same_i32"), last_axis], (n,), _I32, "rep",
                    outputType="INT32")
    arange = np.arange(n, dtype=np.int32)
    is_first = _binary(ctx, "EQUAL", rep, ctx.new_const(arange, hint="arange"), hint="is_first", dtype=_BOOL)
    # before[j, i]: unique slice j comes before slice i in Y.
    if sort:
        before = _unique_less(ctx, a, b, n, m)
    else:
        before = ctx.new_const(arange.reshape(n, 1) < arange.reshape(1, n), hint="earlier")
    counted = _binary(ctx, "LOGICAL_AND", ctx.reshape(is_first, (n, 1)), before, hint="counted")
    pos = ctx.emit1("SUM", [_cast(ctx, counted, _I32, hint="counted_i32"), first_axis], (n,), _I32, "pos",
                    keepDims=False)
    inverse = pos if sort else ctx.emit1("GATHER", [pos, rep], (n,), _I32, "inverse", axis=0, batchDims=0)
    slots = ctx.new_const(arange.reshape(n, 1), hint="slots")
    # indices_full[p]: the unique slice at position p (rows p >= K are all false and give 0).
    at_slot = _binary(ctx, "LOGICAL_AND", _binary(ctx, "EQUAL", ctx.reshape(pos, (1, n)), slots, hint="at_pos",
                                                  dtype=_BOOL), ctx.reshape(is_first, (1, n)), hint="at_slot")
    indices_full = ctx.emit1("ARG_MAX", [_cast(ctx, at_slot, _I32, hint="at_slot_i32"), last_axis], (n,), _I64,
                             "indices_full", outputType="INT64")
    counts_full = ctx.emit1("SUM", [_cast(ctx, _binary(ctx, "EQUAL", ctx.reshape(inverse, (1, n)), slots,
                                                       hint="in_slot", dtype=_BOOL), _I32, hint="in_slot_i32"),
                                    last_axis], (n,), _I32, "counts_full", keepDims=False)
    k = ctx.emit1("SUM", [_cast(ctx, is_first, _I32, hint="first_i32"), first_axis], (1,), _I32, "k",
                  keepDims=True)
    begin = ctx.new_const(np.zeros(1, np.int32), hint="begin")

    def dynamic_out(i: int, hint: str) -> Tensor:
        t = ctx.output(i, (_DYNAMIC,), _I64) if i < len(node.outputs) and node.outputs[i] else \
            ctx.tmp((_DYNAMIC,), _I64, hint)
        t.shape_signature = (-1,)
        return t

    indices = dynamic_out(1, "indices")
    ctx.emit("SLICE", [indices_full, begin, k], [indices])
    src = ctx.reshape(x, (x.size,)) if axis is None else x
    y_axis = 0 if axis is None else axis
    y_shape = src.shape[:y_axis] + (_DYNAMIC,) + src.shape[y_axis + 1:]
    y = ctx.output(0, y_shape, x.dtype) if node.outputs[0] else ctx.tmp(y_shape, x.dtype, "y")
    y.shape_signature = src.shape[:y_axis] + (-1,) + src.shape[y_axis + 1:]
    ctx.emit("GATHER", [src, indices], [y], axis=y_axis, batchDims=0)
    if len(node.outputs) > 2 and node.outputs[2]:
        _cast(ctx, inverse, _I64, out=ctx.output(2, (n,), _I64))
    if len(node.outputs) > 3 and node.outputs[3]:
        counts = ctx.tmp((_DYNAMIC,), _I32, "counts")
        counts.shape_signature = (-1,)
        ctx.emit("SLICE", [counts_full, begin, k], [counts])
        _cast(ctx, counts, _I64, out=dynamic_out(3, "counts"))
