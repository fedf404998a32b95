"""Lowerings of the pool family: MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, LRN.

LiteRT pools only know SAME and VALID padding, no dilation and no ceil mode, and only 2-D.
Every ONNX variant is mapped onto them exactly:

- The output size follows ONNX Runtime (ceil mode drops a last window that would start in
  the end padding) and must agree with the shape ONNX shape inference declared; where the
  two disagree the model is ambiguous and the node is rejected.
- Explicit pads equal to what LiteRT's SAME computes become SAME (max pool, and average
  pool that excludes padding from the count). Otherwise the input is padded explicitly
  (the dtype's lowest value for max, zero for average) up to exactly the size the output
  windows cover, and a VALID pool runs on it. Average pool then multiplies by a constant
  per-position factor ``window / count`` whenever ONNX divides by another count.
- Dilated max pool is the maximum of strided slices, one per kernel tap; dilated average
  pool is their sum times a constant per-position 1 / (number of counted taps).
- 1-D pools run as 2-D pools over a height-1 image. 3-D pools are separable: a 2-D pool over
  (H, W) on an (N*D, H, W, C) view, then a 2-D pool over D on an (N, D, Ho*Wo, C) view. That
  is exact for max (max of maxes) and for average (each pass divides by its own per-axis count;
  ONNX's count is the product of the per-axis counts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering


@dataclass(frozen=True)
class PoolAxis:
    """Pooling geometry along one spatial axis, in ONNX Runtime's terms."""

    size: int  # input length
    kernel: int
    stride: int
    dilation: int
    pad_begin: int
    pad_end: int  # the end padding ONNX declares (or auto_pad computes)
    out: int

    @property
    def span(self) -> int:
        """Effective (dilated) kernel extent."""
        return (self.kernel - 1) * self.dilation + 1

    @property
    def covered(self) -> int:
        """Padded length the output windows exactly cover."""
        return (self.out - 1) * self.stride + self.span

    @property
    def end_fill(self) -> int:
        """Padding needed after the input so the last window fits (may be negative)."""
        return self.covered - self.size - self.pad_begin

    def tflite_same_begin(self) -> int | None:
        """LiteRT's SAME begin padding for this axis, or None if SAME gives another size."""
        if self.out != -(-self.size // self.stride):
            return None
        return max((self.out - 1) * self.stride + self.span - self.size, 0) // 2

    def counts(self, include_pad: bool) -> np.ndarray:
        """How many elements ONNX Runtime divides each window's sum by (average pool)."""
        if self.dilation > 1:
            # Only the kernel taps count (ONNX reference): those inside the input, or inside the
            # declared padding with count_include_pad.
            start = np.arange(self.out) * self.stride - self.pad_begin
            taps = start[:, None] + np.arange(self.kernel)[None, :] * self.dilation
            lo, hi = (-self.pad_begin, self.size + self.pad_end) if include_pad else (0, self.size)
            return ((taps >= lo) & (taps < hi)).sum(axis=1).astype(np.float64)
        start = np.arange(self.out) * self.stride - self.pad_begin
        if include_pad:
            # Windows are clipped to the declared padding, not to the ceil-mode extension.
            end = np.minimum(start + self.span, self.size + self.pad_end)
            return (end - start).astype(np.float64)
        end = np.minimum(start + self.span, self.size)
        return (end - np.maximum(start, 0)).astype(np.float64)


def _out_size(size: int, span: int, stride: int, pad_total: int, pad_begin: int, ceil_mode: bool) -> int:
    """ONNX Runtime's pooled length (ceil mode drops a window starting in the end padding)."""
    num = size + pad_total - span
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def pool_geometry(node: NodeView, ctx: LowerContext, spatial: tuple[int, ...]) -> list[PoolAxis]:
    """Per-axis pooling geometry from the node's attributes; rejects inconsistent shapes."""
    n = len(spatial)
    kernel = [int(k) for k in node.attr("kernel_shape", [])]
    if len(kernel) != n:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"kernel_shape {kernel} does not match {n} spatial axes")
    strides = [int(s) for s in node.attr("strides", [1] * n)]
    dilations = [int(d) for d in node.attr("dilations", [1] * n)]
    pads = [int(p) for p in node.attr("pads", [0] * 2 * n)]
    auto_pad = node.attr("auto_pad", "NOTSET")
    ceil_mode = bool(node.attr("ceil_mode", 0))
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "strides/dilations/pads do not match the kernel rank")
    if min(kernel + strides + dilations) < 1 or min(pads) < 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "kernel, strides and dilations must be >= 1, pads >= 0")
    axes = []
    for i, size in enumerate(spatial):
        k, s, d = kernel[i], strides[i], dilations[i]
        span = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # ONNX Runtime sizes SAME padding with the undilated kernel.
            total = (-(-size // s) - 1) * s + k - size
            if total < 0:
                raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                               "auto_pad SAME with a kernel smaller than the stride is not supported")
            begin = total // 2 if auto_pad == "SAME_UPPER" else (total + 1) // 2
            end = total - begin
        elif auto_pad == "VALID":
            begin = end = 0
        elif auto_pad == "NOTSET":
            begin, end = pads[i], pads[i + n]
        else:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"auto_pad '{auto_pad}'")
        if begin >= span or end >= span:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "pads must be smaller than the kernel")
        out = _out_size(size, span, s, begin + end, begin, ceil_mode)
        if out < 1:
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "the pooled output would be empty")
        axes.append(PoolAxis(size, k, s, d, begin, end, out))
    declared = ctx.out_shape(0)
    if declared is not None and tuple(declared[2:]) != tuple(a.out for a in axes):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"the declared output size {list(declared[2:])} differs from ONNX Runtime's "
                       f"{[a.out for a in axes]} (ceil_mode/auto_pad corner case)")
    return axes


