"""Lowerings of the resize family: Resize, Upsample, DepthToSpace, SpaceToDepth.

Resize and Upsample are separable per spatial axis. For each resized axis the lowering
computes, at conversion time, what ONNX Runtime does — the source index of every output
pixel (nearest) or the interpolation matrix (linear), in float32 like the runtime — and what
each LiteRT option combination (align_corners, half_pixel_centers) does. A builtin
RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR is emitted only with a combination that agrees on
every axis. A nearest resize no combination reproduces becomes constant-index GATHERs, which
are exact for any coordinate mode. A nearest resize whose source coordinates land on float
rounding ties (float32 and exact arithmetic disagree) is refused: ONNX Runtime's kernels are
seen to resolve such ties either way.

Everything RESIZE_BILINEAR cannot express — cubic mode (cubic_coeff_a, exclude_outside),
antialias, linear coordinate modes without a LiteRT match, tf_crop_and_resize with a
constant roi — is a separable weighted sum: one constant (out, in) weight matrix per
resized axis, computed in float64 following the ONNX reference (edge-clamped taps, ratio in
(0, 1]), applied with FULLY_CONNECTED over that axis (moved last by TRANSPOSE). The bias
carries tf_crop_and_resize's extrapolation value. (As with any matrix product, a non-finite
input value reaches every output of its row through a zero weight.)

A run-time ``sizes`` input is implied by the node's static output shape (stretch: the sizes
are the output lengths; not_larger / not_smaller: the scale must be the same for every
ratio out/in consistent with that shape). Run-time ``scales`` are refused: the coordinate
transforms use the scale value itself, which the output shape does not determine.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ...errors import Reason
from ..context import LowerContext, NodeView
from ..registry import lowering

# LiteRT resize option pairs (align_corners, half_pixel_centers); both True is invalid.
_LITERT_MODES = ((False, False), (False, True), (True, False))
_COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                "tf_half_pixel_for_nn")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")
# Linear weights may differ from ONNX Runtime's by float32 rounding only.
_WEIGHT_TOL = 1e-6

_f32 = np.float32


# --- ONNX Runtime semantics (float32 like the runtime) --------------------------------------

def onnx_coords(out_len: int, in_len: int, scale: float, mode: str) -> np.ndarray:
    """Source coordinate of every output index (ONNX coordinate_transformation_mode).

    Evaluated like ONNX Runtime: float32 arithmetic, except half_pixel_symmetric whose last
    step the runtime evaluates in double precision.
    """
    x = np.arange(out_len, dtype=_f32)
    s, lo, li = _f32(scale), _f32(out_len), _f32(in_len)
    half = _f32(0.5)
    if mode == "half_pixel":
        return (x + half) / s - half
    if mode == "half_pixel_symmetric":
        adjustment = lo / (s * li)
        offset = (li / _f32(2)) * (_f32(1) - adjustment)
        xd = x.astype(np.float64)
        return (np.float64(offset) + (xd + 0.5) / np.float64(s) - 0.5).astype(_f32)
    if mode == "pytorch_half_pixel":
        return (x + half) / s - half if out_len > 1 else np.zeros(out_len, _f32)
    if mode == "align_corners":
        return np.zeros(out_len, _f32) if out_len == 1 else x * _f32(in_len - 1) / _f32(out_len - 1)
    if mode == "asymmetric":
        return x / s
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / s
    raise ValueError(mode)


def _exact_coord(x: int, out_len: int, in_len: int, s: Fraction, mode: str) -> Fraction:
    """The coordinate transformation in exact rational arithmetic."""
    half = Fraction(1, 2)
    if mode == "half_pixel_symmetric":
        offset = Fraction(in_len, 2) * (1 - Fraction(out_len) / (s * in_len))
        return offset + (x + half) / s - half
    if mode == "half_pixel" or (mode == "pytorch_half_pixel" and out_len > 1):
        return (x + half) / s - half
    if mode == "align_corners":
        return Fraction(0) if out_len == 1 else Fraction(x * (in_len - 1), out_len - 1)
    if mode == "asymmetric":
        return x / s
    if mode == "tf_half_pixel_for_nn":
        return (x + half) / s
    return Fraction(0)  # pytorch_half_pixel with a single output


def _round_half_away(v: np.ndarray) -> np.ndarray:
    """C's std::round: halves go away from zero."""
    return np.sign(v) * np.floor(np.abs(v) + _f32(0.5))


