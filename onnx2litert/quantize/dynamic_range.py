"""Dynamic-range ("hybrid") quantization: int8 weights, float activations.

The filters of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV and the
constant right-hand operand of BATCH_MATMUL become int8, symmetric (zero point 0).
LiteRT's hybrid kernels quantize the float activation on the fly, run the integer dot
products and rescale to float; biases stay float32.

Per-channel scales sit on the output-channel axis each kernel reads (0 for CONV_2D,
FULLY_CONNECTED and TRANSPOSE_CONV, 3 for DEPTHWISE_CONV_2D). TRANSPOSE_CONV's and
BATCH_MATMUL's hybrid kernels read a single scale, so those are always per tensor; the
hybrid DEPTHWISE_CONV_2D kernels read only per-channel scales, so "per tensor" there is one
scale repeated for every channel.
FULLY_CONNECTED and BATCH_MATMUL get ``asymmetricQuantizeInputs`` as LiteRT's converter
sets it (the activation is quantized with a zero point, which is more accurate for
post-ReLU inputs).
"""
from __future__ import annotations

import numpy as np

from ..ir import Model, Tensor
from .common import F32, WEIGHT_AXIS, WEIGHT_INPUT, clone_model, quantize_weights_symmetric, weight_quantization

# Ops whose hybrid kernel takes per-channel scales (the others read scale[0] only).
_PER_CHANNEL_HYBRID = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
# Ops with an ``asymmetricQuantizeInputs`` option.
_ASYMMETRIC_INPUTS = {"FULLY_CONNECTED", "BATCH_MATMUL"}


def to_dynamic_range(model: Model, per_channel: bool = True) -> Model:
    """Return a copy of ``model`` whose eligible float weights are int8 (hybrid kernels)."""
    out = clone_model(model)
    for sg in out.subgraphs:
        cache: dict[tuple[int, int | None], Tensor] = {}
        for op in sg.operators:
            idx = _weight_index(op)
            if idx is None:
                continue
            w = op.inputs[idx]
            axis = WEIGHT_AXIS.get(op.opcode) if per_channel and op.opcode in _PER_CHANNEL_HYBRID else None
            key = (id(w), axis)
            if key not in cache and op.opcode == "DEPTHWISE_CONV_2D" and axis is None:
                # The hybrid depthwise kernels read per-channel scales only (a single scale gives
                # wrong results: measured cosine 0.29). Per tensor = one scale repeated per channel.
                q, one = quantize_weights_symmetric(w.data, None)
                scales = np.full(w.shape[3], one[0], np.float32)
                cache[key] = Tensor(f"{w.name}/int8", w.shape, np.int8, data=q,
                                    quantization=weight_quantization(scales, 3))
            if key not in cache:
                q, scales = quantize_weights_symmetric(w.data, axis)
                cache[key] = Tensor(f"{w.name}/int8", w.shape, np.int8, data=q,
                                    quantization=weight_quantization(scales, axis))
            op.inputs[idx] = cache[key]
            if op.opcode in _ASYMMETRIC_INPUTS:
                op.options["asymmetricQuantizeInputs"] = True
    return out


def _weight_index(op) -> int | None:
    """The input to quantize, or None when the op has no hybrid kernel for its operands."""
    if op.opcode in WEIGHT_INPUT:
        idx = WEIGHT_INPUT[op.opcode]
        data = op.inputs[2 if op.opcode == "TRANSPOSE_CONV" else 0]
    elif op.opcode == "BATCH_MATMUL":
        # The hybrid kernel needs a float LHS and a constant int8 RHS. Its builtin version
        # computes wrong results when the RHS has more than one batch dim above 1 (measured:
        # (2,3,8,6) gives cosine 0.87), so such operands stay float.
        idx, data = 1, op.inputs[0]
        rhs = op.inputs[1]
        if rhs is not None and int(np.prod(rhs.shape[:-3], dtype=np.int64)) != 1:
            return None
    else:
        return None
    w = op.inputs[idx] if idx < len(op.inputs) else None
    if w is None or not w.is_const or w.dtype != F32 or data is None or data.dtype != F32:
        return None
    if op.opcode in WEIGHT_AXIS and w.rank <= WEIGHT_AXIS[op.opcode]:
        return None
    return idx