def _check_pool_node(node: NodeView, ctx: LowerContext) -> tuple[int, ...]:
    """Common checks; returns the spatial input shape (1-D, 2-D or 3-D pools)."""
    shape = ctx.in_shape(0)
    if len(shape) not in (3, 4, 5):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{len(shape) - 2}-D pooling (1-D, 2-D and 3-D are supported)")
    return tuple(shape[2:])


def _pool3d(ctx: LowerContext, axes: list[PoolAxis], pool2d) -> None:
    """A 3-D pool as a 2-D pool over (H, W) then one over D (``pool2d(x_nhwc, axes_2d)``)."""
    ad, ah, aw = axes
    x = ctx.to_channels_last(ctx.input(0))
    n, d, h, w, c = x.shape
    y = pool2d(ctx.reshape(x, (n * d, h, w, c)), [ah, aw])
    flat = ah.out * aw.out
    y = pool2d(ctx.reshape(y, (n, d, flat, c)), [ad, PoolAxis(flat, 1, 1, 1, 0, 0, flat)])
    y = ctx.reshape(y, (n, ad.out, ah.out, aw.out, c))
    ctx.from_channels_last(y, out=ctx.output(0))


def _to_2d(axes: list[PoolAxis]) -> list[PoolAxis]:
    """1-D geometry as 2-D with a trivial height axis."""
    return axes if len(axes) == 2 else [PoolAxis(1, 1, 1, 1, 0, 0, 1)] + axes


def _nhwc_input(ctx: LowerContext) -> Tensor:
    """The data input channels-last, as a 4-D NHWC tensor."""
    x = ctx.to_channels_last(ctx.input(0))
    if x.rank == 3:
        x = ctx.reshape(x, (x.shape[0], 1, x.shape[1], x.shape[2]))
    return x


def _finish(ctx: LowerContext, y: Tensor, rank: int) -> None:
    """Bring an NHWC result back to the node's rank and ONNX layout."""
    if rank == 3:
        y = ctx.reshape(y, (y.shape[0], y.shape[2], y.shape[3]))
    ctx.from_channels_last(y, out=ctx.output(0))


def _pad(ctx: LowerContext, x: Tensor, axes: list[PoolAxis], value: float | None) -> Tensor:
    """Pad NHWC ``x`` so each axis is exactly as long as its windows cover (PAD or PADV2)."""
    widths = [[0, 0]] + [[a.pad_begin, max(a.end_fill, 0)] for a in axes] + [[0, 0]]
    if not any(b or e for b, e in widths):
        return x
    shape = tuple(d + b + e for d, (b, e) in zip(x.shape, widths))
    paddings = ctx.new_const(np.array(widths, np.int32), hint="paddings")
    if value is None:
        return ctx.emit1("PAD", [x, paddings], shape, x.dtype, "padded")
    fill = ctx.new_const(np.array(value, x.dtype), hint="pad_value")
    return ctx.emit1("PADV2", [x, paddings, fill], shape, x.dtype, "padded")


