"""Convolutions: Conv (1D/2D/3D, grouped, depthwise) and ConvTranspose (1D/2D/3D, grouped).

Everything is emitted channels-last: the data input goes through ``ctx.to_channels_last``,
the LiteRT op runs on NWC/NHWC/NDHWC tensors and the result comes back with
``ctx.from_channels_last``. Weights are rearranged with numpy at conversion time.

1-D convolutions run as 2-D ones on an (N, 1, L, C) view. LiteRT only knows SAME and VALID
padding, so any other ONNX padding becomes an explicit PAD before a VALID convolution
(Conv), or a VALID transposed convolution whose full output is cropped with SLICE
(ConvTranspose).

Weights may also be computed at run time (graph inputs): the filter is then rearranged with
TRANSPOSE/RESHAPE ops instead of numpy. LiteRT's builtin CONV_2D, DEPTHWISE_CONV_2D,
TRANSPOSE_CONV and CONV_3D kernels accept non-constant filters (XNNPACK declines such ops and
leaves them to the builtin kernels).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView
from ..registry import lowering

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")

# LiteRT's CONV_2D runs grouped convolutions natively (filter input channels = C_in / group):
# checked with the builtin kernels and with the default XNNPACK delegate (tests/test_ops_conv.py
# runs both). LiteRT versions this feature as CONV_2D version 6. When False, a grouped conv is
# split per group (SPLIT + CONV_2D per group + CONCATENATION), which every runtime accepts.
_NATIVE_GROUPED_CONV2D = True


# -- shape arithmetic (pure) -------------------------------------------------------------------

def effective_kernel(kernel: int, dilation: int) -> int:
    """Extent of a dilated kernel."""
    return (kernel - 1) * dilation + 1


def conv_out_size(in_size: int, kernel: int, stride: int, dilation: int, begin: int, end: int) -> int:
    """ONNX/TFLite output length of a convolution with explicit padding."""
    return (in_size + begin + end - effective_kernel(kernel, dilation)) // stride + 1


def same_padding(in_size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int, int]:
    """(output size, total padding, TFLite SAME's padding before) for one spatial dim."""
    out = -(-in_size // stride)
    total = max(0, (out - 1) * stride + effective_kernel(kernel, dilation) - in_size)
    return out, total, total // 2


def conv_pads(auto_pad: str, pads: list[int] | None, in_sizes: list[int], kernel: list[int],
              strides: list[int], dilations: list[int]) -> list[tuple[int, int]]:
    """Resolved (begin, end) padding per spatial dim of an ONNX Conv."""
    n = len(in_sizes)
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        result = []
        for i in range(n):
            _, total, _ = same_padding(in_sizes[i], kernel[i], strides[i], dilations[i])
            small, big = total // 2, total - total // 2
            # SAME_UPPER puts the odd pixel at the end (like TFLite SAME), SAME_LOWER at the start.
            result.append((small, big) if auto_pad == "SAME_UPPER" else (big, small))
        return result
    if auto_pad == "VALID" or not pads:
        return [(0, 0)] * n
    return [(int(pads[i]), int(pads[i + n])) for i in range(n)]


def tflite_padding(in_sizes: list[int], kernel: list[int], strides: list[int], dilations: list[int],
                   pads: list[tuple[int, int]]) -> str | None:
    """'SAME' or 'VALID' when LiteRT's padding mode computes exactly ``pads``, else None."""
    outs = [conv_out_size(in_sizes[i], kernel[i], strides[i], dilations[i], *pads[i]) for i in range(len(pads))]
    valid = all(p[0] == 0 and outs[i] == conv_out_size(in_sizes[i], kernel[i], strides[i], dilations[i], 0, 0)
                for i, p in enumerate(pads))
    if valid:
        return "VALID"
    same = True
    for i, (begin, _) in enumerate(pads):
        out, _, before = same_padding(in_sizes[i], kernel[i], strides[i], dilations[i])
        # Same first window and same output count: the windows coincide and both read zeros outside.
        same = same and begin == before and outs[i] == out
    return "SAME" if same else None


@dataclass(frozen=True)
class TransposeGeometry:
    """Per-dim plan for a ConvTranspose: LiteRT output length and the crop window in it."""

    full: int     # length to request from a VALID TRANSPOSE_CONV (covers start + out)
    start: int    # resolved pads[begin]: the first element of that result ONNX keeps
    out: int      # ONNX output length


def transpose_geometry(auto_pad: str, pads: list[int] | None, output_shape: list[int] | None,
                       output_padding: list[int], in_sizes: list[int], kernel: list[int],
                       strides: list[int]) -> list[TransposeGeometry]:
    """Resolve ONNX ConvTranspose padding (kernel already dilated) into crop windows."""
    n = len(in_sizes)
    result = []
    for i in range(n):
        s, k, size, adj = strides[i], kernel[i], in_sizes[i], output_padding[i]
        full = s * (size - 1) + k
        if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # Like ONNX Runtime, never pad negatively: an output_shape beyond the full result is
            # filled with the bias at the end, and auto_pad SAME_* with a kernel shorter than the
            # stride gives an output shorter than in * stride (ONNX shape inference agrees).
            target = int(output_shape[i]) if output_shape is not None else size * s
            total = max(0, full + adj - target)
            out = target if output_shape is not None else full + adj - total
            # ONNX: SAME_UPPER puts the extra pad at the end, everything else at the start.
            begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        else:
            begin, end = (0, 0) if auto_pad == "VALID" or not pads else (int(pads[i]), int(pads[i + n]))
            out = full + adj - begin - end
        result.append(TransposeGeometry(max(full, begin + out), begin, out))
    return result


def transpose_same_ok(geo: list[TransposeGeometry], in_sizes: list[int], kernel: list[int],
                      strides: list[int]) -> bool:
    """True when LiteRT's SAME transposed convolution yields exactly the ONNX output window.

    With SAME, LiteRT treats ``out`` as the input of a SAME forward convolution: it needs
    ceil(out / stride) == in and then drops the first max(0, total) // 2 elements.
    """
    for g, size, k, s in zip(geo, in_sizes, kernel, strides):
        total = (size - 1) * s + k - g.out
        if -(-g.out // s) != size or g.start != max(0, total) // 2:
            return False
    return True


# -- weight rearrangement (pure) ---------------------------------------------------------------

# Weights are ONNX-layout: a numpy array (constant) or an IR tensor computed at run time.

def _wshape(w: np.ndarray | Tensor) -> tuple[int, ...]:
    return tuple(int(d) for d in w.shape)


def _filter(ctx: LowerContext, w: np.ndarray | Tensor, perm: tuple[int, ...],
            before: tuple[int, ...] | None = None, after: tuple[int, ...] | None = None) -> Tensor:
    """Weights (optionally reshaped to ``before``) transposed by ``perm`` (then reshaped to ``after``).

    Constant weights are rearranged with numpy; run-time weights with RESHAPE/TRANSPOSE ops.
    """
    if isinstance(w, np.ndarray):
        a = w if before is None else w.reshape(before)
        a = np.ascontiguousarray(a.transpose(perm))
        return ctx.new_const(a if after is None else a.reshape(after), hint="filter")
    t = w if before is None else ctx.reshape(w, before)
    t = ctx.transpose(t, perm)
    return t if after is None else ctx.reshape(t, after)


def _take(ctx: LowerContext, w: np.ndarray | Tensor, start: int, stop: int) -> np.ndarray | Tensor:
    """Weights ``w[start:stop]`` along axis 0 (SLICE for run-time weights)."""
    if isinstance(w, np.ndarray):
        return w[start:stop]
    shape = _wshape(w)
    begin = np.zeros(len(shape), np.int32)
    begin[0] = start
    size = np.array((stop - start, *shape[1:]), np.int32)
    return ctx.emit1("SLICE", [w, ctx.new_const(begin, hint="begin"), ctx.new_const(size, hint="size")],
                     tuple(int(v) for v in size), w.dtype, "w_part")


def _insert_axis2(ctx: LowerContext, w: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """(A, B, k) weights as (A, B, 1, k) (1-D convolutions run as 2-D ones)."""
    if isinstance(w, np.ndarray):
        return w[:, :, None, :]
    a, b, k = _wshape(w)
    return ctx.reshape(w, (a, b, 1, k))


def _dilate_runtime(ctx: LowerContext, w: Tensor, dilations: list[int]) -> Tensor:
    """:func:`dilate_kernel` with ops. Per dilated spatial axis, on a 3-D (outer, k, inner) view:
    RESHAPE to (outer * k, 1, inner), PAD the middle axis with d - 1 zeros, RESHAPE to
    (outer, k * d, inner) and SLICE off the zeros after the last tap."""
    for i, d in enumerate(dilations):
        if d == 1:
            continue
        axis = 2 + i
        shape = _wshape(w)
        outer, k, inner = int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:]))
        flat = ctx.reshape(w, (outer * k, 1, inner))
        widths = np.array([[0, 0], [0, d - 1], [0, 0]], np.int32)
        padded = ctx.emit1("PAD", [flat, ctx.new_const(widths, hint="dilate_pads")], (outer * k, d, inner),
                           w.dtype, "w_dilated")
        merged = ctx.reshape(padded, (outer, k * d, inner))
        span = effective_kernel(k, d)
        cut = ctx.emit1("SLICE", [merged, ctx.new_const(np.zeros(3, np.int32), hint="begin"),
                                  ctx.new_const(np.array([outer, span, inner], np.int32), hint="size")],
                        (outer, span, inner), w.dtype, "w_dilated")
        w = ctx.reshape(cut, shape[:axis] + (span,) + shape[axis + 1:])
    return w


def _weights(ctx: LowerContext, x: Tensor) -> np.ndarray | Tensor:
    """Input 1 as a numpy array when constant, else the run-time tensor (same dtype as x)."""
    value = ctx.const(1)
    if value is not None:
        return np.asarray(value, x.dtype)
    w = ctx.input(1)
    if w.dtype != x.dtype:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"run-time weights of dtype {w.dtype} with a {x.dtype} input")
    return w


