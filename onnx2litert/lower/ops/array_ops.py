"""Lowerings of the array_ops family: less common array ops built from plain LiteRT builtins.

Ops: Hardmax, CumProd, BitCast, ReverseSequence, Det, CenterCropPad, TensorScatter,
AffineGrid, Col2Im, MaxUnpool, LpPool. (MaxUnpool and LpPool are pooling ops; they reuse ``pool.py``'s window geometry.)

How each stays exact:

- Hardmax = ONE_HOT(ARG_MAX(x, axis)); ARG_MAX returns the first maximal index like ONNX. Before opset 13
  the input is flattened to 2-D at ``axis`` first (like Softmax).
- CumProd multiplies sequentially along the (static) axis, one MUL per step, in the same order as the
  ONNX reference; a run-time axis computes the product along every axis and SELECTs the right one.
- BitCast is the BITCAST builtin (same element size).
- ReverseSequence is the REVERSE_SEQUENCE builtin with run-time lengths.
- Det is the cofactor expansion for n <= 3 (products of at most 3 entries; within float32 rounding of
  ONNX Runtime's LU).
- CenterCropPad / MaxUnpool / AffineGrid take their shape parameters from the static output shape when
  they are computed at run time (the model would be invalid otherwise), only where uniquely implied.
- TensorScatter / MaxUnpool / Col2Im are SCATTER_ND writes of constant or run-time coordinates.
- LpPool = (window-sum of |x|^p)^(1/p) with zero padding; the window sum is a CONV_2D / CONV_3D with an
  all-ones single-channel kernel over a (N*C, spatial..., 1) view, so padding, strides and dilation are
  exact and no transposes are needed.
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np
from onnx import helper

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering
from .elementwise import via_float32
from .indexing import scatter_nd_update
from .pool import PoolAxis, pool_geometry
from .tensor import strided_slice

_F32 = np.dtype(np.float32)
_I32 = np.dtype(np.int32)
_BOOL = np.dtype(np.bool_)
_FLOATS = ("float32", "float16", "float64", "bfloat16")
_ALL = ("float32", "float16", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "uint16",
        "uint32", "uint64", "bool")
_MAX_UNROLL = 256  # sequential steps (CumProd) before the graph gets unreasonably large


# -- small helpers ---------------------------------------------------------------------------------
def _axis(ctx: LowerContext, axis: int, rank: int, what: str = "axis") -> int:
    a = int(axis) + (rank if int(axis) < 0 else 0)
    if not 0 <= a < rank:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{what} {axis} is out of range for rank {rank}")
    return a


def _binary(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor, out: Tensor | None = None, hint: str = "t",
            dtype: np.dtype | None = None) -> Tensor:
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    options = {"fusedActivationFunction": "NONE"} if opcode in ("ADD", "SUB", "MUL", "DIV") else {}
    return ctx.emit1(opcode, [a, b], shape, dtype or a.dtype, hint, out, **options)


def _cast(ctx: LowerContext, x: Tensor, dtype: np.dtype | type, hint: str = "cast") -> Tensor:
    dtype = np.dtype(dtype)
    return ctx.emit1("CAST", [x], x.shape, dtype, hint, inDataType=x.dtype, outDataType=dtype)


def _const(ctx: LowerContext, value: object, dtype: np.dtype | type, hint: str = "const") -> Tensor:
    return ctx.new_const(np.asarray(value, dtype=dtype), hint=hint)


def _take(ctx: LowerContext, x: Tensor, axis: int, start: int, stop: int) -> Tensor:
    """x[..., start:stop, ...] along ``axis`` (STRIDED_SLICE)."""
    begin = [0] * x.rank
    end = list(x.shape)
    begin[axis], end[axis] = start, stop
    return strided_slice(ctx, x, begin, end, [1] * x.rank)


def _concat(ctx: LowerContext, parts: Sequence[Tensor], axis: int, out: Tensor | None = None) -> Tensor:
    if len(parts) == 1:
        return parts[0] if out is None else ctx.reshape(parts[0], out.shape, out=out)
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    return ctx.emit1("CONCATENATION", list(parts), tuple(shape), parts[0].dtype, "concat", out, axis=axis,
                     fusedActivationFunction="NONE")


def _require_nonempty(ctx: LowerContext, shape: Sequence[int], what: str = "the output") -> None:
    if any(int(d) <= 0 for d in shape):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{what} would have shape {list(shape)}; zero-sized tensors are not supported")


def _ints_or_implied(ctx: LowerContext, i: int, implied: Sequence[int] | None, what: str) -> list[int]:
    """A constant int input, else the value the static output shape implies (None: not implied)."""
    value = ctx.const(i)
    if value is not None:
        return [int(v) for v in np.asarray(value).reshape(-1)]
    if implied is None:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, f"{what} must be a constant")
    return [int(v) for v in implied]


# -- Hardmax ---------------------------------------------------------------------------------------
@lowering("Hardmax", since=1, onnx_dtypes=_FLOATS)
def lower_hardmax(node: NodeView, ctx: LowerContext) -> None:
    """ONE_HOT(ARG_MAX(x)) along ``axis``; opset < 13 flattens to 2-D at ``axis`` first."""
    x = ctx.input(0)
    out = ctx.output(0, x.shape, x.dtype)
    if x.rank == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "Hardmax needs an input of rank >= 1")
    _require_nonempty(ctx, x.shape, "the input")
    if node.opset < 13:
        axis = _axis(ctx, node.attr("axis", 1), x.rank)
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        data, axis = ctx.reshape(x, (rows, int(np.prod(x.shape[axis:], dtype=np.int64)))), 1
    else:
        data, axis = x, _axis(ctx, node.attr("axis", -1), x.rank)
    depth = data.shape[axis]
    reduced = data.shape[:axis] + data.shape[axis + 1:]
    index = ctx.emit1("ARG_MAX", [data, _const(ctx, [axis], np.int32, "axis")], reduced, _I32, "argmax",
                      outputType=_I32)
    hot_shape = data.shape
    target = out if hot_shape == x.shape else None
    hot = ctx.emit1("ONE_HOT", [index, _const(ctx, depth, np.int32, "depth"), _const(ctx, 1, x.dtype, "on"),
                                _const(ctx, 0, x.dtype, "off")], hot_shape, x.dtype, "onehot", target, axis=axis)
    if target is None:
        ctx.reshape(hot, x.shape, out=out)


# -- CumProd ---------------------------------------------------------------------------------------
def _cumprod_axis(ctx: LowerContext, x: Tensor, axis: int, exclusive: bool, reverse: bool,
                  out: Tensor | None = None) -> Tensor:
    """Sequential cumulative product along ``axis`` (one MUL per step, reference order)."""
    n = x.shape[axis]
    order = list(range(n))[::-1] if reverse else list(range(n))
    pieces: dict[int, Tensor] = {}
    running: Tensor | None = None
    ones_shape = list(x.shape)
    ones_shape[axis] = 1
    for i in order:
        item = _take(ctx, x, axis, i, i + 1)
        if exclusive:
            pieces[i] = running if running is not None else _const(ctx, np.ones(ones_shape), x.dtype, "ones")
            running = item if running is None else _binary(ctx, "MUL", running, item, hint="prod")
        else:
            running = item if running is None else _binary(ctx, "MUL", running, item, hint="prod")
            pieces[i] = running
    return _concat(ctx, [pieces[i] for i in range(n)], axis, out=out)


@lowering("CumProd", since=26, onnx_dtypes=("float32", "float16", "float64", "bfloat16", "int32", "int64",
                                            "uint32", "uint64"),
          dtypes=("float32", "int32", "int64"), verified=("float32", "int32", "int64"))
def lower_cumprod(node: NodeView, ctx: LowerContext) -> None:
    """Exact cumulative product; a run-time axis selects among the per-axis products."""
    x = ctx.input(0)
    if x.rank == 0:
        raise ctx.fail(Reason.INVALID_MODEL, "CumProd needs an input of rank >= 1")
    _require_nonempty(ctx, x.shape, "the input")
    exclusive, reverse = bool(node.attr("exclusive", 0)), bool(node.attr("reverse", 0))
    out = ctx.output(0, x.shape, x.dtype)
    axis_value = ctx.const(1)
    if axis_value is not None or x.rank == 1:
        # A rank-1 input has one valid axis: the value is implied even when computed at run time.
        axis = 0 if axis_value is None else _axis(ctx, int(np.asarray(axis_value).reshape(-1)[0]), x.rank)
        if x.shape[axis] > _MAX_UNROLL:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"axis length {x.shape[axis]} > {_MAX_UNROLL}")
        _cumprod_axis(ctx, x, axis, exclusive, reverse, out=out)
        return
    if sum(x.shape) > _MAX_UNROLL:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, "axis must be a constant for inputs this large")
    axis_t = ctx.input(1)
    if axis_t.dtype.name not in ("int32", "int64"):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"axis dtype {axis_t.dtype.name} is not int32/int64")
    axis_t = ctx.reshape(axis_t, ())
    wrapped = _binary(ctx, "FLOOR_MOD", axis_t, _const(ctx, x.rank, axis_t.dtype, "rank"), hint="axis")
    result = _cumprod_axis(ctx, x, x.rank - 1, exclusive, reverse)
    for a in range(x.rank - 2, -1, -1):
        candidate = _cumprod_axis(ctx, x, a, exclusive, reverse)
        is_a = _binary(ctx, "EQUAL", wrapped, _const(ctx, a, axis_t.dtype, "a"), hint="is_axis", dtype=_BOOL)
        result = ctx.emit1("SELECT_V2", [is_a, candidate, result], x.shape, x.dtype, "select",
                           out if a == 0 else None)


# -- BitCast ---------------------------------------------------------------------------------------
_BITCAST_DTYPES = ("float32", "int32", "uint32", "int16", "uint16", "int8", "uint8", "bool", "int64",
                   "uint64", "float64", "float16")


@lowering("BitCast", since=26, onnx_dtypes=_ALL, dtypes=_BITCAST_DTYPES,
          verified=("float32", "int32", "uint32", "int16", "uint16", "int8", "uint8", "bool", "int64"))
def lower_bitcast(node: NodeView, ctx: LowerContext) -> None:
    """BITCAST between dtypes of the same element size."""
    x = ctx.input(0)
    try:
        to = np.dtype(helper.tensor_dtype_to_np_dtype(int(node.attr("to"))))
    except Exception:  # noqa: BLE001 - unknown/unsupported element type
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"BitCast to element type {node.attr('to')} is not supported")
    if to.name not in _BITCAST_DTYPES:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"BitCast to {to.name} is not supported")
    if to.itemsize != x.dtype.itemsize:
        raise ctx.fail(Reason.INVALID_MODEL, f"BitCast from {x.dtype.name} to {to.name} changes the element size")
    out = ctx.output(0, x.shape, to)
    if to == x.dtype:
        ctx.reshape(x, x.shape, out=out)
        return
    ctx.emit("BITCAST", [x], [out])


# -- ReverseSequence -------------------------------------------------------------------------------
_REVSEQ_DTYPES = ("float32", "int32", "int64", "int16", "uint8", "bfloat16")


@lowering("ReverseSequence", since=10, onnx_dtypes=_ALL, dtypes=_REVSEQ_DTYPES,
          verified=("float32", "int32", "int64", "bfloat16"))
@via_float32  # bfloat16 moves through float32 unchanged
def lower_reverse_sequence(node: NodeView, ctx: LowerContext) -> None:
    """REVERSE_SEQUENCE (run-time lengths; ONNX requires them in [1, time length])."""
    x, lens = ctx.input(0), ctx.input(1)
    if x.rank < 2:
        raise ctx.fail(Reason.INVALID_MODEL, "ReverseSequence needs an input of rank >= 2")
    batch_axis, time_axis = int(node.attr("batch_axis", 1)), int(node.attr("time_axis", 0))
    if {batch_axis, time_axis} != {0, 1}:
        raise ctx.fail(Reason.INVALID_MODEL, "batch_axis and time_axis must be 0 and 1")
    if lens.dtype.name not in ("int32", "int64") or lens.shape != (x.shape[batch_axis],):
        raise ctx.fail(Reason.INVALID_MODEL, "sequence_lens must be an int64 vector of the batch size")
    _require_nonempty(ctx, x.shape, "the input")
    if lens.is_const:
        values = np.asarray(lens.data, np.int64)
        if values.min() < 1 or values.max() > x.shape[time_axis]:
            raise ctx.fail(Reason.INVALID_MODEL, "sequence_lens are out of range")
        lens = _const(ctx, values, np.int32, "lens")
    ctx.emit("REVERSE_SEQUENCE", [x, lens], [ctx.output(0, x.shape, x.dtype)], seqDim=time_axis,
             batchDim=batch_axis)


# -- Det -------------------------------------------------------------------------------------------
@lowering("Det", since=11, onnx_dtypes=_FLOATS)
def lower_det(node: NodeView, ctx: LowerContext) -> None:
    """Determinant of [..., n, n] for n <= 3 by cofactor expansion."""
    x = ctx.input(0)
    if x.rank < 2 or x.shape[-1] != x.shape[-2]:
        raise ctx.fail(Reason.INVALID_MODEL, f"Det needs [..., n, n] input, got {list(x.shape)}")
    n = x.shape[-1]
    if n > 3:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"Det of {n}x{n} matrices (only n <= 3 is exact here)")
    _require_nonempty(ctx, x.shape, "the input")
    out = ctx.output(0, x.shape[:-2], x.dtype)
    batch = int(np.prod(x.shape[:-2], dtype=np.int64))
    flat = ctx.reshape(x, (batch, n * n))
    e = [[_take(ctx, flat, 1, r * n + c, r * n + c + 1) for c in range(n)] for r in range(n)]

    def mul(a: Tensor, b: Tensor) -> Tensor:
        return _binary(ctx, "MUL", a, b, hint="m")

    def minor2(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
        return _binary(ctx, "SUB", mul(a, d), mul(b, c), hint="minor")

    if n == 1:
        det = e[0][0]
    elif n == 2:
        det = minor2(e[0][0], e[0][1], e[1][0], e[1][1])
    else:
        c0 = mul(e[0][0], minor2(e[1][1], e[1][2], e[2][1], e[2][2]))
        c1 = mul(e[0][1], minor2(e[1][0], e[1][2], e[2][0], e[2][2]))
        c2 = mul(e[0][2], minor2(e[1][0], e[1][1], e[2][0], e[2][1]))
        det = _binary(ctx, "ADD", _binary(ctx, "SUB", c0, c1, hint="d"), c2, hint="det")
    ctx.reshape(det, out.shape, out=out)


# -- CenterCropPad ---------------------------------------------------------------------------------
_DATA = ("float32", "float16", "int32", "int64", "bool", "int8", "uint8")


@lowering("CenterCropPad", since=18, onnx_dtypes=_ALL, dtypes=_DATA, verified=("float32", "int32", "int64", "uint8"))
def lower_center_crop_pad(node: NodeView, ctx: LowerContext) -> None:
    """Center crop (STRIDED_SLICE) and/or zero pad (PAD) to ``shape`` on ``axes``."""
    x = ctx.input(0)
    axes = [_axis(ctx, a, x.rank, "axes") for a in node.attr("axes", list(range(x.rank)))]
    if len(set(axes)) != len(axes):
        raise ctx.fail(Reason.INVALID_MODEL, "axes contains duplicates")
    declared = ctx.out_shape(0)
    implied = [declared[a] for a in axes] if declared is not None and len(declared) == x.rank else None
    sizes = _ints_or_implied(ctx, 1, implied, "shape (input 1)")
    if len(sizes) != len(axes) or min(sizes) < 1:
        raise ctx.fail(Reason.INVALID_MODEL, f"shape {sizes} does not match axes {axes}")
    target = list(x.shape)
    for a, s in zip(axes, sizes):
        target[a] = s
    _require_nonempty(ctx, x.shape, "the input")
    out = ctx.output(0, tuple(target), x.dtype)
    begin, end, pads = [0] * x.rank, list(x.shape), [[0, 0] for _ in range(x.rank)]
    for a, s in zip(axes, sizes):
        dim = x.shape[a]
        if s < dim:
            begin[a] = (dim - s) // 2
            end[a] = begin[a] + s
        elif s > dim:
            pads[a] = [(s - dim) // 2, s - dim - (s - dim) // 2]
    has_pad = any(p != [0, 0] for p in pads)
    y = x
    if begin != [0] * x.rank or end != list(x.shape):
        y = strided_slice(ctx, x, begin, end, [1] * x.rank, out=None if has_pad else out)
    if has_pad:
        ctx.emit1("PAD", [y, _const(ctx, pads, np.int32, "paddings")], tuple(target), x.dtype, "padded", out)
    elif y is x:  # nothing to crop or pad: a copy
        ctx.reshape(x, tuple(target), out=out)


# -- TensorScatter ---------------------------------------------------------------------------------
@lowering("TensorScatter", since=24, onnx_dtypes=_ALL, dtypes=("float32", "int32", "int64"),
          verified=("float32", "int32", "int64"))
def lower_tensor_scatter(node: NodeView, ctx: LowerContext) -> None:
    """present = past with update written at write_indices[b] + s along ``axis`` (SCATTER_ND)."""
    past, update = ctx.input(0), ctx.input(1)
    axis = _axis(ctx, node.attr("axis", -2), past.rank)
    mode = node.attr("mode", "linear")
    if mode not in ("linear", "circular"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"mode '{mode}'")
    if axis == 0 or update.rank != past.rank or update.dtype != past.dtype or any(
            u != p for i, (u, p) in enumerate(zip(update.shape, past.shape)) if i != axis) \
            or update.shape[axis] > past.shape[axis]:
        raise ctx.fail(Reason.INVALID_MODEL, f"update {list(update.shape)} does not fit past {list(past.shape)} "
                                             f"on axis {axis}")
    _require_nonempty(ctx, past.shape, "past_cache")
    _require_nonempty(ctx, update.shape, "update")
    max_len, seq = past.shape[axis], update.shape[axis]
    prefix = past.shape[:axis]
    grid = np.moveaxis(np.indices(prefix + (seq,), dtype=np.int32), 0, -1)  # prefix + [seq] + [axis + 1]
    writes = ctx.optional_input(2)
    lead = (prefix[0],) + (1,) * (len(prefix) - 1) + (1,)  # broadcasts over prefix + [seq]
    if writes is None or writes.is_const:
        start = np.zeros(prefix[0], np.int64) if writes is None else np.asarray(writes.data, np.int64)
        if start.shape != (prefix[0],):
            raise ctx.fail(Reason.INVALID_MODEL, "write_indices must have the batch size")
        pos = start.reshape(lead) + np.arange(seq).reshape((1,) * len(prefix) + (seq,))
        pos = np.mod(pos, max_len) if mode == "circular" else pos
        if pos.min() < 0 or pos.max() >= max_len:
            raise ctx.fail(Reason.INVALID_MODEL, "the update does not fit the cache at write_indices")
        grid[..., axis] = np.broadcast_to(pos, prefix + (seq,))
        coords = ctx.new_const(grid, hint="coords")
    else:
        if writes.shape != (prefix[0],) or writes.dtype.name not in ("int32", "int64"):
            raise ctx.fail(Reason.INVALID_MODEL, "write_indices must be an int64 vector of the batch size")
        start = ctx.reshape(_cast(ctx, writes, _I32, "writes_i32") if writes.dtype != _I32 else writes, lead)
        pos = _binary(ctx, "ADD", start, _const(ctx, np.arange(seq).reshape((1,) * len(prefix) + (seq,)),
                                                np.int32, "steps"), hint="pos")
        if mode == "circular":
            pos = _binary(ctx, "FLOOR_MOD", pos, _const(ctx, max_len, np.int32, "max_len"), hint="pos")
        onehot = np.zeros(axis + 1, np.int32)
        onehot[axis] = 1
        column = ctx.reshape(pos, pos.shape + (1,))
        placed = _binary(ctx, "MUL", column, _const(ctx, onehot, np.int32, "axis_onehot"), hint="placed")
        grid[..., axis] = 0
        coords = _binary(ctx, "ADD", placed, ctx.new_const(grid, hint="grid"), hint="coords")
    scatter_nd_update(ctx, past, coords, update, "none", ctx.output(0, past.shape, past.dtype))


# -- AffineGrid ------------------------------------------------------------------------------------
def _affine_axis(n: int, align_corners: bool) -> np.ndarray:
    """Normalized sample coordinates along one axis (as the ONNX reference builds them, in float64)."""
    if align_corners:
        return np.arange(-1, 1 + 0.0001, 2.0 / (n - 1))[:n] if n > 1 else np.array([-1.0])
    step = 2.0 / n
    return np.arange(-1 + step / 2, 1, step)[:n]


@lowering("AffineGrid", since=20, onnx_dtypes=_FLOATS)
def lower_affine_grid(node: NodeView, ctx: LowerContext) -> None:
    """grid[n] = base_grid @ theta[n]^T as one BATCH_MATMUL with a constant homogeneous base grid."""
    theta = ctx.input(0)
    if theta.rank != 3 or theta.shape[1:] not in ((2, 3), (3, 4)):
        raise ctx.fail(Reason.INVALID_MODEL, f"theta must be (N, 2, 3) or (N, 3, 4), got {list(theta.shape)}")
    dims = theta.shape[1]
    declared = ctx.out_shape(0)
    implied = None
    if declared is not None and len(declared) == dims + 2:
        implied = [declared[0], -1, *declared[1:-1]]  # C is not implied (and does not matter)
    size = ctx.const(1)
    spatial = [int(v) for v in np.asarray(size).reshape(-1)[2:]] if size is not None else \
        (list(implied[2:]) if implied is not None else None)
    if spatial is None:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, "size (input 1) must be a constant")
    if len(spatial) != dims or min(spatial) < 1:
        raise ctx.fail(Reason.INVALID_MODEL, f"size {spatial} does not match theta")
    align = bool(node.attr("align_corners", 0))
    axes = [_affine_axis(n, align) for n in spatial]
    mesh = np.meshgrid(*axes, indexing="ij")  # (D,) H, W order
    # Homogeneous coordinates ordered (x, y[, z], 1): x runs along the last spatial axis.
    coords = [m.reshape(-1) for m in reversed(mesh)] + [np.ones(int(np.prod(spatial)))]
    base = np.stack(coords, axis=1).astype(np.float32)[None]  # (1, P, dims + 1)
    batch = theta.shape[0]
    points = int(np.prod(spatial))
    out = ctx.output(0, (batch, *spatial, dims), theta.dtype)
    base_t = ctx.new_const(np.broadcast_to(base, (batch,) + base.shape[1:]).copy(), hint="base_grid")
    grid = ctx.emit1("BATCH_MATMUL", [base_t, theta], (batch, points, dims), theta.dtype, "grid",
                     adjX=False, adjY=True, asymmetricQuantizeInputs=False)
    ctx.reshape(grid, out.shape, out=out)


# -- Col2Im ----------------------------------------------------------------------------------------
def _col2im_blocks(image: Sequence[int], block: Sequence[int], dil: Sequence[int], pads: Sequence[int],
                   strides: Sequence[int]) -> list[int] | None:
    n = len(image)
    counts = []
    for i in range(n):
        c = (image[i] + pads[i] + pads[i + n] - dil[i] * (block[i] - 1) - 1) // strides[i] + 1
        if c < 1:
            return None
        counts.append(c)
    return counts


def _implied_blocks(ctx: LowerContext, image: list[int], volume: int, length: int, dil: list[int],
                    pads: list[int], strides: list[int]) -> list[int]:
    """The block shape, uniquely implied by the input's block volume and column count."""
    n = len(image)
    found = []
    for combo in itertools.product(*[range(1, volume + 1)] * n):
        if int(np.prod(combo)) != volume:
            continue
        counts = _col2im_blocks(image, combo, dil, pads, strides)
        if counts is not None and int(np.prod(counts)) == length:
            found.append(list(combo))
    if len(found) != 1:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       "block_shape must be a constant: the shapes do not imply it uniquely")
    return found[0]