def _nearest_of(c: np.ndarray, nearest_mode: str, downsampling: bool) -> np.ndarray:
    """ONNX Runtime's nearest_mode rounding of float coordinates."""
    if nearest_mode == "round_prefer_floor":
        return np.where(c == np.trunc(c) + _f32(0.5), np.floor(c), _round_half_away(c))
    if nearest_mode == "round_prefer_ceil":
        return _round_half_away(c)
    if nearest_mode == "floor":
        return np.floor(c)
    if nearest_mode == "ceil":
        return np.ceil(c)
    if nearest_mode == "simple":  # opset 10 Resize / Upsample: ceil when downsampling, else truncate
        return np.ceil(c) if downsampling else np.trunc(c)
    raise ValueError(nearest_mode)


def _exact_nearest(c: Fraction, nearest_mode: str, downsampling: bool) -> int:
    """The same rounding on an exact coordinate."""
    fl = math.floor(c)
    if nearest_mode == "floor" or (nearest_mode == "simple" and not downsampling):
        return fl if nearest_mode == "floor" or c >= 0 else math.ceil(c)
    if nearest_mode == "ceil" or nearest_mode == "simple":
        return math.ceil(c)
    if c - fl == Fraction(1, 2):
        return fl if nearest_mode == "round_prefer_floor" else fl + 1
    return math.floor(c + Fraction(1, 2))


def onnx_nearest_index(in_len: int, out_len: int, scale: float, coord_mode: str, nearest_mode: str,
                       exact_scales: tuple[Fraction, ...] = ()) -> np.ndarray | None:
    """Source index per output index for ONNX nearest resize (ONNX Runtime's rounding).

    Returns None when the result is implementation-defined: a coordinate so close to a
    rounding boundary that float32 and exact rational arithmetic round it differently. The
    exact scale is ``exact_scales`` (e.g. out/in for a ``sizes`` input) or else the float32
    scale itself. (Where they differ, ONNX Runtime's kernels are seen to follow either.)
    """
    if scale == 1.0 and in_len == out_len:
        return np.arange(out_len)  # the runtime maps unscaled axes straight through
    down = scale < 1
    coords = onnx_coords(out_len, in_len, scale, coord_mode)
    if coord_mode == "half_pixel_symmetric":
        # The runtime's mixed float/double evaluation of this mode is not reproducible bit for
        # bit: refuse coordinates anywhere near a rounding boundary.
        shift = 0.5 if nearest_mode.startswith("round") else 0.0
        dist = np.abs(coords.astype(np.float64) - shift - np.round(coords.astype(np.float64) - shift))
        if np.any(dist < 1e-5 * (1.0 + np.abs(coords))):
            return None
    idx = _nearest_of(coords, nearest_mode, down).astype(np.int64)
    for s in tuple(exact_scales) or (Fraction(float(_f32(scale))),):
        exact = [_exact_nearest(_exact_coord(x, out_len, in_len, s, coord_mode), nearest_mode, down)
                 for x in range(out_len)]
        if not np.array_equal(np.clip(exact, 0, in_len - 1), np.clip(idx, 0, in_len - 1)):
            return None
    return np.clip(idx, 0, in_len - 1)


def onnx_linear_matrix(in_len: int, out_len: int, scale: float, coord_mode: str) -> np.ndarray:
    """(out, in) interpolation matrix of ONNX linear resize (ONNX Runtime's clamping)."""
    m = np.zeros((out_len, in_len), np.float64)
    if scale == 1.0 and in_len == out_len:
        return np.eye(in_len)
    c = np.clip(onnx_coords(out_len, in_len, scale, coord_mode), _f32(0), _f32(in_len - 1))
    i1 = np.minimum(c.astype(np.int64), in_len - 1)
    i2 = np.minimum(i1 + 1, in_len - 1)
    d1 = np.abs(c - i1.astype(_f32))
    d2 = np.abs(c - i2.astype(_f32))
    same = i1 == i2
    d1 = np.where(same, _f32(0.5), d1)
    d2 = np.where(same, _f32(0.5), d2)
    rows = np.arange(out_len)
    np.add.at(m, (rows, i1), d2.astype(np.float64))
    np.add.at(m, (rows, i2), d1.astype(np.float64))
    return m


