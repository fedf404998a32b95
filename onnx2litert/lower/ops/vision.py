"""Lowerings of the vision family: GridSample, RoiAlign, NonMaxSuppression, DeformConv, SpaceToDepth (28).

GridSample and RoiAlign are written as exact elementwise programs: sample coordinates are
computed from the run-time grid / boxes (MUL/ADD/FLOOR/MINIMUM/MAXIMUM/SELECT_V2), corner
positions become flat int32 row indices into the channels-last input viewed as
[N * spatial, C], the corner rows are fetched with GATHER, and the interpolation weights and
out-of-range masks are applied with MUL / SELECT_V2 in the same order as the ONNX reference.

NonMaxSuppression runs LiteRT's NON_MAX_SUPPRESSION_V5 once per (batch, class) with a
constant max_output_size equal to the box count (greedy selection is a prefix of itself, so
a run-time ``max_output_boxes_per_class`` only shortens each prefix: MINIMUM with the count).
The padded (batch, class, box) rows of all pairs are concatenated, the valid rows are found
with WHERE (dynamic count, like NonZero) and picked with GATHER_ND: the output is the exact
ONNX [num_selected, 3] int64 tensor with a dynamic first dimension.

DeformConv (2-D) samples like GridSample (bilinear, zero padding, pixel coordinates) at the
run-time offset positions and contracts the samples with the weights in one BATCH_MATMUL.
SpaceToDepth's opset-28 definition (``mode`` DCR/CRD) lives here so resize.py keeps the older one.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import FLOATS, lowering
from .elementwise import emit_binary, emit_unary, scalar
from .resize import _SPACE_DEPTH_DTYPES, _SPACE_DEPTH_ONNX_DTYPES, lower_space_to_depth

_F32 = np.dtype(np.float32)
_I32 = np.dtype(np.int32)
_I64 = np.dtype(np.int64)
_BOOL = np.dtype(np.bool_)
# A (batch, class) loop emits ~6 ops per pair; beyond this the model would be unreasonable.
_MAX_NMS_PAIRS = 1024


# -- small emit helpers ----------------------------------------------------------------------------
def _f(ctx: LowerContext, value: float) -> Tensor:
    return scalar(ctx, value, _F32, "c")


def _add(ctx, a, b, hint="add"):
    return emit_binary(ctx, "ADD", a, b, hint=hint)


def _sub(ctx, a, b, hint="sub"):
    return emit_binary(ctx, "SUB", a, b, hint=hint)


def _mul(ctx, a, b, hint="mul"):
    return emit_binary(ctx, "MUL", a, b, hint=hint)


def _div(ctx, a, b, hint="div"):
    return emit_binary(ctx, "DIV", a, b, hint=hint)


def _min(ctx, a, b, hint="min"):
    return emit_binary(ctx, "MINIMUM", a, b, hint=hint)


def _max(ctx, a, b, hint="max"):
    return emit_binary(ctx, "MAXIMUM", a, b, hint=hint)


def _cmp(ctx: LowerContext, opcode: str, a: Tensor, b: Tensor) -> Tensor:
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    return ctx.emit1(opcode, [a, b], shape, _BOOL, opcode.lower())


def _select(ctx: LowerContext, cond: Tensor, a: Tensor, b: Tensor, hint: str = "select") -> Tensor:
    shape = tuple(np.broadcast_shapes(cond.shape, a.shape, b.shape))
    return ctx.emit1("SELECT_V2", [cond, a, b], shape, a.dtype, hint)


def _and(ctx: LowerContext, a: Tensor, b: Tensor) -> Tensor:
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    return ctx.emit1("LOGICAL_AND", [a, b], shape, _BOOL, "and")


def _cast(ctx: LowerContext, x: Tensor, dtype: np.dtype) -> Tensor:
    return ctx.emit1("CAST", [x], x.shape, dtype, "cast", inDataType=x.dtype, outDataType=np.dtype(dtype))


def _clamp(ctx: LowerContext, x: Tensor, lo: float, hi: float) -> Tensor:
    return _min(ctx, _max(ctx, x, _f(ctx, lo)), _f(ctx, hi))


def _split_last(ctx: LowerContext, x: Tensor, parts: int) -> list[Tensor]:
    """SPLIT ``x`` into ``parts`` slices of size 1 along its last axis (each keeps the axis)."""
    shape = x.shape[:-1] + (1,)
    outs = [ctx.tmp(shape, x.dtype, "part") for _ in range(parts)]
    ctx.emit("SPLIT", [ctx.new_const(np.array(x.rank - 1, np.int32), hint="axis"), x], outs, numSplits=parts)
    return outs


def _gather_rows(ctx: LowerContext, table: Tensor, rows_f: Tensor) -> Tensor:
    """GATHER rows of ``table`` [R, C] at float-valued integer indices ``rows_f`` [..., 1] -> [..., C]."""
    idx = ctx.reshape(_cast(ctx, rows_f, _I32), rows_f.shape[:-1])
    return ctx.emit1("GATHER", [table, idx], idx.shape + (table.shape[1],), table.dtype, "corner",
                     axis=0, batchDims=0)


# -- GridSample ------------------------------------------------------------------------------------
def _reflect(ctx: LowerContext, x: Tensor, lo: float, hi: float) -> Tensor:
    """The ONNX GridSample reflection of continuous coordinates into [lo, hi]."""
    rng = hi - lo
    if rng <= 0:
        return _clamp(ctx, x, lo, hi)
    results = []
    for below in (True, False):
        dx = _sub(ctx, _f(ctx, lo), x) if below else _sub(ctx, x, _f(ctx, hi))
        dx = _max(ctx, dx, _f(ctx, 0.0))  # the other side's branch is discarded; keep it finite
        n = emit_unary(ctx, "FLOOR", _div(ctx, dx, _f(ctx, rng)), hint="n")
        r = _sub(ctx, dx, _mul(ctx, n, _f(ctx, rng)))
        odd = _cmp(ctx, "NOT_EQUAL", _sub(ctx, n, _mul(ctx, emit_unary(ctx, "FLOOR", _mul(ctx, n, _f(ctx, 0.5))),
                                                         _f(ctx, 2.0))), _f(ctx, 0.0))
        near, far = (lo, hi) if below else (hi, lo)
        from_near = _add(ctx, _f(ctx, near), r) if below else _sub(ctx, _f(ctx, near), r)
        from_far = _sub(ctx, _f(ctx, far), r) if below else _add(ctx, _f(ctx, far), r)
        results.append(_select(ctx, odd, from_far, from_near))
    out = _select(ctx, _cmp(ctx, "LESS", x, _f(ctx, lo)), results[0], x)
    return _select(ctx, _cmp(ctx, "GREATER", x, _f(ctx, hi)), results[1], out)


def _corner_index(ctx: LowerContext, c: Tensor, size: int, padding: str, align: bool
                  ) -> tuple[Tensor, Tensor | None]:
    """An integer-valued corner coordinate -> (in-range coordinate, validity mask or None)."""
    if padding == "zeros":
        valid = _and(ctx, _cmp(ctx, "GREATER_EQUAL", c, _f(ctx, 0.0)), _cmp(ctx, "LESS_EQUAL", c, _f(ctx, size - 1)))
        return _clamp(ctx, c, 0.0, size - 1), valid
    if padding == "reflection" and align and size > 1:
        # an integer corner at most one step outside [0, size-1] reflects about the edge pixel
        c = _sub(ctx, _f(ctx, size - 1), emit_unary(ctx, "ABS", _sub(ctx, _f(ctx, size - 1), c)))
        c = _max(ctx, c, _sub(ctx, _f(ctx, 0.0), c))
    # border, and reflection without align_corners: the reflected corner is the nearest edge pixel
    return _clamp(ctx, c, 0.0, size - 1), None


_GRID_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest", "bicubic": "cubic", "cubic": "cubic"}


@lowering("GridSample", since=16, onnx_dtypes=FLOATS)
def lower_grid_sample(node: NodeView, ctx: LowerContext) -> None:
    """GridSample (opset 16 4-D; opset 20+ N-D): linear/nearest, zeros/border/reflection, align_corners."""
    x, grid = ctx.input(0), ctx.input(1)
    mode = _GRID_MODES.get(str(node.attr("mode", "bilinear" if node.opset < 20 else "linear")))
    padding = str(node.attr("padding_mode", "zeros"))
    align = bool(node.attr("align_corners", 0))
    if mode is None or mode == "cubic":
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"GridSample mode '{node.attr('mode')}' is not supported (linear and nearest are)")
    if padding not in ("zeros", "border", "reflection"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"padding_mode '{padding}' is not supported")
    if grid.dtype != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"grid dtype {grid.dtype.name}: only float32 is supported")
    r = x.rank - 2
    if r not in (2, 3) or (node.opset < 20 and r != 2):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"GridSample of a rank-{x.rank} input is not supported")
    if grid.rank != x.rank or grid.shape[-1] != r or grid.shape[0] != x.shape[0]:
        raise ctx.fail(Reason.INVALID_MODEL, f"grid shape {list(grid.shape)} does not fit input {list(x.shape)}")
    if any(d <= 0 for d in x.shape + grid.shape):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "zero-sized tensors are not supported")
    n, c, spatial = x.shape[0], x.shape[1], x.shape[2:]
    out_spatial = grid.shape[1:-1]
    out = ctx.output(0, (n, c) + tuple(out_spatial), _F32)
    total = int(np.prod(spatial))
    table = ctx.reshape(ctx.to_channels_last(x), (n * total, c))
    strides = [int(np.prod(spatial[d + 1:])) for d in range(r)]
    base = ctx.new_const((np.arange(n) * total).astype(np.float32).reshape((n,) + (1,) * (r + 1)), hint="base")
    parts = _split_last(ctx, grid, r)  # grid[..., k] addresses spatial dim r - 1 - k
    coords = []
    for d in range(r):
        size = spatial[d]
        g = parts[r - 1 - d]
        if align:
            v = _mul(ctx, _div(ctx, _add(ctx, g, _f(ctx, 1.0)), _f(ctx, 2.0)), _f(ctx, size - 1))
            lo, hi = 0.0, float(size - 1)
        else:
            v = _div(ctx, _sub(ctx, _mul(ctx, _add(ctx, g, _f(ctx, 1.0)), _f(ctx, size)), _f(ctx, 1.0)),
                     _f(ctx, 2.0))
            lo, hi = -0.5, size - 0.5
        if mode == "nearest":
            v = emit_unary(ctx, "ROUND", v, hint="round")  # round half to even, like nearbyint
        if padding == "border":
            v = _clamp(ctx, v, 0.0, size - 1)
        elif padding == "reflection":
            v = _reflect(ctx, v, lo, hi)
        coords.append(v)

    if mode == "nearest":
        flat, valid = base, None
        for d in range(r):
            idx, ok = _corner_index(ctx, coords[d], spatial[d], padding, align)
            flat = _add(ctx, flat, _mul(ctx, idx, _f(ctx, strides[d])) if strides[d] != 1 else idx)
            valid = ok if valid is None else (_and(ctx, valid, ok) if ok is not None else valid)
        value = _gather_rows(ctx, table, flat)
        if valid is not None:
            value = _select(ctx, valid, value, _f(ctx, 0.0))
        ctx.from_channels_last(value, out=out)
        return

    # linear: per dim the two integer corners and their weights (1 - frac, frac)
    corners, weights = [], []
    for d in range(r):
        v0 = emit_unary(ctx, "FLOOR", coords[d], hint="floor")
        frac = _sub(ctx, coords[d], v0)
        weights.append((_sub(ctx, _f(ctx, 1.0), frac), frac))
        corners.append([_corner_index(ctx, v0, spatial[d], padding, align),
                        _corner_index(ctx, _add(ctx, v0, _f(ctx, 1.0)), spatial[d], padding, align)])
    values: dict[tuple[int, ...], Tensor] = {}
    for combo in itertools.product((0, 1), repeat=r):
        flat, valid = base, None
        for d, side in enumerate(combo):
            idx, ok = corners[d][side]
            flat = _add(ctx, flat, _mul(ctx, idx, _f(ctx, strides[d])) if strides[d] != 1 else idx)
            valid = ok if valid is None else (_and(ctx, valid, ok) if ok is not None else valid)
        value = _gather_rows(ctx, table, flat)
        if valid is not None:
            value = _select(ctx, valid, value, _f(ctx, 0.0))
        values[combo] = value

    def interp(d: int, prefix: tuple[int, ...]) -> Tensor:
        """The reference's nesting: the first spatial dim outermost, the last innermost."""
        if d == r:
            return values[prefix]
        a = _mul(ctx, weights[d][0], interp(d + 1, prefix + (0,)))
        b = _mul(ctx, weights[d][1], interp(d + 1, prefix + (1,)))
        return _add(ctx, a, b)

    ctx.from_channels_last(interp(0, ()), out=out)


