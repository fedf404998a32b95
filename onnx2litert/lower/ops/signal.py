"""Lowerings of the signal family: DFT, STFT, HannWindow, HammingWindow, BlackmanWindow, MelWeightMatrix.

A DFT over one axis is linear in the (real, imaginary) input values, so it is lowered as one
FULLY_CONNECTED with a constant matrix of cos/sin terms (built in float64 from exact integer
phases ``k * t mod n``, then rounded once to float32). The transformed axis and the complex
axis are moved last and flattened, so a single matmul serves real, complex, forward,
inverse, one-sided (RFFT) and one-sided inverse (IRFFT) transforms and any ``dft_length``
(rows beyond the signal are simply absent: zero padding; rows past ``dft_length`` are zero:
truncation). STFT frames the signal with a GATHER of constant frame indices, applies the
window (folded into the matrix when constant, else a MUL) and runs the same matmul.

Window ops and MelWeightMatrix produce conversion-time constants.

Scalar inputs (axis, dft_length, frame_step, frame_length, window size) must be constants,
with two exceptions: when a run-time scalar is the *only* value consistent with the node's
static output shape (e.g. a window's size is its output length), that value is used, since
LiteRT's static output shape could not hold any other result anyway; and a run-time DFT axis
that the shape leaves open computes the transform along every possible axis and SELECTs the
one the axis value names.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
from onnx import helper

from ...errors import Reason
from ...ir import Tensor
from ..context import LowerContext, NodeView, inverse_perm
from ..registry import FLOATS, lowering

_F32 = np.dtype(np.float32)
_SIZE_DTYPES = ("int32", "int64")


# -- small pure helpers ----------------------------------------------------------------------------
def dft_matrix(n: int, length_in: int, channels_in: int, bins: int, inverse: bool, irfft: bool) -> np.ndarray:
    """The float64 matrix A[t*channels_in + j, k*channels_out + o] of a length-``n`` DFT.

    ``length_in`` input samples (beyond ``n`` they are ignored), ``channels_in`` 1 (real) or 2
    (complex), ``bins`` output positions. Forward: y_k = sum_t x_t e^{-2 pi i k t / n}; inverse:
    (1/n) sum_k y_k e^{+2 pi i k t / n}; ``irfft``: a one-sided spectrum to a real signal of
    length ``bins`` (numpy.fft.irfft semantics: Hermitian extension, imaginary parts of the DC and
    Nyquist terms ignored).
    """
    if irfft:
        out = np.zeros((length_in, channels_in, bins, 1))
        half = n // 2
        for k in range(min(length_in, half + 1)):
            weight = 1.0 if k == 0 or (n % 2 == 0 and k == half) else 2.0
            phase = (k * np.arange(bins)) % n
            theta = 2.0 * np.pi * phase / n
            out[k, 0, :, 0] = weight * np.cos(theta) / n
            if channels_in == 2:
                out[k, 1, :, 0] = -weight * np.sin(theta) / n
        return out.reshape(length_in * channels_in, bins)
    t = np.arange(min(length_in, n))[:, None]
    k = np.arange(bins)[None, :]
    theta = 2.0 * np.pi * ((t * k) % n) / n
    sign = 1.0 if inverse else -1.0
    scale = 1.0 / n if inverse else 1.0
    cos, sin = np.cos(theta) * scale, sign * np.sin(theta) * scale
    out = np.zeros((length_in, channels_in, bins, 2))
    used = t.shape[0]
    out[:used, 0, :, 0] = cos          # Re(x) -> Re(y)
    out[:used, 0, :, 1] = sin          # Re(x) -> Im(y)
    if channels_in == 2:
        out[:used, 1, :, 0] = -sin     # Im(x) -> Re(y)
        out[:used, 1, :, 1] = cos      # Im(x) -> Im(y)
    return out.reshape(length_in * channels_in, bins * 2)


def window_values(op_type: str, size: int, periodic: bool) -> np.ndarray:
    """HannWindow / HammingWindow / BlackmanWindow values in float64 (ONNX definitions)."""
    denom = size if periodic else size - 1
    n = np.arange(size, dtype=np.float64)
    # size 1 symmetric: N-1 = 0 gives 0/0 in ONNX; the reference's result is NaN-free only via numpy.
    x = 2.0 * np.pi * n / denom if denom else np.zeros(size)
    if op_type == "HannWindow":
        return 0.5 - 0.5 * np.cos(x)
    if op_type == "HammingWindow":
        return 25.0 / 46.0 - (1.0 - 25.0 / 46.0) * np.cos(x)
    return 0.42 - 0.5 * np.cos(x) + 0.08 * np.cos(2.0 * x)


def mel_weight_matrix(num_mel_bins: int, dft_length: int, sample_rate: int, lower_hz: float,
                      upper_hz: float) -> np.ndarray:
    """The ONNX MelWeightMatrix [dft_length // 2 + 1, num_mel_bins] (triangular filters, float64)."""
    bins = np.arange(num_mel_bins + 2)
    low_mel = 2595.0 * np.log1p(lower_hz / 700.0) / np.log(10.0)
    high_mel = 2595.0 * np.log1p(upper_hz / 700.0) / np.log(10.0)
    step = (high_mel - low_mel) / bins.shape[0]
    hz = 700.0 * np.expm1((bins * step + low_mel) / 2595.0 * np.log(10.0))
    edges = (((dft_length + 1) * hz) // sample_rate).astype(np.int64)
    out = np.zeros((dft_length // 2 + 1, num_mel_bins))
    for i in range(num_mel_bins):
        lo, mid, hi = int(edges[i]), int(edges[i + 1]), int(edges[i + 2])
        if mid == lo:
            out[mid, i] = 1.0
        else:
            for j in range(lo, mid + 1):
                out[j, i] = (j - lo) / (mid - lo)
        if hi > mid:
            for j in range(mid, hi):
                out[j, i] = (hi - j) / (hi - mid)
    return out


def _scalar(ctx: LowerContext, i: int) -> float | int | None:
    """The constant single-element input ``i`` as a Python number, or None when it is run-time."""
    value = ctx.const(i)
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    if flat.size != 1:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"input {i} must hold exactly one value")
    return flat[0].item()


def _unique(values: Iterable) -> object | None:
    found = list(dict.fromkeys(values))
    return found[0] if len(found) == 1 else None


def _output_dtype(ctx: LowerContext, node: NodeView, default: int = 1) -> np.dtype:
    code = int(node.attr("output_datatype", default))
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(code))
    except (KeyError, TypeError, ValueError):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"output_datatype {code} is not supported") from None
    if dtype != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"output_datatype {dtype.name}: only float32 is supported")
    return dtype