def dilate_kernel(w: np.ndarray, dilations: list[int]) -> np.ndarray:
    """Insert zeros between kernel taps so a dilated kernel becomes a dense one (spatial axes 2..)."""
    if all(d == 1 for d in dilations):
        return w
    shape = list(w.shape[:2]) + [effective_kernel(k, d) for k, d in zip(w.shape[2:], dilations)]
    out = np.zeros(shape, w.dtype)
    out[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilations)] = w
    return out


# -- emit helpers ------------------------------------------------------------------------------

def _bias_tensors(ctx: LowerContext, bias_index: int, c_out: int, dtype: np.dtype
                  ) -> tuple[np.ndarray, Tensor | None]:
    """Constant bias for the LiteRT op (zeros when absent or computed) and a run-time bias to add."""
    if not ctx.has_input(bias_index):
        return np.zeros(c_out, dtype), None
    value = ctx.const(bias_index)
    if value is not None:
        value = np.asarray(value, dtype).reshape(-1)
        if value.shape != (c_out,):
            raise ctx.fail(Reason.INVALID_MODEL, f"bias has {value.size} elements, expected {c_out}")
        return value, None
    tensor = ctx.input(bias_index)
    if tuple(tensor.shape) != (c_out,):
        raise ctx.fail(Reason.INVALID_MODEL, f"bias has shape {list(tensor.shape)}, expected [{c_out}]")
    return np.zeros(c_out, dtype), tensor