@lowering("Col2Im", since=18, onnx_dtypes=_FLOATS)
def lower_col2im(node: NodeView, ctx: LowerContext) -> None:
    """Sum each column entry into its image position: one SCATTER_ND (it adds duplicates) and a crop."""
    x = ctx.input(0)
    declared = ctx.out_shape(0)
    if x.rank != 3 or declared is None or len(declared) < 3:
        raise ctx.fail(Reason.INVALID_MODEL, "Col2Im needs (N, C*prod(block), L) input and a known output shape")
    n = len(declared) - 2
    image = _ints_or_implied(ctx, 1, list(declared[2:]), "image_shape (input 1)")
    channels = declared[1]
    dil = [int(v) for v in node.attr("dilations", [1] * n)]
    pads = [int(v) for v in node.attr("pads", [0] * 2 * n)]
    strides = [int(v) for v in node.attr("strides", [1] * n)]
    if len(image) != n or x.shape[1] % channels:
        raise ctx.fail(Reason.INVALID_MODEL, "input channels do not match the output")
    volume = x.shape[1] // channels
    block_value = ctx.const(2)
    block = [int(v) for v in np.asarray(block_value).reshape(-1)] if block_value is not None else \
        _implied_blocks(ctx, image, volume, x.shape[2], dil, pads, strides)
    counts = _col2im_blocks(image, block, dil, pads, strides)
    if len(block) != n or int(np.prod(block)) != volume or counts is None or int(np.prod(counts)) != x.shape[2]:
        raise ctx.fail(Reason.INVALID_MODEL, "block_shape does not match the input")
    _require_nonempty(ctx, x.shape, "the input")
    batch = x.shape[0]
    padded = [image[i] + pads[i] + pads[i + n] for i in range(n)]
    # Padded-image coordinate of every (block offset, column) entry, in input order.
    offsets = np.array(list(itertools.product(*[range(b) for b in block])), np.int64)  # (volume, n)
    cols = np.array(list(itertools.product(*[range(c) for c in counts])), np.int64)  # (L, n)
    pos = cols[None, :, :] * np.array(strides) + offsets[:, None, :] * np.array(dil)  # (volume, L, n)
    coords = ctx.new_const(pos.astype(np.int32), hint="coords")
    # (N, C, volume, L) -> (volume, L, N, C) so the scatter writes (N, C) slices per position.
    data = ctx.transpose(ctx.reshape(x, (batch, channels, volume, x.shape[2])), (2, 3, 0, 1))
    image_t = ctx.emit1("SCATTER_ND", [coords, data, _const(ctx, padded + [batch, channels], np.int32, "shape")],
                        tuple(padded) + (batch, channels), x.dtype, "image")
    begin = [pads[i] for i in range(n)] + [0, 0]
    end = [pads[i] + image[i] for i in range(n)] + [batch, channels]
    cropped = strided_slice(ctx, image_t, begin, end, [1] * (n + 2))
    perm = (n, n + 1) + tuple(range(n))
    ctx.transpose(cropped, perm, out=ctx.output(0, (batch, channels, *image), x.dtype))