def _set_const_output(ctx: LowerContext, value: np.ndarray, hint: str) -> None:
    """A conversion-time result for output 0 (the driver copies a constant graph output)."""
    ctx.graph.values[ctx.node.outputs[0]] = ctx.new_const(value, hint=hint)


def _check_float_signal(ctx: LowerContext, x: Tensor) -> None:
    if x.dtype != _F32:
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, f"signal dtype {x.dtype.name}: only float32 is supported")
    if x.rank < 2 or x.shape[-1] not in (1, 2):
        raise ctx.fail(Reason.INVALID_MODEL,
                       f"the signal's last dim must be 1 (real) or 2 (complex); shape {list(x.shape)}")
    if any(d <= 0 for d in x.shape):
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "zero-sized signals are not supported")


def _matmul_last(ctx: LowerContext, x2d: Tensor, matrix: np.ndarray, hint: str) -> Tensor:
    """FULLY_CONNECTED of ``x2d`` [rows, K] with the constant ``matrix`` [K, N] (float64 -> float32)."""
    weights = ctx.new_const(np.ascontiguousarray(matrix.T, dtype=_F32), hint=f"{hint}_matrix")
    return ctx.emit1("FULLY_CONNECTED", [x2d, weights, None], (x2d.shape[0], matrix.shape[1]), _F32, hint,
                     fusedActivationFunction="NONE", weightsFormat="DEFAULT", keepNumDims=False)