def _split_channels(ctx: LowerContext, x: Tensor, groups: int) -> list[Tensor]:
    """SPLIT a channels-last tensor into ``groups`` equal parts along its last axis."""
    c = x.shape[-1] // groups
    parts = [ctx.tmp(x.shape[:-1] + (c,), x.dtype, f"group{g}_in") for g in range(groups)]
    axis = ctx.new_const(np.array(x.rank - 1, np.int32), hint="split_axis")
    ctx.emit("SPLIT", [axis, x], parts, numSplits=groups)
    return parts


def _concat_channels(ctx: LowerContext, parts: list[Tensor]) -> Tensor:
    shape = parts[0].shape[:-1] + (sum(p.shape[-1] for p in parts),)
    return ctx.emit1("CONCATENATION", parts, shape, parts[0].dtype, "group_concat",
                     axis=parts[0].rank - 1, fusedActivationFunction="NONE")


def _pad_spatial(ctx: LowerContext, x: Tensor, pads: list[tuple[int, int]]) -> Tensor:
    """Zero-PAD the spatial axes of a channels-last tensor."""
    table = np.array([(0, 0)] + [tuple(p) for p in pads] + [(0, 0)], np.int32)
    shape = (x.shape[0],) + tuple(d + b + e for d, (b, e) in zip(x.shape[1:-1], pads)) + (x.shape[-1],)
    return ctx.emit1("PAD", [x, ctx.new_const(table, hint="pads")], shape, x.dtype, "padded")