# --- LiteRT semantics ------------------------------------------------------------------------

def _litert_scale(in_len: int, out_len: int, align_corners: bool) -> np.float32:
    if align_corners and out_len > 1:
        return _f32(in_len - 1) / _f32(out_len - 1)
    return _f32(in_len) / _f32(out_len)


def litert_nearest_index(in_len: int, out_len: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """Source index per output index of RESIZE_NEAREST_NEIGHBOR."""
    scale = _litert_scale(in_len, out_len, align_corners)
    v = (np.arange(out_len, dtype=_f32) + _f32(0.5 if half_pixel else 0.0)) * scale
    idx = _round_half_away(v) if align_corners else np.floor(v)
    idx = np.minimum(idx.astype(np.int64), in_len - 1)
    return np.maximum(idx, 0) if half_pixel else idx


def litert_linear_matrix(in_len: int, out_len: int, align_corners: bool, half_pixel: bool) -> np.ndarray:
    """(out, in) interpolation matrix of RESIZE_BILINEAR."""
    scale = _litert_scale(in_len, out_len, align_corners)
    x = np.arange(out_len, dtype=_f32)
    v = (x + _f32(0.5)) * scale - _f32(0.5) if half_pixel else x * scale
    fl = np.floor(v)
    lower = np.maximum(fl.astype(np.int64), 0)
    upper = np.minimum(np.ceil(v).astype(np.int64), in_len - 1)
    frac = (v - fl).astype(np.float64)
    m = np.zeros((out_len, in_len), np.float64)
    rows = np.arange(out_len)
    np.add.at(m, (rows, lower), 1.0 - frac)
    np.add.at(m, (rows, upper), frac)
    return m


# --- shared emission ---------------------------------------------------------------------------

def _emit_resize(ctx: LowerContext, mode: str, coord_mode: str, nearest_mode: str,
                 scales: list[float], out_dims: tuple[int, ...],
                 exact_scales: list[tuple[Fraction, ...]] | None = None) -> None:
    """Emit an N/C-preserving spatial resize of input 0 (3-D or 4-D) into output 0.

    ``exact_scales`` lists, per axis, the ideal ratios the float32 scale approximates
    (out/in when sizes were given), used to detect rounding-sensitive nearest resizes.
    """
    x = ctx.input(0)
    in_dims = x.shape
    if x.rank not in (3, 4):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"resizing a rank-{x.rank} tensor (only 3-D and 4-D inputs are supported)")
    for axis in (0, 1):
        if out_dims[axis] != in_dims[axis] or scales[axis] != 1.0:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           "resizing the batch or channel axis has no LiteRT equivalent")
    declared = ctx.out_shape(0)
    if declared is not None and tuple(declared) != tuple(out_dims):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"declared output shape {list(declared)} differs from the computed {list(out_dims)}")
    # Spatial axes as (in, out, scale); a 1-D resize is a 2-D resize of a height-1 image.
    exact = exact_scales or [()] * x.rank
    axes = [(in_dims[a], out_dims[a], scales[a], exact[a]) for a in range(2, x.rank)]
    if len(axes) == 1:
        axes = [(1, 1, 1.0, ())] + axes
    if mode == "nearest":
        want = [onnx_nearest_index(i, o, s, coord_mode, nearest_mode, e) for i, o, s, e in axes]
        if any(w is None for w in want):
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           "nearest resize whose source pixels sit on float rounding ties at these sizes/scales: "
                           "the result is implementation-defined")
        match = next((m for m in _LITERT_MODES if all(
            np.array_equal(w, litert_nearest_index(i, o, *m)) for w, (i, o, _, _) in zip(want, axes))), None)
    else:
        want = [onnx_linear_matrix(i, o, s, coord_mode) for i, o, s, _ in axes]
        match = next((m for m in _LITERT_MODES if all(
            np.allclose(w, litert_linear_matrix(i, o, *m), rtol=0, atol=_WEIGHT_TOL)
            for w, (i, o, _, _) in zip(want, axes))), None)
        if match is None:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"linear resize with coordinate_transformation_mode '{coord_mode}' at these "
                           "sizes/scales differs from every LiteRT RESIZE_BILINEAR mode")
    xl = ctx.to_channels_last(x)
    n, c = xl.shape[0], xl.shape[-1]
    x4 = xl if xl.rank == 4 else ctx.reshape(xl, (n, 1, xl.shape[1], c))
    (_, h_out, _, _), (_, w_out, _, _) = axes
    out4 = (n, h_out, w_out, c)
    if match is not None:
        align_corners, half_pixel = match
        opcode = "RESIZE_NEAREST_NEIGHBOR" if mode == "nearest" else "RESIZE_BILINEAR"
        size = ctx.new_const(np.array([h_out, w_out], np.int32), hint="size")
        y4 = ctx.emit1(opcode, [x4, size], out4, x4.dtype, "resized", alignCorners=align_corners,
                       halfPixelCenters=half_pixel)
    else:
        y4 = x4
        for axis, idx in ((1, want[0]), (2, want[1])):
            if y4.shape[axis] == len(idx) and np.array_equal(idx, np.arange(len(idx))):
                continue
            shape = tuple(len(idx) if d == axis else s for d, s in enumerate(y4.shape))
            y4 = ctx.emit1("GATHER", [y4, ctx.new_const(idx.astype(np.int32), hint="indices")], shape,
                           y4.dtype, "gathered", axis=axis, batchDims=0)
        if y4 is x4:
            y4 = ctx.reshape(x4, out4)
    yl = y4 if xl.rank == 4 else ctx.reshape(y4, (n, w_out, c))
    ctx.from_channels_last(yl, out=ctx.output(0))