def _pool2d(ctx: LowerContext, opcode: str, x: Tensor, axes: list[PoolAxis], padding: str) -> Tensor:
    h, w = axes
    shape = (x.shape[0], h.out, w.out, x.shape[3])
    return ctx.emit1(opcode, [x], shape, x.dtype, "pooled", padding=padding, strideH=h.stride, strideW=w.stride,
                     filterHeight=h.span, filterWidth=w.span, fusedActivationFunction="NONE")


def _valid_after_padding_fits(axes: list[PoolAxis]) -> bool:
    """A VALID pool over the padded input yields exactly ``out`` windows on every axis."""
    for a in axes:
        padded = a.size + a.pad_begin + max(a.end_fill, 0)
        if (padded - a.span) // a.stride + 1 != a.out:
            return False
    return True


def _same_fits(axes: list[PoolAxis]) -> bool:
    return all(a.tflite_same_begin() == a.pad_begin for a in axes)


def _reject_indices(node: NodeView, ctx: LowerContext) -> None:
    if len(node.outputs) > 1 and node.outputs[1]:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       "the Indices output of MaxPool has no LiteRT equivalent")


@lowering("MaxPool", since=1)
def lower_max_pool(node: NodeView, ctx: LowerContext) -> None:
    """MaxPool (1-D/2-D) -> MAX_POOL_2D, with PADV2(lowest) for non-SAME pads; dilation via slices."""
    _reject_indices(node, ctx)
    # storage_order only changes the Indices output, which is rejected above.
    spatial = _check_pool_node(node, ctx)
    rank = len(spatial) + 2
    geometry = pool_geometry(node, ctx, spatial)
    if rank == 5:
        _pool3d(ctx, geometry, lambda x, axes: _max_pool_nhwc(ctx, x, axes))
        return
    _finish(ctx, _max_pool_nhwc(ctx, _nhwc_input(ctx), _to_2d(geometry)), rank)


def _max_pool_nhwc(ctx: LowerContext, x: Tensor, axes: list[PoolAxis]) -> Tensor:
    """Max pool of an NHWC tensor with 2-D geometry ``axes``."""
    dilated = any(a.dilation > 1 and a.kernel > 1 for a in axes)
    if not dilated and _same_fits(axes):
        return _pool2d(ctx, "MAX_POOL_2D", x, axes, "SAME")
    if not _valid_after_padding_fits(axes):
        raise ctx.fail(Reason.INTERNAL_ERROR, "pool window arithmetic mismatch")
    lowest = np.finfo(x.dtype).min if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    padded = _pad(ctx, x, axes, lowest)
    return _dilated_taps(ctx, padded, axes, "MAXIMUM") if dilated else \
        _pool2d(ctx, "MAX_POOL_2D", padded, axes, "VALID")


def _dilated_taps(ctx: LowerContext, x: Tensor, axes: list[PoolAxis], combine: str) -> Tensor:
    """MAXIMUM / ADD over kernel taps, each tap a strided slice of the padded NHWC input."""
    h, w = axes
    n, c = x.shape[0], x.shape[3]
    shape = (n, h.out, w.out, c)
    strides = ctx.new_const(np.array([1, h.stride, w.stride, 1], np.int32), hint="strides")
    acc: Tensor | None = None
    for i in range(h.kernel):
        for j in range(w.kernel):
            b = (0, i * h.dilation, j * w.dilation, 0)
            e = (n, b[1] + (h.out - 1) * h.stride + 1, b[2] + (w.out - 1) * w.stride + 1, c)
            tap = ctx.emit1("STRIDED_SLICE", [x, ctx.new_const(np.array(b, np.int32), hint="begin"),
                                              ctx.new_const(np.array(e, np.int32), hint="end"), strides],
                            shape, x.dtype, "tap")
            acc = tap if acc is None else ctx.emit1(combine, [acc, tap], shape, x.dtype, "acc",
                                                    **({"fusedActivationFunction": "NONE"} if combine == "ADD" else {}))
    assert acc is not None
    return acc


@lowering("AveragePool", since=1)
def lower_average_pool(node: NodeView, ctx: LowerContext) -> None:
    """AveragePool (1-D/2-D) -> AVERAGE_POOL_2D SAME, or PAD(0) + VALID (+ MUL count correction)."""
    spatial = _check_pool_node(node, ctx)
    rank = len(spatial) + 2
    geometry = pool_geometry(node, ctx, spatial)
    include_pad = bool(node.attr("count_include_pad", 0))
    if rank == 5:
        _pool3d(ctx, geometry, lambda x, axes: _avg_pool_nhwc(ctx, x, axes, include_pad))
        return
    _finish(ctx, _avg_pool_nhwc(ctx, _nhwc_input(ctx), _to_2d(geometry), include_pad), rank)