def _slice_spatial(ctx: LowerContext, x: Tensor, starts: list[int], sizes: list[int]) -> Tensor:
    """SLICE the spatial axes of a channels-last tensor (no-op when it keeps everything)."""
    if all(s == 0 for s in starts) and tuple(sizes) == x.shape[1:-1]:
        return x
    begin = np.array([0, *starts, 0], np.int32)
    size = np.array([x.shape[0], *sizes, x.shape[-1]], np.int32)
    return ctx.emit1("SLICE", [x, ctx.new_const(begin, hint="begin"), ctx.new_const(size, hint="size")],
                     tuple(int(v) for v in size), x.dtype, "cropped")


def _add_runtime_bias(ctx: LowerContext, y: Tensor, bias: Tensor | None) -> Tensor:
    if bias is None:
        return y
    return ctx.emit1("ADD", [y, bias], y.shape, y.dtype, "biased", fusedActivationFunction="NONE")


def _check_ints(ctx: LowerContext, name: str, values: list[int], n: int, minimum: int) -> list[int]:
    values = [int(v) for v in values]
    if len(values) != n or any(v < minimum for v in values):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"{name}={values}: expected {n} values >= {minimum}")
    return values


def _to_nhwc_view(ctx: LowerContext, x_cl: Tensor) -> Tensor:
    """A rank-3 NWC tensor as an (N, 1, W, C) one; other ranks unchanged."""
    if x_cl.rank != 3:
        return x_cl
    return ctx.reshape(x_cl, (x_cl.shape[0], 1, x_cl.shape[1], x_cl.shape[2]))


# -- Conv --------------------------------------------------------------------------------------