def _scales_to_dims(ctx: LowerContext, scales: np.ndarray, in_dims: tuple[int, ...]) -> tuple[int, ...]:
    """Output size floor(in * scale), as ONNX Runtime computes it in float32."""
    if scales.shape != (len(in_dims),):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"scales {scales.tolist()} do not match the input rank")
    if np.any(scales <= 0):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"non-positive scales {scales.tolist()}")
    return tuple(int(np.floor(_f32(d) * _f32(s))) for d, s in zip(in_dims, scales))


def _check_mode(ctx: LowerContext, mode: str, allow_cubic: bool = False) -> str:
    if mode in ("linear", "bilinear"):
        return "linear"
    if mode == "nearest" or (mode == "cubic" and allow_cubic):
        return mode
    raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"mode '{mode}'")


# --- weight-matrix resizes (cubic, antialias, other linear modes) -------------------------------

def _keys_cubic(t: np.ndarray, a: float) -> np.ndarray:
    """The cubic convolution kernel with coefficient ``a`` (ONNX cubic_coeff_a)."""
    t = np.abs(t)
    t2, t3 = t * t, t * t * t
    near = (a + 2) * t3 - (a + 3) * t2 + 1
    far = a * t3 - 5 * a * t2 + 8 * a * t - 4 * a
    return np.where(t <= 1, near, np.where(t < 2, far, 0.0))