# -- DFT -------------------------------------------------------------------------------------------
def _dft_bins(n: int, length: int, inverse: bool, onesided: bool) -> int:
    """Output length along the axis: n, n // 2 + 1 (RFFT) or n (IRFFT output is real of length n)."""
    if onesided and not inverse:
        return n // 2 + 1
    return n


def _default_n(length: int, inverse: bool, onesided: bool) -> int:
    return 2 * (length - 1) if inverse and onesided else length


@lowering("DFT", since=17, onnx_dtypes=FLOATS)
def lower_dft(node: NodeView, ctx: LowerContext) -> None:
    """DFT (opset 17: axis attribute; opset 20: axis input) as one FULLY_CONNECTED.

    Forward/inverse, real/complex input, onesided (RFFT, and IRFFT when inverse) and dft_length.
    """
    x = ctx.input(0)
    _check_float_signal(ctx, x)
    rank = x.rank
    inverse = bool(node.attr("inverse", 0))
    onesided = bool(node.attr("onesided", 0))
    if onesided and not inverse and x.shape[-1] == 2:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "onesided forward DFT needs a real input")
    if onesided and inverse and x.shape[-1] != 2:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "onesided inverse DFT (IRFFT) needs a complex input")
    out_shape = ctx.out_shape(0)
    length_given = _scalar(ctx, 1) if ctx.has_input(1) else None
    if node.opset >= 20:
        axes = [_scalar(ctx, 2)] if ctx.has_input(2) else [-2]
    else:
        axes = [node.attr("axis", 1)]
    if axes[0] is None:  # run-time axis: usable only when the static output shape pins it down
        axes = list(range(rank - 1))
    candidates = []
    for axis in axes:
        a = int(axis) % rank
        if a == rank - 1:
            continue
        lengths = [int(length_given)] if length_given is not None else (
            [_default_n(x.shape[a], inverse, onesided)] if not ctx.has_input(1) else range(1, 4 * x.shape[a] + 4))
        for n in lengths:
            if n <= 0:
                continue
            bins = _dft_bins(n, x.shape[a], inverse, onesided)
            shape = list(x.shape)
            shape[a] = bins
            shape[-1] = 1 if inverse and onesided else 2
            if out_shape is None or tuple(out_shape) == tuple(shape):
                candidates.append((a, n, tuple(shape)))
    runtime_axis = node.opset >= 20 and ctx.has_input(2) and ctx.const(2) is None
    one_per_axis = len({a for a, _, _ in candidates}) == len(candidates)
    if len(candidates) > 1 and runtime_axis and one_per_axis:
        _dft_runtime_axis(ctx, x, candidates, inverse and onesided)
        return
    if len(candidates) != 1:
        what = "axis" if runtime_axis else "dft_length"
        if not candidates:
            raise ctx.fail(Reason.INVALID_MODEL, f"no DFT of input shape {list(x.shape)} gives output {out_shape}")
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       f"the DFT {what} input must be a constant (the output shape does not determine it)")
    axis, n, shape = candidates[0]
    irfft = inverse and onesided
    channels = x.shape[-1]
    matrix = dft_matrix(n, x.shape[axis], channels, shape[axis], inverse, irfft)
    _apply_along_axis(ctx, x, axis, matrix, shape, ctx.output(0, shape, _F32))