def _conv_core(ctx: LowerContext, x: Tensor, w: np.ndarray | Tensor, bias: np.ndarray, group: int,
               strides: list[int], dilations: list[int], padding: str, out_sp: list[int]) -> Tensor:
    """Emit the LiteRT convolution(s) on a channels-last rank-4/5 tensor already padded."""
    c_in, c_out = x.shape[-1], _wshape(w)[0]
    out_shape = (x.shape[0], *out_sp, c_out)
    if x.rank == 5:
        if group != 1:
            return _grouped(ctx, x, w, bias, group, strides, dilations, padding, out_sp)
        # ONNX (Cout, Cin, kD, kH, kW) -> LiteRT (kD, kH, kW, Cin, Cout)
        filt = _filter(ctx, w, (2, 3, 4, 1, 0))
        return ctx.emit1("CONV_3D", [x, filt, ctx.new_const(bias, hint="bias")], out_shape, x.dtype, "conv",
                         padding=padding, strideD=strides[0], strideH=strides[1], strideW=strides[2],
                         dilationDFactor=dilations[0], dilationHFactor=dilations[1],
                         dilationWFactor=dilations[2], fusedActivationFunction="NONE")
    common = dict(padding=padding, strideH=strides[0], strideW=strides[1], dilationHFactor=dilations[0],
                  dilationWFactor=dilations[1], fusedActivationFunction="NONE")
    if group == 1 or (group > 1 and group != c_in and _NATIVE_GROUPED_CONV2D):
        # ONNX (Cout, Cin/g, kH, kW) -> OHWI
        filt = _filter(ctx, w, (0, 2, 3, 1))
        return ctx.emit1("CONV_2D", [x, filt, ctx.new_const(bias, hint="bias")], out_shape, x.dtype, "conv",
                         **common)
    if group == c_in:
        # Output channel o reads input channel o // multiplier in both ONNX and LiteRT.
        kh, kw = _wshape(w)[2:]
        filt = _filter(ctx, w, (1, 2, 0), before=(c_out, kh, kw), after=(1, kh, kw, c_out))
        return ctx.emit1("DEPTHWISE_CONV_2D", [x, filt, ctx.new_const(bias, hint="bias")],
                         out_shape, x.dtype, "dwconv", depthMultiplier=c_out // c_in, **common)
    return _grouped(ctx, x, w, bias, group, strides, dilations, padding, out_sp)


def _grouped(ctx: LowerContext, x: Tensor, w: np.ndarray | Tensor, bias: np.ndarray, group: int, strides: list[int],
             dilations: list[int], padding: str, out_sp: list[int]) -> Tensor:
    """A grouped convolution as one dense convolution per group plus CONCATENATION."""
    per_out = _wshape(w)[0] // group
    parts = []
    for g, xg in enumerate(_split_channels(ctx, x, group)):
        sl = slice(g * per_out, (g + 1) * per_out)
        wg = _take(ctx, w, sl.start, sl.stop)
        parts.append(_conv_core(ctx, xg, wg, bias[sl], 1, strides, dilations, padding, out_sp))
    return _concat_channels(ctx, parts)


@lowering("Conv", since=1)
def lower_conv(node: NodeView, ctx: LowerContext) -> None:
    """ONNX Conv (1-D, 2-D, 3-D; any group) -> CONV_2D / DEPTHWISE_CONV_2D / CONV_3D."""
    x = ctx.input(0)
    if x.rank not in (3, 4, 5):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"Conv on a rank-{x.rank} input is not supported")
    w = _weights(ctx, x)
    n_sp = x.rank - 2
    if len(_wshape(w)) != x.rank:
        raise ctx.fail(Reason.INVALID_MODEL, f"weights have rank {len(_wshape(w))}, input has rank {x.rank}")
    kernel = list(_wshape(w)[2:])
    if node.attr("kernel_shape") is not None and [int(k) for k in node.attr("kernel_shape")] != kernel:
        raise ctx.fail(Reason.INVALID_MODEL, f"kernel_shape {node.attr('kernel_shape')} != weights {kernel}")
    group = int(node.attr("group", 1))
    c_in, c_out = x.shape[1], _wshape(w)[0]
    if group < 1 or c_in != _wshape(w)[1] * group or c_out % group:
        raise ctx.fail(Reason.INVALID_MODEL, f"group={group} does not fit {c_in} input / {c_out} output channels")
    strides = _check_ints(ctx, "strides", node.attr("strides", [1] * n_sp), n_sp, 1)
    dilations = _check_ints(ctx, "dilations", node.attr("dilations", [1] * n_sp), n_sp, 1)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in _AUTO_PADS:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"auto_pad={auto_pad!r}")
    pads_attr = node.attr("pads")
    if auto_pad == "NOTSET" and pads_attr is not None:
        _check_ints(ctx, "pads", pads_attr, 2 * n_sp, 0)
    in_sp = list(x.shape[2:])
    pads = conv_pads(auto_pad, pads_attr, in_sp, kernel, strides, dilations)
    out_sp = [conv_out_size(in_sp[i], kernel[i], strides[i], dilations[i], *pads[i]) for i in range(n_sp)]
    if any(o < 1 for o in out_sp):
        raise ctx.fail(Reason.INVALID_MODEL, f"output spatial size {out_sp} is empty")
    out = ctx.output(0)
    if tuple(out.shape) != (x.shape[0], c_out, *out_sp):
        raise ctx.fail(Reason.INTERNAL_ERROR, f"computed output shape {[x.shape[0], c_out, *out_sp]} "
                                              f"!= inferred {list(out.shape)}")
    bias, runtime_bias = _bias_tensors(ctx, 2, c_out, x.dtype)

    h = ctx.to_channels_last(x)
    padding = tflite_padding(in_sp, kernel, strides, dilations, pads)
    if padding is None:
        # Pad just what the last window reads; the rest of pads[end] would be ignored anyway.
        trimmed = [(b, max(0, (o - 1) * s + effective_kernel(k, d) - n - b))
                   for (b, _), o, s, k, d, n in zip(pads, out_sp, strides, kernel, dilations, in_sp)]
        h = _pad_spatial(ctx, h, trimmed)
        padding = "VALID"
    if n_sp == 1:  # run as 2-D on (N, 1, L, C)
        h = _to_nhwc_view(ctx, h)
        w = _insert_axis2(ctx, w)
        strides, dilations, kernel, out_sp = [1, *strides], [1, *dilations], [1, *kernel], [1, *out_sp]
    y = _conv_core(ctx, h, w, bias, group, strides, dilations, padding, out_sp)
    y = _add_runtime_bias(ctx, y, runtime_bias)
    if n_sp == 1:
        y = ctx.reshape(y, (y.shape[0], y.shape[2], y.shape[3]))
    ctx.from_channels_last(y, out=out)