# -- RoiAlign --------------------------------------------------------------------------------------
def _roi_axis(ctx: LowerContext, start: Tensor, bin_size: Tensor, pooled: int, grid: int
              ) -> Tensor:
    """Sample coordinates [R, pooled * grid] along one axis (ORT's float order)."""
    ph = ctx.new_const(np.repeat(np.arange(pooled, dtype=np.float32), grid)[None, :], hint="bin")
    iy = ctx.new_const(np.tile(np.arange(grid, dtype=np.float32) + 0.5, pooled)[None, :], hint="sub")
    offset = _mul(ctx, ph, bin_size)
    frac = _div(ctx, _mul(ctx, iy, bin_size), _f(ctx, grid))
    return _add(ctx, _add(ctx, start, offset), frac)


def _roi_bilinear(ctx: LowerContext, v: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """ORT's RoiAlign bilinear setup along one axis: (low, high, w_low, w_high, in_range)."""
    valid = _and(ctx, _cmp(ctx, "GREATER_EQUAL", v, _f(ctx, -1.0)), _cmp(ctx, "LESS_EQUAL", v, _f(ctx, size)))
    v = _max(ctx, v, _f(ctx, 0.0))
    low = emit_unary(ctx, "FLOOR", v, hint="low")
    at_edge = _cmp(ctx, "GREATER_EQUAL", low, _f(ctx, size - 1))
    low = _min(ctx, low, _f(ctx, size - 1))
    v = _select(ctx, at_edge, low, v)
    high = _min(ctx, _add(ctx, low, _f(ctx, 1.0)), _f(ctx, size - 1))
    l_frac = _sub(ctx, v, low)
    h_frac = _sub(ctx, _f(ctx, 1.0), l_frac)
    return low, high, h_frac, l_frac, valid


def _roi_align_group(ctx: LowerContext, table: Tensor, rois: Tensor, base: Tensor, spatial: tuple[int, int],
                     pooled: tuple[int, int], grids: tuple[int, int], scale: float, half_pixel: bool,
                     mode: str) -> Tensor:
    """RoiAlign of ``rois`` [R, 4] with one sampling grid: channels-last [R, oh, ow, C]."""
    h, w = spatial
    oh, ow = pooled
    gh, gw = grids
    rcount = rois.shape[0]
    x1, y1, x2, y2 = _split_last(ctx, rois, 4)
    off = 0.5 if half_pixel else 0.0

    def start_end(a: Tensor) -> Tensor:
        s = _mul(ctx, a, _f(ctx, scale))
        return _sub(ctx, s, _f(ctx, off)) if off else s

    sx, sy, ex, ey = (start_end(t) for t in (x1, y1, x2, y2))
    rw, rh = _sub(ctx, ex, sx), _sub(ctx, ey, sy)
    if not half_pixel:
        rw, rh = _max(ctx, rw, _f(ctx, 1.0)), _max(ctx, rh, _f(ctx, 1.0))
    bh, bw = _div(ctx, rh, _f(ctx, oh)), _div(ctx, rw, _f(ctx, ow))
    ys = ctx.reshape(_roi_axis(ctx, sy, bh, oh, gh), (rcount, oh * gh, 1))
    xs = ctx.reshape(_roi_axis(ctx, sx, bw, ow, gw), (rcount, 1, ow * gw))
    y_lo, y_hi, wy_lo, wy_hi, y_ok = _roi_bilinear(ctx, ys, h)
    x_lo, x_hi, wx_lo, wx_hi, x_ok = _roi_bilinear(ctx, xs, w)
    valid = _and(ctx, y_ok, x_ok)
    zero = _f(ctx, 0.0)
    terms = []
    for yi, wy in ((y_lo, wy_lo), (y_hi, wy_hi)):
        for xi, wx in ((x_lo, wx_lo), (x_hi, wx_hi)):
            weight = _select(ctx, valid, _mul(ctx, wy, wx), zero, "weight")  # [R, Ph, Pw]
            flat = _add(ctx, _add(ctx, base, _mul(ctx, yi, _f(ctx, w))), xi)
            flat = _mul(ctx, flat, _select(ctx, valid, _f(ctx, 1.0), zero))  # out-of-range samples read row 0
            flat = ctx.reshape(flat, flat.shape + (1,))
            value = _gather_rows(ctx, table, flat)  # [R, Ph, Pw, C]
            terms.append(_mul(ctx, ctx.reshape(weight, weight.shape + (1,)), value))
    if mode == "max":
        acc = _max(ctx, _max(ctx, _max(ctx, terms[0], terms[1]), terms[2]), terms[3])
        opcode = "REDUCE_MAX"
    else:
        acc = _add(ctx, _add(ctx, _add(ctx, terms[0], terms[1]), terms[2]), terms[3])
        opcode = "SUM"
    c = table.shape[1]
    acc = ctx.reshape(acc, (rcount * oh, gh, ow, gw, c))
    red = ctx.emit1(opcode, [acc, ctx.new_const(np.array([1, 3], np.int32), hint="axes")], (rcount * oh, ow, c),
                    _F32, "pool", keepDims=False)
    if mode != "max":
        red = _div(ctx, red, _f(ctx, max(gh * gw, 1)))
    return ctx.reshape(red, (rcount, oh, ow, c))


@lowering("RoiAlign", since=10, onnx_dtypes=FLOATS)
def lower_roi_align(node: NodeView, ctx: LowerContext) -> None:
    """RoiAlign (opset 10: output_half_pixel; 16+: coordinate_transformation_mode), avg or max.

    sampling_ratio > 0 works with run-time rois; 0 (adaptive) needs constant rois, and rois with
    different adaptive grids are processed in separate groups (one per roi) and concatenated.
    """
    x, rois, idx = ctx.input(0), ctx.input(1), ctx.input(2)
    if x.rank != 4:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"RoiAlign needs a 4-D input; got {list(x.shape)}")
    if rois.dtype != _F32 or rois.rank != 2 or rois.shape[1] != 4:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "rois must be a float32 [num_rois, 4] tensor")
    if idx.dtype.name not in ("int32", "int64") or idx.shape != (rois.shape[0],):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "batch_indices must be int32/int64 [num_rois]")
    mode = str(node.attr("mode", "avg"))
    if mode not in ("avg", "max"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"RoiAlign mode '{mode}' is not supported")
    ctm = str(node.attr("coordinate_transformation_mode", "half_pixel" if node.opset >= 16 else "output_half_pixel"))
    if ctm not in ("half_pixel", "output_half_pixel"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"coordinate_transformation_mode '{ctm}' is not supported")
    oh, ow = int(node.attr("output_height", 1)), int(node.attr("output_width", 1))
    ratio = int(node.attr("sampling_ratio", 0))
    scale = float(node.attr("spatial_scale", 1.0))
    n, c, h, w = x.shape
    rcount = rois.shape[0]
    if min(oh, ow, rcount, n, c, h, w) <= 0 or ratio < 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "zero-sized tensors / negative sampling_ratio")
    half_pixel = ctm == "half_pixel"
    out = ctx.output(0, (rcount, c, oh, ow), _F32)
    table = ctx.reshape(ctx.to_channels_last(x), (n * h * w, c))
    if idx.is_const:
        bvals = np.asarray(idx.data).astype(np.int64)
        if np.any(bvals < 0) or np.any(bvals >= n):
            raise ctx.fail(Reason.INVALID_MODEL, "batch_indices are out of range")
        base_all = ctx.new_const((bvals * h * w).astype(np.float32).reshape(rcount, 1, 1), hint="base")
    else:
        b = _cast(ctx, idx, _F32)
        base_all = ctx.reshape(_mul(ctx, b, _f(ctx, h * w)), (rcount, 1, 1))
    if ratio > 0:
        groups = [(list(range(rcount)), (ratio, ratio))]
    else:
        if not rois.is_const:
            raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                           "sampling_ratio=0 (adaptive) needs constant rois; set sampling_ratio > 0")
        grids = [_adaptive_grid(r, scale, half_pixel, oh, ow) for r in np.asarray(rois.data, np.float32)]
        groups = []
        for g in dict.fromkeys(grids):
            groups.append(([i for i, v in enumerate(grids) if v == g], g))
    parts = []
    for members, grid in groups:
        sub_rois, sub_base = rois, base_all
        if len(groups) > 1:
            sub_rois = _rows(ctx, rois, members)
            sub_base = _rows(ctx, base_all, members)
        parts.append((members, _roi_align_group(ctx, table, sub_rois, sub_base, (h, w), (oh, ow), grid, scale,
                                                half_pixel, mode)))
    if len(parts) == 1:
        y = parts[0][1]
    else:
        cat = ctx.emit1("CONCATENATION", [p for _, p in parts], (rcount, oh, ow, c), _F32, "concat", axis=0,
                        fusedActivationFunction="NONE")
        order = [i for members, _ in parts for i in members]
        y = _rows(ctx, cat, list(np.argsort(order)))
    ctx.from_channels_last(y, out=out)