def _dft_runtime_axis(ctx: LowerContext, x: Tensor, candidates: list[tuple[int, int, tuple[int, ...]]],
                      irfft: bool) -> None:
    """A run-time axis the output shape leaves open: every possible transform, then SELECT by axis.

    Each candidate axis has one transform length; the axis value (negative or not) picks its
    result with SELECT_V2, so the output is exactly the chosen transform.
    """
    rank = x.rank
    shape = candidates[0][2]
    axis_t = ctx.input(2)
    if axis_t.size != 1 or axis_t.dtype.kind != "i":
        raise ctx.fail(Reason.INVALID_MODEL, "the DFT axis must be an integer scalar")
    axis_t = ctx.reshape(axis_t, ())
    result: Tensor | None = None
    for i, (axis, n, cand_shape) in enumerate(candidates):
        matrix = dft_matrix(n, x.shape[axis], x.shape[-1], cand_shape[axis], bool(ctx.node.attr("inverse", 0)),
                            irfft)
        y = ctx.tmp(cand_shape, _F32, f"dft_axis{axis}")
        _apply_along_axis(ctx, x, axis, matrix, cand_shape, y)
        if result is None:
            result = y
            continue
        hits = [ctx.emit1("EQUAL", [axis_t, ctx.new_const(np.array(v, axis_t.dtype), hint="axis_value")], (),
                          np.bool_, "is_axis") for v in (axis, axis - rank)]
        cond = ctx.emit1("LOGICAL_OR", hits, (), np.bool_, "is_axis")
        last = i == len(candidates) - 1
        result = ctx.emit1("SELECT_V2", [cond, y, result], shape, _F32, "dft",
                           ctx.output(0, shape, _F32) if last else None)


def _apply_along_axis(ctx: LowerContext, x: Tensor, axis: int, matrix: np.ndarray,
                      out_shape: tuple[int, ...], out: Tensor) -> None:
    """out = x with (axis, complex dim) contracted against ``matrix`` (moves them last and back)."""
    rank = x.rank
    others = [d for d in range(rank - 1) if d != axis]
    perm = tuple(others + [axis, rank - 1])
    moved = ctx.transpose(x, perm) if perm != tuple(range(rank)) else x
    rows = int(np.prod([x.shape[d] for d in others], dtype=np.int64))
    flat = ctx.reshape(moved, (rows, x.shape[axis] * x.shape[-1]))
    y = _matmul_last(ctx, flat, matrix, "dft")
    moved_out = tuple(out_shape[d] for d in perm)
    if perm == tuple(range(rank)):
        ctx.reshape(y, moved_out, out=out)
        return
    y = ctx.reshape(y, moved_out)
    ctx.transpose(y, inverse_perm(perm), out=out)