def interpolation_matrix(in_len: int, coords: np.ndarray, mode: str, cubic_a: float = -0.75,
                         exclude_outside: bool = False, antialias_scale: float | None = None) -> np.ndarray:
    """(out, in) float64 weights of ONNX linear/cubic interpolation at source ``coords``.

    Follows the ONNX reference: taps ``base + i`` with ``base = ceil(c) - 1`` (ratio in
    (0, 1]) clamped to the edge; with antialias the kernel is stretched by 1 / min(scale, 1)
    and normalized; exclude_outside drops out-of-range taps and renormalizes.
    """
    support = 1.0 if mode == "linear" else 2.0
    s = 1.0 if antialias_scale is None else min(float(antialias_scale), 1.0)
    start = int(np.floor(-support / s)) + 1
    taps = np.arange(start, 2 - start)
    coords = np.asarray(coords, np.float64)
    base = np.ceil(coords) - 1
    args = (taps[None, :] - (coords - base)[:, None]) * s
    w = np.clip(1 - np.abs(args), 0, 1) if mode == "linear" else _keys_cubic(args, cubic_a)
    if antialias_scale is not None:
        w = w / w.sum(axis=1, keepdims=True)
    idx = base.astype(np.int64)[:, None] + taps[None, :]
    if exclude_outside:
        w = np.where((idx < 0) | (idx >= in_len), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w = w / np.where(total == 0, 1.0, total)
    m = np.zeros((len(coords), in_len), np.float64)
    rows = np.repeat(np.arange(len(coords)), len(taps))
    np.add.at(m, (rows, np.clip(idx, 0, in_len - 1).ravel()), w.ravel())
    return m


def crop_coords(out_len: int, in_len: int, start: float, end: float) -> tuple[np.ndarray, np.ndarray] | None:
    """tf_crop_and_resize source coordinates and extrapolation mask (ONNX Runtime's float32 order).

    None when float32 and float64 disagree on which outputs are extrapolated.
    """
    def coords(dtype: type) -> np.ndarray:
        x = np.arange(out_len, dtype=dtype)
        st, en, li = dtype(start), dtype(end), dtype(in_len - 1)
        if out_len == 1:
            return np.full(out_len, dtype(0.5) * (st + en) * li, dtype)
        return st * li + x * (en - st) * li / dtype(out_len - 1)

    c32, c64 = coords(_f32), coords(np.float64)
    mask32 = (c32 < 0) | (c32 > in_len - 1)
    mask64 = (c64 < 0) | (c64 > in_len - 1)
    if not np.array_equal(mask32, mask64):
        return None
    return c32.astype(np.float64), mask32


def _emit_matrix_resize(ctx: LowerContext, mats: list[tuple[int, np.ndarray, np.ndarray | None]]) -> None:
    """Input 0 resized by a (out, in) matrix (plus optional bias) per axis, into output 0."""
    x = ctx.input(0)
    if x.dtype != np.float32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"{ctx.node.attr('mode')} resize of a {x.dtype} tensor "
                                                 "(float32 only)")
    out = ctx.output(0)
    rank = x.rank
    steps = [(a, m, b) for a, m, b in mats
             if b is not None or m.shape[0] != m.shape[1] or not np.array_equal(m, np.eye(m.shape[0]))]
    if not steps:
        ctx.reshape(x, out.shape, out=out)
        return
    y = x
    for i, (axis, m, bias) in enumerate(steps):
        last = i == len(steps) - 1
        perm = list(range(rank))
        perm[axis], perm[-1] = perm[-1], perm[axis]
        h = y if axis == rank - 1 else ctx.transpose(y, tuple(perm))
        shape = h.shape[:-1] + (m.shape[0],)
        weights = ctx.new_const(m.astype(_f32), hint="resize_weights")
        b = None if bias is None else ctx.new_const(bias.astype(_f32), hint="resize_bias")
        h = ctx.emit1("FULLY_CONNECTED", [h, weights, b], shape, _f32, "interpolated",
                      out if last and axis == rank - 1 else None, fusedActivationFunction="NONE",
                      weightsFormat="DEFAULT", keepNumDims=True)
        y = h if axis == rank - 1 else ctx.transpose(h, tuple(perm), out=out if last else None)