def _rows(ctx: LowerContext, t: Tensor, rows: list[int]) -> Tensor:
    """Rows ``rows`` of ``t`` along axis 0 (a constant tensor is sliced at conversion time)."""
    if t.is_const:
        return ctx.new_const(np.asarray(t.data)[rows], hint="rows")
    index = ctx.new_const(np.array(rows, np.int32), hint="rows")
    return ctx.emit1("GATHER", [t, index], (len(rows),) + t.shape[1:], t.dtype, "rows", axis=0, batchDims=0)


def _adaptive_grid(roi: np.ndarray, scale: float, half_pixel: bool, oh: int, ow: int) -> tuple[int, int]:
    """ORT's adaptive sampling grid ceil(roi_size / pooled) for one constant roi (float32 math)."""
    f = np.float32
    off = f(0.5) if half_pixel else f(0.0)
    sx, sy, ex, ey = (f(v) * f(scale) - off for v in roi)
    rw, rh = f(ex - sx), f(ey - sy)
    if not half_pixel:
        rw, rh = max(rw, f(1.0)), max(rh, f(1.0))
    return int(math.ceil(rh / f(oh))), int(math.ceil(rw / f(ow)))


# -- NonMaxSuppression -----------------------------------------------------------------------------
@lowering("NonMaxSuppression", since=10, onnx_dtypes=("float32",))
def lower_nms(node: NodeView, ctx: LowerContext) -> None:
    """NON_MAX_SUPPRESSION_V5 per (batch, class); exact [num_selected, 3] int64 (dynamic rows)."""
    boxes, scores = ctx.input(0), ctx.input(1)
    if boxes.rank != 3 or boxes.shape[2] != 4 or scores.rank != 3 or scores.shape[0] != boxes.shape[0] \
            or scores.shape[2] != boxes.shape[1]:
        raise ctx.fail(Reason.INVALID_MODEL, f"boxes {list(boxes.shape)} / scores {list(scores.shape)} do not fit")
    if scores.dtype != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "scores must be float32")
    batches, count, classes = boxes.shape[0], boxes.shape[1], scores.shape[1]
    if min(batches, count, classes) <= 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "zero-sized boxes/scores are not supported")
    if batches * classes > _MAX_NMS_PAIRS:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{batches * classes} (batch, class) pairs exceed the limit of {_MAX_NMS_PAIRS}")
    center = int(node.attr("center_point_box", 0))
    if center not in (0, 1):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"center_point_box {center} is not supported")

    max_out = _nms_scalar(ctx, 2, _I32, 0, "max_output_boxes_per_class")
    iou = _next_up(ctx, _nms_scalar(ctx, 3, _F32, 0.0, "iou_threshold"))
    score_thr = _nms_scalar(ctx, 4, _F32, -np.inf, "score_threshold")
    if center:  # [xc, yc, w, h] -> [y1, x1, y2, x2]
        xc, yc, bw, bh = _split_last(ctx, boxes, 4)
        half_w, half_h = _div(ctx, bw, _f(ctx, 2.0)), _div(ctx, bh, _f(ctx, 2.0))
        corners = [_sub(ctx, yc, half_h), _sub(ctx, xc, half_w), _add(ctx, yc, half_h), _add(ctx, xc, half_w)]
        boxes = ctx.emit1("CONCATENATION", corners, boxes.shape, _F32, "corners", axis=2,
                          fusedActivationFunction="NONE")
    sigma = _f(ctx, 0.0)
    size = ctx.new_const(np.array(count, np.int32), hint="max_size")
    selected, counts = [], []
    for b in range(batches):
        box_b = _rows(ctx, boxes, [b]) if batches > 1 else boxes
        box_b = ctx.reshape(box_b, (count, 4))
        for k in range(classes):
            sc = ctx.emit1("SLICE", [scores, ctx.new_const(np.array([b, k, 0], np.int32), hint="begin"),
                                     ctx.new_const(np.array([1, 1, count], np.int32), hint="size")],
                           (1, 1, count), _F32, "scores")
            sc = ctx.reshape(sc, (count,))
            idx = ctx.tmp((count,), _I32, "selected")
            sel_scores = ctx.tmp((count,), _F32, "selected_scores")
            valid = ctx.tmp((), _I32, "valid")
            ctx.emit("NON_MAX_SUPPRESSION_V5", [box_b, sc, size, iou, score_thr, sigma], [idx, sel_scores, valid])
            selected.append(idx)
            counts.append(_min(ctx, valid, max_out, "count"))
    pairs = batches * classes
    flat = selected[0] if pairs == 1 else ctx.emit1("CONCATENATION", selected, (pairs * count,), _I32, "all",
                                                    axis=0, fusedActivationFunction="NONE")
    box_col = ctx.reshape(_cast(ctx, flat, _I64), (pairs * count, 1))
    bc = np.array([(b, k) for b in range(batches) for k in range(classes) for _ in range(count)], np.int64)
    rows = ctx.emit1("CONCATENATION", [ctx.new_const(bc, hint="batch_class"), box_col], (pairs * count, 3), _I64,
                     "rows", axis=1, fusedActivationFunction="NONE")
    cnt = counts[0] if pairs == 1 else ctx.emit1("PACK", counts, (pairs,), _I32, "counts", valuesCount=pairs,
                                                 axis=0)
    cnt = ctx.reshape(cnt, (pairs, 1))
    position = ctx.new_const(np.arange(count, dtype=np.int32)[None, :], hint="position")
    keep = ctx.reshape(_cmp(ctx, "LESS", position, cnt), (pairs * count,))
    coords = ctx.tmp((0, 1), _I64, "keep")
    coords.shape_signature = (-1, 1)
    ctx.emit("WHERE", [keep], [coords])
    out = ctx.output(0, (0, 3), _I64)
    out.shape_signature = (-1, 3)
    ctx.emit("GATHER_ND", [rows, coords], [out])