# -- STFT ------------------------------------------------------------------------------------------
@lowering("STFT", since=17, onnx_dtypes=FLOATS)
def lower_stft(node: NodeView, ctx: LowerContext) -> None:
    """STFT: GATHER of constant frame indices, window (folded or MUL), then the DFT matmul."""
    x = ctx.input(0)
    _check_float_signal(ctx, x)
    if x.rank != 3:
        raise ctx.fail(Reason.INVALID_MODEL, f"the STFT signal must have rank 3; got {list(x.shape)}")
    batch, length, channels = x.shape
    onesided = bool(node.attr("onesided", 1))
    window = ctx.optional_input(2)
    if window is not None and (window.rank != 1 or window.dtype != _F32):
        raise ctx.fail(Reason.UNSUPPORTED_DTYPE, "the window must be a 1-D float32 tensor")
    step = _scalar(ctx, 1)
    frame_len = _scalar(ctx, 3) if ctx.has_input(3) else (window.shape[0] if window is not None else length)
    out_shape = ctx.out_shape(0)
    steps = [int(step)] if step is not None else range(1, length + 1)
    if frame_len is not None:
        lens = [int(frame_len)]
    else:
        lens = range(1, length + 1)
    found = []
    for fl in lens:
        if fl <= 0 or fl > length:
            continue
        bins = fl // 2 + 1 if onesided else fl
        for s in steps:
            if s <= 0:
                continue
            shape = (batch, 1 + (length - fl) // s, bins, 2)
            if out_shape is None or tuple(out_shape) == shape:
                found.append((fl, s, shape))
    if len(found) != 1:
        if not found:
            raise ctx.fail(Reason.INVALID_MODEL, "frame_step / frame_length do not fit the signal and output")
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                       "frame_step and frame_length must be constants (the output shape does not determine them)")
    fl, s, shape = found[0]
    if window is not None and window.shape[0] != fl:
        raise ctx.fail(Reason.INVALID_MODEL, f"window length {window.shape[0]} != frame_length {fl}")
    frames = shape[1]
    index = (np.arange(frames)[:, None] * s + np.arange(fl)[None, :]).astype(np.int32)
    framed = ctx.emit1("GATHER", [x, ctx.new_const(index, hint="frame_index")], (batch, frames, fl, channels),
                       _F32, "frames", axis=1, batchDims=0)
    matrix = dft_matrix(fl, fl, channels, shape[2], False, False)
    if window is not None and window.is_const:
        w = np.repeat(np.asarray(window.data, np.float64), channels)  # row t*channels + j
        matrix = matrix * w[:, None]
    elif window is not None:
        framed = ctx.emit1("MUL", [framed, ctx.reshape(window, (fl, 1))], framed.shape, _F32, "windowed",
                           fusedActivationFunction="NONE")
    flat = ctx.reshape(framed, (batch * frames, fl * channels))
    y = _matmul_last(ctx, flat, matrix, "dft")
    ctx.reshape(y, shape, out=ctx.output(0, shape, _F32))


# -- windows and MelWeightMatrix -------------------------------------------------------------------
@lowering("HannWindow", "HammingWindow", "BlackmanWindow", since=17, onnx_dtypes=_SIZE_DTYPES,
          dtypes=_SIZE_DTYPES, verified=_SIZE_DTYPES)
def lower_window(node: NodeView, ctx: LowerContext) -> None:
    """A constant window; a run-time size is taken from the node's static output length."""
    dtype = _output_dtype(ctx, node)
    size = _scalar(ctx, 0)
    if size is None:
        out_shape = ctx.out_shape(0)
        if out_shape is None or len(out_shape) != 1:
            raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT,
                           "the window size must be a constant (or the output length static)")
        size = out_shape[0]
    size = int(size)
    if size <= 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, f"window size {size}: zero-sized outputs are not supported")
    values = window_values(node.op_type, size, bool(node.attr("periodic", 1)))
    _set_const_output(ctx, values.astype(dtype), "window")


@lowering("MelWeightMatrix", since=17, onnx_dtypes=_SIZE_DTYPES, dtypes=_SIZE_DTYPES, verified=_SIZE_DTYPES)
def lower_mel_weight_matrix(node: NodeView, ctx: LowerContext) -> None:
    """A constant [dft_length // 2 + 1, num_mel_bins] matrix; all five inputs must be constants."""
    dtype = _output_dtype(ctx, node)
    names = ("num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz")
    values = [_scalar(ctx, i) for i in range(5)]
    missing = [n for n, v in zip(names, values) if v is None]
    if missing:
        raise ctx.fail(Reason.REQUIRES_CONSTANT_INPUT, f"MelWeightMatrix input(s) {', '.join(missing)} must be constant")
    mel, dft_length, rate, low, high = values
    if int(mel) <= 0 or int(dft_length) <= 0 or int(rate) <= 0:
        raise ctx.fail(Reason.UNSUPPORTED_ATTRIBUTE_VALUE, "num_mel_bins, dft_length and sample_rate must be > 0")
    matrix = mel_weight_matrix(int(mel), int(dft_length), int(rate), float(low), float(high))
    _set_const_output(ctx, matrix.astype(dtype), "mel")
