"""Quantization arithmetic shared by the dynamic-range and integer quantizers.

Everything here is a pure function of numpy arrays: symmetric weight quantization (per
tensor or per channel), affine activation parameters from a float range, bias
quantization, and a copy of an IR model that a quantizer may rewrite freely.
"""
from __future__ import annotations

import numpy as np

from ..ir import Model, Operator, Quantization, Subgraph, Tensor

F32 = np.dtype(np.float32)

# Axis of the output channel in each weighted op's filter, as LiteRT's kernels read it:
# CONV_2D (O,H,W,I), FULLY_CONNECTED (O,I), TRANSPOSE_CONV (O,H,W,I) on 0, DEPTHWISE (1,H,W,C*M) on 3.
WEIGHT_AXIS: dict[str, int] = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0, "DEPTHWISE_CONV_2D": 3}
# Which input holds the filter and which the bias, per weighted op.
WEIGHT_INPUT: dict[str, int] = {"CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "DEPTHWISE_CONV_2D": 1}
BIAS_INPUT: dict[str, int] = {"CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3, "DEPTHWISE_CONV_2D": 2}
# Which input is the activation of each weighted op.
DATA_INPUT: dict[str, int] = {"CONV_2D": 0, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 2, "DEPTHWISE_CONV_2D": 0}

_INT32_MAX = 2 ** 31 - 1


def clone_model(model: Model) -> Model:
    """A copy of ``model`` with fresh Tensor and Operator objects (constant arrays are shared).

    Quantizers rewrite tensors in place (dtype, quantization); cloning keeps the float
    model that was already exported (and the other variants) untouched.
    """
    return Model([_clone_subgraph(sg) for sg in model.subgraphs], model.description, dict(model.metadata),
                 list(model.signature_inputs), list(model.signature_outputs))


def _clone_subgraph(sg: Subgraph) -> Subgraph:
    fresh: dict[int, Tensor] = {}

    def copy(t: Tensor | None) -> Tensor | None:
        if t is None:
            return None
        if id(t) not in fresh:
            fresh[id(t)] = Tensor(t.name, t.shape, t.dtype, t.data, t.quantization, t.shape_signature)
        return fresh[id(t)]

    ops = [Operator(op.opcode, [copy(t) for t in op.inputs], [copy(t) for t in op.outputs], dict(op.options),
                    op.custom_code, op.custom_options, op.origin) for op in sg.operators]
    return Subgraph([copy(t) for t in sg.inputs], [copy(t) for t in sg.outputs], ops, sg.name)


def quantize_weights_symmetric(w: np.ndarray, axis: int | None, bits: int = 8,
                               min_scale: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantization of a filter: ``(q, scales)``; zero point 0, range [-127, 127] for 8 bits.

    ``axis`` None gives one scale; otherwise one scale per index of ``axis``. An all-zero
    channel gets scale 1 (LiteRT rejects a zero scale). ``min_scale`` raises scales where
    the bias would otherwise overflow its integer type.
    """
    qmax = 2 ** (bits - 1) - 1
    w = np.asarray(w, dtype=np.float64)
    if axis is None:
        absmax = np.array([np.abs(w).max() if w.size else 0.0])
    else:
        moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
        absmax = np.abs(moved).max(axis=1) if moved.shape[1] else np.zeros(w.shape[axis])
    scales = np.where(absmax > 0, absmax / qmax, 1.0)
    if min_scale is not None:
        scales = np.maximum(scales, min_scale)
    scales = scales.astype(np.float32)
    bshape = [1] * w.ndim
    if axis is not None:
        bshape[axis] = -1
    q = np.clip(np.round(w / scales.astype(np.float64).reshape(bshape)), -qmax, qmax)
    return q.astype(np.int8 if bits == 8 else np.int16), scales


def weight_quantization(scales: np.ndarray, axis: int | None) -> Quantization:
    """Quantization parameters of a symmetric filter (zero points 0)."""
    return Quantization(np.asarray(scales, np.float32), np.zeros(len(scales), np.int64),
                        0 if axis is None else axis)


def activation_params(lo: float, hi: float, dtype: np.dtype) -> tuple[float, int]:
    """Affine ``(scale, zero_point)`` for a float range; the range is widened to contain 0.

    int8/uint8 are asymmetric (zero point nudged to an integer so 0.0 is exact); int16 is
    symmetric with zero point 0, as LiteRT's 16x8 kernels require.
    """
    dtype = np.dtype(dtype)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    info = np.iinfo(dtype)
    if dtype == np.int16:
        bound = max(-lo, hi)
        return (bound / info.max if bound > 0 else 1.0 / info.max), 0
    if hi - lo <= 0:
        return 1.0 / 255.0, int(info.min) if lo == 0 else 0
    scale = (hi - lo) / float(info.max - info.min)
    zp = int(np.clip(np.round(info.min - lo / scale), info.min, info.max))
    return scale, zp


def quantize_array(x: np.ndarray, scale: float | np.ndarray, zero_point: int | np.ndarray,
                   dtype: np.dtype) -> np.ndarray:
    """Round-to-nearest affine quantization with saturation."""
    info = np.iinfo(np.dtype(dtype))
    q = np.round(np.asarray(x, np.float64) / np.asarray(scale, np.float64)) + np.asarray(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize_array(q: np.ndarray, scale: float | np.ndarray, zero_point: int | np.ndarray) -> np.ndarray:
    return ((np.asarray(q, np.float64) - np.asarray(zero_point)) * np.asarray(scale, np.float64)).astype(np.float32)


def bias_min_weight_scale(bias: np.ndarray | None, input_scale: float, bias_dtype: np.dtype) -> np.ndarray | None:
    """Smallest weight scales that keep ``bias / (input_scale * w_scale)`` inside the bias type.

    Only int32 biases can overflow in practice (tiny weights with a large bias).
    """
    if bias is None or np.dtype(bias_dtype) != np.int32:
        return None
    limit = 0.95 * _INT32_MAX
    return np.abs(np.asarray(bias, np.float64)).reshape(-1) / (input_scale * limit)


def quantize_bias(bias: np.ndarray, input_scale: float, weight_scales: np.ndarray, dtype: np.dtype
                  ) -> tuple[np.ndarray, Quantization]:
    """Bias as integers with scale ``input_scale * weight_scale`` (per channel when weights are)."""
    scales = (np.float64(input_scale) * np.asarray(weight_scales, np.float64)).reshape(-1)
    b = np.asarray(bias, np.float64).reshape(-1)
    info = np.iinfo(np.dtype(dtype))
    per = scales if scales.size == b.size else np.full(b.size, scales[0])
    q = np.clip(np.round(b / per), info.min, info.max).astype(dtype)
    quant = Quantization(scales.astype(np.float32), np.zeros(scales.size, np.int64), 0)
    return q.reshape(bias.shape), quant