def _next_up(ctx: LowerContext, t: Tensor) -> Tensor:
    """The next float32 above ``t`` (t >= 0): LiteRT suppresses on iou >= t, ONNX on iou > t.

    For float32 IoU values, ``iou >= next_up(t)`` is exactly ``iou > t``. A run-time threshold is
    stepped by adding 1 to its bit pattern (BITCAST), which is next_up for finite t >= 0.
    """
    if t.is_const:
        return ctx.new_const(np.nextafter(np.float32(t.data), np.float32(np.inf)).astype(np.float32), hint="iou")
    bits = ctx.emit1("BITCAST", [t], t.shape, _I32, "bits")
    bits = emit_binary(ctx, "ADD", bits, scalar(ctx, 1, _I32, "one"), hint="next")
    return ctx.emit1("BITCAST", [bits], t.shape, _F32, "iou")


def _nms_scalar(ctx: LowerContext, i: int, dtype: np.dtype, default: float, what: str) -> Tensor:
    """Optional scalar input ``i`` as a rank-0 tensor of ``dtype`` (constant, or cast at run time)."""
    if not ctx.has_input(i):
        return ctx.new_const(np.array(default, dtype), hint=what)
    value = ctx.const(i)
    if value is not None:
        flat = np.asarray(value).reshape(-1)
        if flat.size != 1:
            raise ctx.fail(Reason.INVALID_MODEL, f"{what} must hold one value")
        v = flat[0]
        if dtype == _I32:
            v = min(int(v), np.iinfo(np.int32).max)
        return ctx.new_const(np.array(v, dtype), hint=what)
    t = ctx.input(i)
    if t.size != 1:
        raise ctx.fail(Reason.INVALID_MODEL, f"{what} must hold one value")
    if t.dtype != dtype:
        if t.dtype == _I64 and dtype == _I32:
            # clamp before narrowing so huge limits (e.g. INT64_MAX) stay "unlimited"
            t = emit_binary(ctx, "MINIMUM", t, scalar(ctx, np.iinfo(np.int32).max, _I64, "int32_max"), hint="clamp")
        t = _cast(ctx, t, dtype)
    return ctx.reshape(t, ())