# -- ConvTranspose -----------------------------------------------------------------------------

def _transpose_core(ctx: LowerContext, x: Tensor, w: np.ndarray | Tensor, bias: np.ndarray, strides: list[int],
                    padding: str, out_sp: list[int]) -> Tensor:
    """TRANSPOSE_CONV / CONV_3D_TRANSPOSE producing ``out_sp`` spatial outputs (group 1).

    ``w`` is ONNX-shaped (Cin, Cout, k...) with dilation already folded in.
    """
    c_out = _wshape(w)[1]
    out_shape = (x.shape[0], *out_sp, c_out)
    shape_const = ctx.new_const(np.array(out_shape, np.int32), hint="output_shape")
    bias_const = ctx.new_const(bias, hint="bias")
    if x.rank == 5:
        # ONNX (Cin, Cout, kD, kH, kW) -> LiteRT (kD, kH, kW, Cout, Cin)
        filt = _filter(ctx, w, (2, 3, 4, 1, 0))
        return ctx.emit1("CONV_3D_TRANSPOSE", [shape_const, filt, x, bias_const], out_shape, x.dtype, "deconv",
                         padding=padding, strideD=strides[0], strideH=strides[1], strideW=strides[2],
                         dilationDFactor=1, dilationHFactor=1, dilationWFactor=1,
                         fusedActivationFunction="NONE")
    # ONNX (Cin, Cout, kH, kW) -> LiteRT (Cout, kH, kW, Cin)
    filt = _filter(ctx, w, (1, 2, 3, 0))
    return ctx.emit1("TRANSPOSE_CONV", [shape_const, filt, x, bias_const], out_shape, x.dtype, "deconv",
                     padding=padding, strideH=strides[0], strideW=strides[1], fusedActivationFunction="NONE")