# -- MaxUnpool -------------------------------------------------------------------------------------
@lowering("MaxUnpool", since=9, onnx_dtypes=_FLOATS)
def lower_max_unpool(node: NodeView, ctx: LowerContext) -> None:
    """Y.flat[I] = X (SCATTER_ND into a flat output); repeated indices keep their (equal) value."""
    x, idx = ctx.input(0), ctx.input(1)
    if x.rank < 3 or idx.shape != x.shape or idx.dtype.name != "int64":
        raise ctx.fail(Reason.INVALID_MODEL, "X and I must have the same (N, C, ...) shape; I int64")
    n = x.rank - 2
    kernel = [int(k) for k in node.attr("kernel_shape", [])]
    strides = [int(s) for s in node.attr("strides", [1] * n)]
    pads = [int(p) for p in node.attr("pads", [0] * 2 * n)]
    if len(kernel) != n or len(strides) != n or len(pads) != 2 * n:
        raise ctx.fail(Reason.INVALID_MODEL, "kernel_shape/strides/pads do not match the input rank")
    inferred = list(x.shape[:2]) + [(x.shape[2 + i] - 1) * strides[i] - pads[i] - pads[i + n] + kernel[i]
                                    for i in range(n)]
    declared = ctx.out_shape(0)
    if ctx.has_input(2):
        shape = _ints_or_implied(ctx, 2, declared, "output_shape (input 2)")
        if shape != inferred:
            # ONNX Runtime indexes the given shape, the ONNX reference the inferred one and pads: ambiguous.
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"output_shape {shape} differs from the inferred {inferred}; ONNX Runtime and the ONNX "
                           "reference place the values differently")
    _require_nonempty(ctx, inferred, "the output")
    total = int(np.prod(inferred))
    out = ctx.output(0, tuple(inferred), x.dtype)
    coords = ctx.reshape(_cast(ctx, idx, _I32, "indices_i32"), (x.size, 1)) if not idx.is_const else \
        ctx.new_const(np.asarray(idx.data, np.int64).reshape(-1, 1).astype(np.int32), hint="indices")
    values = ctx.reshape(x, (x.size,))
    shape_t = _const(ctx, [total], np.int32, "shape")
    summed = ctx.emit1("SCATTER_ND", [coords, values, shape_t], (total,), x.dtype, "scattered")
    count = ctx.emit1("SCATTER_ND", [coords, _const(ctx, np.ones(x.size), x.dtype, "ones"), shape_t], (total,),
                      x.dtype, "count")
    # A position named k times received k equal values; dividing by max(k, 1) restores the value exactly.
    divisor = _binary(ctx, "MAXIMUM", count, _const(ctx, 1, x.dtype, "one"), hint="divisor")
    flat = _binary(ctx, "DIV", summed, divisor, hint="unpooled")
    ctx.reshape(flat, out.shape, out=out)