# zero_size_inputs: empty roi / scales are the usual placeholders for absent inputs.
@lowering("Resize", since=10, zero_size_inputs=True)
def lower_resize(node: NodeView, ctx: LowerContext) -> None:
    """Resize (opset 10+) -> RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR, GATHERs for nearest, or
    per-axis weight matrices (FULLY_CONNECTED) for cubic, antialias and other linear modes."""
    x = ctx.input(0)
    rank = x.rank
    if 0 in x.shape:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "resizing a zero-sized tensor")
    if node.opset < 11:
        mode = _check_mode(ctx, node.attr("mode", "nearest"))
        if ctx.const(1) is None:
            raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, _RUNTIME_SCALES)
        scales = ctx.require_const(1, "scales").astype(_f32)
        dims = _scales_to_dims(ctx, scales, x.shape)
        _emit_resize(ctx, mode, "asymmetric", "simple", scales.tolist(), dims)
        return
    mode = _check_mode(ctx, node.attr("mode", "nearest"), allow_cubic=True)
    coord_mode = node.attr("coordinate_transformation_mode", "half_pixel")
    nearest_mode = node.attr("nearest_mode", "round_prefer_floor")
    crop = coord_mode == "tf_crop_and_resize"
    if crop and mode == "nearest":
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "nearest resize with tf_crop_and_resize")
    if not crop and (coord_mode not in _COORD_MODES or (coord_mode == "half_pixel_symmetric" and node.opset < 19)):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"coordinate_transformation_mode '{coord_mode}'")
    if nearest_mode not in _NEAREST_MODES[:4]:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"nearest_mode '{nearest_mode}'")
    axes = [int(a) % rank for a in node.attr("axes", list(range(rank)))]
    if node.opset < 18:
        axes = list(range(rank))
    policy = node.attr("keep_aspect_ratio_policy", "stretch") if node.opset >= 18 else "stretch"
    if policy not in ("stretch", "not_larger", "not_smaller"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"keep_aspect_ratio_policy '{policy}'")
    scales_in = ctx.const(2) if ctx.has_input(2) else None
    if ctx.has_input(2) and scales_in is None and ctx.input(2).size != 0:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, _RUNTIME_SCALES)
    scales_full = [1.0] * rank
    exact: list[tuple[Fraction, ...]] = [()] * rank
    from_scales = scales_in is not None and scales_in.size > 0
    if from_scales:
        if scales_in.size != len(axes):
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "scales do not match the resized axes")
        for a, sc in zip(axes, scales_in.astype(_f32).tolist()):
            scales_full[a] = sc
        dims = _scales_to_dims(ctx, np.array(scales_full, _f32), x.shape)
        for a in range(rank):
            if coord_mode in ("align_corners", "tf_crop_and_resize") \
                    and float(np.float64(x.shape[a]) * np.float64(_f32(scales_full[a]))) != dims[a]:
                # These modes divide by the resized length: with a fractional in * scale the ONNX
                # reference uses the fraction, ONNX Runtime the integer output length.
                raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                               f"{coord_mode} with scale {scales_full[a]} on length {x.shape[a]} (a fractional "
                               "resized length) is implementation-defined")
    else:
        dims, scales_full, exact = _dims_from_sizes(ctx, axes, policy)
    antialias = node.opset >= 18 and bool(int(node.attr("antialias", 0))) and mode != "nearest"
    if mode == "nearest" or (mode == "linear" and not crop and not (antialias and min(scales_full) < 1.0)):
        if mode == "linear" and _linear_litert_mode(ctx, coord_mode, scales_full, dims) is None:
            _matrix_resize(ctx, node, mode, coord_mode, scales_full, dims, from_scales, axes, False)
            return
        _emit_resize(ctx, mode, coord_mode, nearest_mode, scales_full, dims, exact)
        return
    _matrix_resize(ctx, node, mode, coord_mode, scales_full, dims, from_scales, axes, antialias)


_RUNTIME_SCALES = ("the scales input must be a constant: the coordinate transformation uses the scale "
                   "value itself, which the static output shape does not determine")


def _dims_from_sizes(ctx: LowerContext, axes: list[int], policy: str
                     ) -> tuple[tuple[int, ...], list[float], list[tuple[Fraction, ...]]]:
    """Output dims, per-axis float32 scales and exact ratios from the ``sizes`` input.

    A run-time ``sizes`` is read off the static output shape: with ``stretch`` the sizes are
    the output lengths; with ``not_larger`` / ``not_smaller`` the common scale is out/in of
    the limiting axis, which must be the same for every axis consistent with the shape.
    """
    x = ctx.input(0)
    rank = x.rank
    if not ctx.has_input(3):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "Resize needs scales or sizes")
    sizes_c = ctx.const(3)
    declared = ctx.out_shape(0)
    if sizes_c is None:
        if declared is None or len(declared) != rank or ctx.input(3).shape != (len(axes),):
            raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                           "sizes must be a constant when the output shape is not known")
        sizes = [int(declared[a]) for a in axes]
    else:
        sizes = [int(v) for v in sizes_c.reshape(-1)]
    if len(sizes) != len(axes) or min(sizes) < 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"sizes {sizes} do not match the resized axes")
    dims_l = list(x.shape)
    scales_full = [1.0] * rank
    exact: list[tuple[Fraction, ...]] = [()] * rank
    # ONNX Runtime's scale for a sizes input is out/in in float32.
    ratios = [(_f32(sz) / _f32(x.shape[a]), Fraction(sz, x.shape[a])) for a, sz in zip(axes, sizes)]
    if policy == "stretch":
        for a, sz, (r, q) in zip(axes, sizes, ratios):
            dims_l[a], scales_full[a], exact[a] = sz, float(r), (q,)
        return tuple(dims_l), scales_full, exact

    def dims_for(r: np.float32) -> list[int]:
        return [int(np.floor(np.float64(_f32(r) * _f32(x.shape[a])) + 0.5)) for a in axes]

    if sizes_c is not None:
        r, q = min(ratios) if policy == "not_larger" else max(ratios)
    else:
        # The limiting axis keeps its size: the scale is out/in of some axis, consistent with all.
        found = {q: r for r, q in ratios if dims_for(r) == sizes}
        if len(found) != 1:
            raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                           f"run-time sizes with keep_aspect_ratio_policy '{policy}': the output shape "
                           f"{list(declared)} does not determine the scale")
        (q, r), = found.items()
    for a, d in zip(axes, dims_for(r)):
        dims_l[a], scales_full[a], exact[a] = d, float(r), (q,)
    return tuple(dims_l), scales_full, exact