@lowering("ConvTranspose", since=1)
def lower_conv_transpose(node: NodeView, ctx: LowerContext) -> None:
    """ONNX ConvTranspose (1-D, 2-D, 3-D; any group, dilation) -> TRANSPOSE_CONV / CONV_3D_TRANSPOSE."""
    x = ctx.input(0)
    if x.rank not in (3, 4, 5):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"ConvTranspose on a rank-{x.rank} input is not supported")
    w = _weights(ctx, x)
    n_sp = x.rank - 2
    group = int(node.attr("group", 1))
    c_in = x.shape[1]
    w_shape = _wshape(w)
    if len(w_shape) != x.rank or group < 1 or w_shape[0] != c_in or c_in % group:
        raise ctx.fail(Reason.INVALID_MODEL, f"weights {list(w_shape)} / group={group} do not fit "
                                             f"{c_in} input channels")
    c_out = w_shape[1] * group
    if node.attr("kernel_shape") is not None and [int(k) for k in node.attr("kernel_shape")] != list(w_shape[2:]):
        raise ctx.fail(Reason.INVALID_MODEL, f"kernel_shape {node.attr('kernel_shape')} != weights "
                                             f"{list(w_shape[2:])}")
    strides = _check_ints(ctx, "strides", node.attr("strides", [1] * n_sp), n_sp, 1)
    dilations = _check_ints(ctx, "dilations", node.attr("dilations", [1] * n_sp), n_sp, 1)
    adj = _check_ints(ctx, "output_padding", node.attr("output_padding", [0] * n_sp), n_sp, 0)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad not in _AUTO_PADS:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"auto_pad={auto_pad!r}")
    pads_attr = node.attr("pads")
    if pads_attr is not None and auto_pad == "NOTSET":
        _check_ints(ctx, "pads", pads_attr, 2 * n_sp, 0)
    output_shape = node.attr("output_shape")
    if output_shape is not None:
        output_shape = [int(v) for v in output_shape][-n_sp:]  # spatial dims (N, C may be given too)

    # A dilated kernel is a dense kernel with zero taps in between: exact, no LiteRT dilation needed.
    # (Run-time weights get the zeros inserted by ops, after the checks below.)
    kernel = [effective_kernel(k, d) for k, d in zip(w_shape[2:], dilations)]
    in_sp = list(x.shape[2:])
    geo = transpose_geometry(auto_pad, pads_attr, output_shape, adj, in_sp, kernel, strides)
    if any(g.out < 1 for g in geo):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"empty output {[g.out for g in geo]}")
    for g, size, k, st in zip(geo, in_sp, kernel, strides):
        if g.full - (st * (size - 1) + k) >= st:
            # ONNX Runtime rejects such an output_shape too: it is not reachable from this input size.
            raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                           f"output_shape {output_shape} is larger than input size {in_sp} allows")
    out = ctx.output(0)
    computed = [x.shape[0], c_out, *[g.out for g in geo]]
    if tuple(out.shape) != tuple(computed):
        # Happens for auto_pad SAME_* with output_padding: ONNX shape inference adds the
        # output padding to in * stride, ONNX Runtime and the ONNX reference do not.
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE,
                       f"ambiguous output shape: ONNX Runtime semantics give {computed}, ONNX shape "
                       f"inference gives {list(out.shape)} (auto_pad={auto_pad}, output_padding={adj})")
    bias, runtime_bias = _bias_tensors(ctx, 2, c_out, x.dtype)

    # SAME when LiteRT's own padding rule lands on the ONNX window, else VALID and a crop.
    w = dilate_kernel(w, dilations) if isinstance(w, np.ndarray) else _dilate_runtime(ctx, w, dilations)
    if transpose_same_ok(geo, in_sp, kernel, strides):
        padding, produced, starts = "SAME", [g.out for g in geo], [0] * n_sp
    else:
        padding, produced, starts = "VALID", [g.full for g in geo], [g.start for g in geo]
    sizes = [g.out for g in geo]
    h = ctx.to_channels_last(x)
    if n_sp == 1:
        h = _to_nhwc_view(ctx, h)
        w = _insert_axis2(ctx, w)
        strides, produced = [1, *strides], [1, *produced]
    if group == 1:
        y = _transpose_core(ctx, h, w, bias, strides, padding, produced)
    else:
        per_in, per_out = c_in // group, c_out // group
        parts = [_transpose_core(ctx, hg, _take(ctx, w, g * per_in, (g + 1) * per_in),
                                 bias[g * per_out:(g + 1) * per_out], strides, padding, produced)
                 for g, hg in enumerate(_split_channels(ctx, h, group))]
        y = _concat_channels(ctx, parts)
    if n_sp == 1:
        starts, sizes = [0, *starts], [1, *sizes]
    y = _slice_spatial(ctx, y, starts, sizes)
    y = _add_runtime_bias(ctx, y, runtime_bias)
    if n_sp == 1:
        y = ctx.reshape(y, (y.shape[0], y.shape[2], y.shape[3]))
    ctx.from_channels_last(y, out=out)