# -- DeformConv ------------------------------------------------------------------------------------
def _deform_positions(out_hw: tuple[int, int], kernel: tuple[int, int], strides: list[int], pads: list[int],
                      dilations: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The undeformed sampling rows / columns, each [K, OH, OW] (K = kh * kw, kernel row-major)."""
    (oh, ow), (kh, kw) = out_hw, kernel
    ky, kx = np.meshgrid(np.arange(kh) * dilations[0], np.arange(kw) * dilations[1], indexing="ij")
    rows = np.arange(oh) * strides[0] - pads[0]
    cols = np.arange(ow) * strides[1] - pads[1]
    base_y = ky.reshape(-1, 1, 1) + rows.reshape(1, -1, 1) + np.zeros((1, 1, ow))
    base_x = kx.reshape(-1, 1, 1) + cols.reshape(1, 1, -1) + np.zeros((1, oh, 1))
    return base_y.astype(np.float32), base_x.astype(np.float32)


def _bilinear_zeros(ctx: LowerContext, table: Tensor, base: Tensor, y: Tensor, x: Tensor, h: int, w: int
                    ) -> Tensor:
    """Bilinear samples of ``table`` [R, C] at pixel coordinates (y, x) [..., 1]; zero outside the image.

    ``base`` [..., 1] is the flat row of pixel (0, 0) of each sample's image. Each of the four
    corners contributes only when it lies inside the image (zero padding), as in the ONNX reference
    (GridSample with align_corners=1 on pixel coordinates).
    """
    y0 = emit_unary(ctx, "FLOOR", y, hint="y0")
    x0 = emit_unary(ctx, "FLOOR", x, hint="x0")
    fy, fx = _sub(ctx, y, y0), _sub(ctx, x, x0)
    wy = (_sub(ctx, _f(ctx, 1.0), fy), fy)
    wx = (_sub(ctx, _f(ctx, 1.0), fx), fx)
    ys = (_corner_index(ctx, y0, h, "zeros", True), _corner_index(ctx, _add(ctx, y0, _f(ctx, 1.0)), h, "zeros", True))
    xs = (_corner_index(ctx, x0, w, "zeros", True), _corner_index(ctx, _add(ctx, x0, _f(ctx, 1.0)), w, "zeros", True))
    total = None
    for a in (0, 1):
        row = _add(ctx, base, _mul(ctx, ys[a][0], _f(ctx, w)) if w != 1 else ys[a][0])
        part = None
        for b in (0, 1):
            value = _gather_rows(ctx, table, _add(ctx, row, xs[b][0]))
            value = _select(ctx, _and(ctx, ys[a][1], xs[b][1]), value, _f(ctx, 0.0))
            term = _mul(ctx, wx[b], value)
            part = term if part is None else _add(ctx, part, term)
        term = _mul(ctx, wy[a], part)
        total = term if total is None else _add(ctx, total, term)
    return total


@lowering("DeformConv", since=19, onnx_dtypes=FLOATS)
def lower_deform_conv(node: NodeView, ctx: LowerContext) -> None:
    """2-D DeformConv: exact bilinear sampling at the offset positions (GATHER), then one matmul.

    Every (offset group, kernel tap, output pixel) gets its sampling position from the run-time
    offsets; the samples of all input channels of the group are gathered from the channels-last
    input, scaled by the optional mask, laid out as [N*OH*OW, C*K] columns and multiplied with
    the (run-time or constant) weights [OC, C/group*K] per convolution group (BATCH_MATMUL).
    """
    x, w, offset = ctx.input(0), ctx.input(1), ctx.input(2)
    for i in range(5):
        if ctx.has_input(i) and ctx.in_dtype(i) != _F32:
            raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"input {i} has dtype {ctx.in_dtype(i).name}; only float32")
    if x.rank != 4 or w.rank != 4 or offset.rank != 4:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "only 2-D DeformConv (4-D X, W, offset) is supported")
    n, c, h, wd = x.shape
    oc, cpg, kh, kw = w.shape
    kernel = tuple(int(k) for k in node.attr("kernel_shape", [kh, kw]))
    group, ogroup = int(node.attr("group", 1)), int(node.attr("offset_group", 1))
    strides = [int(v) for v in node.attr("strides", [1, 1])]
    dilations = [int(v) for v in node.attr("dilations", [1, 1])]
    pads = [int(v) for v in node.attr("pads", [0, 0, 0, 0])]
    oh, ow = offset.shape[2:]
    k = kh * kw
    if kernel != (kh, kw) or group < 1 or ogroup < 1 or c != cpg * group or oc % group or c % ogroup:
        raise ctx.fail(Reason.INVALID_MODEL, f"DeformConv shapes X {list(x.shape)}, W {list(w.shape)} do not fit "
                                             f"group={group}, offset_group={ogroup}, kernel_shape={list(kernel)}")
    expect = [(size + pads[i] + pads[i + 2] - (kk - 1) * dilations[i] - 1) // strides[i] + 1
              for i, (size, kk) in enumerate(((h, kh), (wd, kw)))]
    if offset.shape != (n, ogroup * k * 2, oh, ow) or [oh, ow] != expect:
        raise ctx.fail(Reason.INVALID_MODEL, f"offset shape {list(offset.shape)} does not fit the convolution")
    if ctx.has_input(4) and ctx.in_shape(4) != (n, ogroup * k, oh, ow):
        raise ctx.fail(Reason.INVALID_MODEL, f"mask shape {list(ctx.in_shape(4))} does not fit the convolution")
    if ctx.has_input(3) and ctx.in_shape(3) != (oc,):
        raise ctx.fail(Reason.INVALID_MODEL, f"bias shape {list(ctx.in_shape(3))} is not [{oc}]")
    if min(x.shape + w.shape + (oh, ow)) <= 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "zero-sized tensors are not supported")
    if n * ogroup * h * wd >= 1 << 24:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "the input is too large for float32 row indices")
    cg = c // ogroup

    # table rows: (batch, offset group, y, x); columns: the group's cg channels
    grouped = ctx.reshape(x, (n, ogroup, cg, h, wd))
    table = ctx.reshape(ctx.transpose(grouped, (0, 1, 3, 4, 2)), (n * ogroup * h * wd, cg))
    base = ctx.new_const((np.arange(n * ogroup) * (h * wd)).astype(np.float32).reshape(n, ogroup, 1, 1, 1, 1),
                         hint="base")
    # offsets [N, G*K*2, OH, OW] -> (y, x) each [N, G, K, OH, OW, 1]
    off = ctx.reshape(offset, (n, ogroup, k, 2, oh, ow))
    dy, dx = (ctx.emit1("SLICE", [off, ctx.new_const(np.array([0, 0, 0, i, 0, 0], np.int32), hint="begin"),
                                  ctx.new_const(np.array([n, ogroup, k, 1, oh, ow], np.int32), hint="size")],
                        (n, ogroup, k, 1, oh, ow), _F32, "off") for i in (0, 1))
    base_y, base_x = _deform_positions((oh, ow), (kh, kw), strides, pads, dilations)
    shape6 = (n, ogroup, k, oh, ow, 1)
    y = _add(ctx, ctx.reshape(dy, shape6), ctx.new_const(base_y.reshape(1, 1, k, oh, ow, 1), hint="base_y"))
    xx = _add(ctx, ctx.reshape(dx, shape6), ctx.new_const(base_x.reshape(1, 1, k, oh, ow, 1), hint="base_x"))
    samples = _bilinear_zeros(ctx, table, base, y, xx, h, wd)  # [N, G, K, OH, OW, cg]
    if ctx.has_input(4):
        samples = _mul(ctx, samples, ctx.reshape(ctx.input(4), shape6))
    # columns ordered (channel, tap) like W's (C/group, kh, kw)
    cols = ctx.transpose(samples, (0, 3, 4, 1, 5, 2))  # [N, OH, OW, G, cg, K]
    rows = n * oh * ow
    if group == 1:
        wmat = ctx.reshape(w, (oc, cpg * k))
        y2 = ctx.emit1("BATCH_MATMUL", [ctx.reshape(cols, (rows, c * k)), wmat], (rows, oc), _F32, "matmul",
                       adjX=False, adjY=True, asymmetricQuantizeInputs=False)
    else:
        a = ctx.transpose(ctx.reshape(cols, (rows, group, cpg * k)), (1, 0, 2))
        wmat = ctx.reshape(w, (group, oc // group, cpg * k))
        prod = ctx.emit1("BATCH_MATMUL", [a, wmat], (group, rows, oc // group), _F32, "matmul",
                         adjX=False, adjY=True, asymmetricQuantizeInputs=False)
        y2 = ctx.reshape(ctx.transpose(prod, (1, 0, 2)), (rows, oc))
    y4 = ctx.reshape(y2, (n, oh, ow, oc))
    if ctx.has_input(3):
        y4 = _add(ctx, y4, ctx.input(3))
    ctx.from_channels_last(y4, out=ctx.output(0, (n, oc, oh, ow), _F32))


# -- SpaceToDepth (opset 28: mode attribute) -------------------------------------------------------
@lowering("SpaceToDepth", since=28, onnx_dtypes=_SPACE_DEPTH_ONNX_DTYPES, dtypes=_SPACE_DEPTH_DTYPES,
          verified=("float32",))
def lower_space_to_depth_28(node: NodeView, ctx: LowerContext) -> None:
    """SpaceToDepth with ``mode``: DCR -> SPACE_TO_DEPTH; CRD -> SPACE_TO_DEPTH + channel regrouping.

    LiteRT's SPACE_TO_DEPTH orders the depth (block row, block col, channel) like DCR; CRD wants
    (channel, block row, block col): swap the two channel factors with RESHAPE/TRANSPOSE.
    """
    mode = str(node.attr("mode", "DCR"))
    if mode not in ("DCR", "CRD"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"mode '{mode}'")
    if mode == "DCR":
        lower_space_to_depth(node, ctx)
        return
    b = int(node.attr("blocksize", 0))
    x = ctx.input(0)
    if b < 1 or x.rank != 4:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"blocksize {b} on a rank-{x.rank} input")
    n, c, h, w = x.shape
    if h % b or w % b:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"spatial size {h}x{w} not divisible by blocksize")
    oh, ow, bb = h // b, w // b, b * b
    y = ctx.emit1("SPACE_TO_DEPTH", [ctx.to_channels_last(x)], (n, oh, ow, c * bb), x.dtype, "s2d", blockSize=b)
    y = ctx.reshape(ctx.transpose(ctx.reshape(y, (n, oh, ow, bb, c)), (0, 1, 2, 4, 3)), (n, oh, ow, c * bb))
    ctx.from_channels_last(y, out=ctx.output(0))