def _linear_litert_mode(ctx: LowerContext, coord_mode: str, scales: list[float], dims: tuple[int, ...]
                        ) -> tuple[bool, bool] | None:
    """The RESIZE_BILINEAR option pair reproducing a plain linear resize, or None."""
    x = ctx.input(0)
    if x.rank not in (3, 4) or any(dims[a] != x.shape[a] or scales[a] != 1.0 for a in (0, 1)):
        return (False, False)  # not ours to decide: _emit_resize reports these
    axes = [(x.shape[a], dims[a], scales[a]) for a in range(2, x.rank)]
    want = [onnx_linear_matrix(i, o, sc, coord_mode) for i, o, sc in axes]
    return next((m for m in _LITERT_MODES if all(
        np.allclose(w, litert_linear_matrix(i, o, *m), rtol=0, atol=_WEIGHT_TOL)
        for w, (i, o, _) in zip(want, axes))), None)


def _matrix_resize(ctx: LowerContext, node: NodeView, mode: str, coord_mode: str, scales: list[float],
                   dims: tuple[int, ...], from_scales: bool, axes: list[int], antialias: bool) -> None:
    """Linear/cubic resize as one constant interpolation matrix per resized axis."""
    x = ctx.input(0)
    rank = x.rank
    declared = ctx.out_shape(0)
    if declared is not None and tuple(declared) != tuple(dims):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"declared output shape {list(declared)} differs from the computed {list(dims)}")
    cubic_a = float(node.attr("cubic_coeff_a", -0.75))
    exclude_outside = bool(int(node.attr("exclude_outside", 0)))
    extrapolation = float(node.attr("extrapolation_value", 0.0))
    roi = None
    if coord_mode == "tf_crop_and_resize":
        if not ctx.has_input(1) or ctx.const(1) is None:
            raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, "tf_crop_and_resize needs a constant roi")
        roi_in = np.asarray(ctx.const(1), np.float64).reshape(-1)
        if roi_in.size != 2 * len(axes):
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"roi has {roi_in.size} values for {len(axes)} axes")
        roi = {a: (roi_in[i], roi_in[i + len(axes)]) for i, a in enumerate(axes)}
    if any(dims[a] != x.shape[a] or scales[a] != 1.0 for a in range(min(rank, 2))):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "resizing the batch or channel axis is not supported")
    mats = []
    for a in range(rank):
        in_len, out_len, sc = x.shape[a], dims[a], scales[a]
        bias = None
        if roi is not None and a in roi:
            found = crop_coords(out_len, in_len, *roi[a])
            if found is None:
                raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                               "tf_crop_and_resize coordinates on the crop border are rounding-sensitive")
            coords, outside = found
        else:
            if in_len == out_len and sc == 1.0:
                continue
            if mode == "cubic" and coord_mode == "pytorch_half_pixel" and out_len == 1:
                # The ONNX reference samples at -0.5, ONNX Runtime at 0: ambiguous for cubic taps.
                raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                               "cubic pytorch_half_pixel resize to length 1 is implementation-defined")
            coords = onnx_coords(out_len, in_len, sc, coord_mode).astype(np.float64)
            outside = np.zeros(out_len, bool)
        m = interpolation_matrix(in_len, coords, mode, cubic_a, exclude_outside, sc if antialias else None)
        if outside.any():
            m[outside] = 0.0
            bias = np.where(outside, extrapolation, 0.0)
        mats.append((a, m, bias))
    _emit_matrix_resize(ctx, mats)