def _avg_pool_nhwc(ctx: LowerContext, x: Tensor, axes: list[PoolAxis], include_pad: bool) -> Tensor:
    """Average pool of an NHWC tensor with 2-D geometry ``axes`` (ONNX counts)."""
    dilated = any(a.dilation > 1 and a.kernel > 1 for a in axes)
    if not dilated and not include_pad and _same_fits(axes):
        # LiteRT SAME averages over the window's in-bounds elements: count_include_pad=0.
        return _pool2d(ctx, "AVERAGE_POOL_2D", x, axes, "SAME")
    if not _valid_after_padding_fits(axes):
        raise ctx.fail(Reason.INTERNAL_ERROR, "pool window arithmetic mismatch")
    h, w = axes
    padded = _pad(ctx, x, axes, None)
    if dilated:
        # Sum of the taps, divided by ONNX's count of taps.
        y = _dilated_taps(ctx, padded, axes, "ADD")
        factor = np.outer(1.0 / h.counts(include_pad), 1.0 / w.counts(include_pad))
    else:
        y = _pool2d(ctx, "AVERAGE_POOL_2D", padded, axes, "VALID")
        # VALID divides every window by kernel size; ONNX divides by its own count.
        factor = np.outer(h.span / h.counts(include_pad), w.span / w.counts(include_pad))
    if not np.allclose(factor, 1.0, rtol=0, atol=0):
        corr = ctx.new_const(factor.reshape(1, h.out, w.out, 1).astype(x.dtype), hint="count_correction")
        y = ctx.emit1("MUL", [y, corr], y.shape, y.dtype, "avg", fusedActivationFunction="NONE")
    return y


def _global_reduce(node: NodeView, ctx: LowerContext, opcode: str) -> None:
    x = ctx.input(0)
    if x.rank < 3 or x.rank > 5:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"rank {x.rank} input")
    xl = ctx.to_channels_last(x)
    spatial_axes = np.arange(1, x.rank - 1, dtype=np.int32)
    shape = (xl.shape[0],) + (1,) * (x.rank - 2) + (xl.shape[-1],)
    y = ctx.emit1(opcode, [xl, ctx.new_const(spatial_axes, hint="axes")], shape, x.dtype, "reduced",
                  keepDims=True)
    ctx.from_channels_last(y, out=ctx.output(0))


@lowering("GlobalAveragePool", since=1)
def lower_global_average_pool(node: NodeView, ctx: LowerContext) -> None:
    """GlobalAveragePool -> MEAN over the spatial axes (channels-last, keep dims)."""
    _global_reduce(node, ctx, "MEAN")


@lowering("GlobalMaxPool", since=1)
def lower_global_max_pool(node: NodeView, ctx: LowerContext) -> None:
    """GlobalMaxPool -> REDUCE_MAX over the spatial axes (channels-last, keep dims)."""
    _global_reduce(node, ctx, "REDUCE_MAX")


@lowering("LRN", since=1)
def lower_lrn(node: NodeView, ctx: LowerContext) -> None:
    """LRN (4-D, odd size) -> LOCAL_RESPONSE_NORMALIZATION in channels-last.

    ONNX: y = x / (bias + alpha / size * sum_window(x^2)) ^ beta over channels
    [c - (size-1)/2, c + (size-1)/2]. LiteRT sums over [c - radius, c + radius] and multiplies
    the sum by its alpha directly, so radius = (size - 1) / 2 and alpha_litert = alpha / size.
    An even size has an asymmetric window LiteRT cannot express; ONNX Runtime rejects even
    sizes and non-4-D inputs too, so those cannot be verified and are refused.
    """
    size = int(node.attr("size", 0))
    alpha = float(node.attr("alpha", 1e-4))
    beta = float(node.attr("beta", 0.75))
    bias = float(node.attr("bias", 1.0))
    if size < 1 or size % 2 == 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"LRN size {size}: only odd sizes (a symmetric channel window) are supported")
    x = ctx.input(0)
    if x.rank != 4:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"LRN on a rank-{x.rank} input (only 4-D is supported)")
    xl = ctx.to_channels_last(x)
    y = ctx.emit1("LOCAL_RESPONSE_NORMALIZATION", [xl], xl.shape, xl.dtype, "lrn",
                  radius=(size - 1) // 2, bias=bias, alpha=alpha / size, beta=beta)
    ctx.from_channels_last(y, out=ctx.output(0))