# -- LpPool ----------------------------------------------------------------------------------------
@lowering("LpPool", since=11, onnx_dtypes=_FLOATS)
def lower_lp_pool(node: NodeView, ctx: LowerContext) -> None:
    """(sum over each zero-padded window of |x|^p)^(1/p) for 1-D, 2-D and 3-D pooling."""
    x = ctx.input(0)
    if x.rank not in (3, 4, 5):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"{x.rank - 2}-D LpPool (1-D to 3-D are supported)")
    p = float(node.attr("p", 2))
    if p <= 0 or not math.isfinite(p):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"p = {p}")
    if node.opset < 18 and (node.attr("dilations") is not None or node.attr("ceil_mode") is not None):
        raise ctx.fail(Reason.INVALID_MODEL, "dilations/ceil_mode need opset 18")
    axes = pool_geometry(node, ctx, tuple(x.shape[2:]))
    out_shape = tuple(x.shape[:2]) + tuple(a.out for a in axes)
    out = ctx.output(0, out_shape, x.dtype)
    if p == 2.0:
        powered = _binary(ctx, "MUL", x, x, hint="sq")
    elif p == 1.0:
        powered = ctx.emit1("ABS", [x], x.shape, x.dtype, "abs")
    else:
        powered = _binary(ctx, "POW", ctx.emit1("ABS", [x], x.shape, x.dtype, "abs"),
                          _const(ctx, p, x.dtype, "p"), hint="pow")
    # (N*C, spatial..., 1): channels go into the batch so one single-channel conv serves all.
    nc = x.shape[0] * x.shape[1]
    spatial = list(x.shape[2:])
    if len(axes) == 1:
        spatial = [1] + spatial
        axes = [PoolAxis(1, 1, 1, 1, 0, 0, 1)] + axes
    view = ctx.reshape(powered, (nc, *spatial, 1))
    widths = [[0, 0]] + [[a.pad_begin, max(a.end_fill, 0)] for a in axes] + [[0, 0]]
    if any(b or e for b, e in widths):
        padded_shape = tuple(d + b + e for d, (b, e) in zip(view.shape, widths))
        view = ctx.emit1("PAD", [view, _const(ctx, widths, np.int32, "paddings")], padded_shape, x.dtype, "padded")
    # A VALID conv over the padded input must produce exactly the ONNX windows; trim any surplus tail.
    for i, a in enumerate(axes):
        need = (a.out - 1) * a.stride + a.span
        if view.shape[1 + i] > need:
            view = _take(ctx, view, 1 + i, 0, need)
    kernel = [a.kernel for a in axes]
    pooled_shape = (nc, *[a.out for a in axes], 1)
    bias = _const(ctx, [0.0], x.dtype, "bias")
    if len(axes) == 2:
        weights = _const(ctx, np.ones((1, *kernel, 1)), x.dtype, "ones_kernel")
        summed = ctx.emit1("CONV_2D", [view, weights, bias], pooled_shape, x.dtype, "window_sum", padding="VALID",
                           strideH=axes[0].stride, strideW=axes[1].stride, dilationHFactor=axes[0].dilation,
                           dilationWFactor=axes[1].dilation, fusedActivationFunction="NONE")
    else:
        weights = _const(ctx, np.ones((*kernel, 1, 1)), x.dtype, "ones_kernel")
        summed = ctx.emit1("CONV_3D", [view, weights, bias], pooled_shape, x.dtype, "window_sum", padding="VALID",
                           strideD=axes[0].stride, strideH=axes[1].stride, strideW=axes[2].stride,
                           dilationDFactor=axes[0].dilation, dilationHFactor=axes[1].dilation,
                           dilationWFactor=axes[2].dilation, fusedActivationFunction="NONE")
    if p == 1.0:
        root = summed
    elif p == 2.0:
        root = ctx.emit1("SQRT", [summed], summed.shape, x.dtype, "sqrt")
    else:
        root = _binary(ctx, "POW", summed, _const(ctx, 1.0 / p, x.dtype, "inv_p"), hint="root")
    ctx.reshape(root, out_shape, out=out)