@lowering("Upsample", since=7, until=9)
def lower_upsample(node: NodeView, ctx: LowerContext) -> None:
    """Upsample (opsets 7-9; asymmetric coordinates) -> RESIZE_* or GATHERs."""
    x = ctx.input(0)
    mode = _check_mode(ctx, node.attr("mode", "nearest"))
    if node.opset < 9:
        scales = np.array(node.attr("scales", []), _f32)
    else:
        scales = ctx.require_const(1, "scales").astype(_f32)
    if np.any(scales < 1):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "Upsample scales must be >= 1")
    dims = _scales_to_dims(ctx, scales, x.shape)
    _emit_resize(ctx, mode, "asymmetric", "simple", scales.tolist(), dims)


def _block_size(node: NodeView, ctx: LowerContext) -> int:
    b = int(node.attr("blocksize", 0))
    if b < 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"blocksize {b}")
    if ctx.input(0).rank != 4:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "only 4-D inputs are supported")
    return b


# ONNX Runtime has no int32/int64 kernels for these ops, so those cannot be verified.
_SPACE_DEPTH_DTYPES = ("float32", "int8", "uint8")
_SPACE_DEPTH_ONNX_DTYPES = ("float32", "float16", "float64", "bfloat16", "int8", "int16", "int32", "int64",
                            "uint8", "uint16", "uint32", "uint64", "bool")


@lowering("DepthToSpace", since=1, onnx_dtypes=_SPACE_DEPTH_ONNX_DTYPES, dtypes=_SPACE_DEPTH_DTYPES,
          verified=_SPACE_DEPTH_DTYPES)
def lower_depth_to_space(node: NodeView, ctx: LowerContext) -> None:
    """DepthToSpace: DCR -> DEPTH_TO_SPACE; CRD -> channel regrouping (RESHAPE/TRANSPOSE) + DEPTH_TO_SPACE."""
    b = _block_size(node, ctx)
    mode = node.attr("mode", "DCR") if node.opset >= 11 else "DCR"
    if mode not in ("DCR", "CRD"):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"mode '{mode}'")
    x = ctx.input(0)
    n, c, h, w = x.shape
    if c % (b * b):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"channels {c} not divisible by blocksize^2")
    xl = ctx.to_channels_last(x)
    if mode == "CRD":
        # CRD reads channel c' * b*b + k where DCR reads k * C' + c': swap the two channel factors.
        grouped = ctx.reshape(xl, (n, h, w, c // (b * b), b * b))
        xl = ctx.reshape(ctx.transpose(grouped, (0, 1, 2, 4, 3)), (n, h, w, c))
    y = ctx.emit1("DEPTH_TO_SPACE", [xl], (n, h * b, w * b, c // (b * b)), x.dtype, "d2s", blockSize=b)
    ctx.from_channels_last(y, out=ctx.output(0))


@lowering("SpaceToDepth", since=1, onnx_dtypes=_SPACE_DEPTH_ONNX_DTYPES, dtypes=_SPACE_DEPTH_DTYPES,
          verified=_SPACE_DEPTH_DTYPES)
def lower_space_to_depth(node: NodeView, ctx: LowerContext) -> None:
    """SpaceToDepth -> SPACE_TO_DEPTH (same (block row, block col, channel) depth order)."""
    b = _block_size(node, ctx)
    x = ctx.input(0)
    n, c, h, w = x.shape
    if h % b or w % b:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"spatial size {h}x{w} not divisible by blocksize")
    xl = ctx.to_channels_last(x)
    y = ctx.emit1("SPACE_TO_DEPTH", [xl], (n, h // b, w // b, c * b * b), x.dtype, "s2d", blockSize=b)
    ctx.from_channels_last(y, out=ctx.output(0))
