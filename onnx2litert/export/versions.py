"""Operator versions for the opcode table.

LiteRT's op resolver registers each builtin for a range of versions, and a version also
tells a runtime which features of the op a model uses. We compute the minimum version the
operator's dtypes and options require, following LiteRT's published versioning rules.
"""
from __future__ import annotations

import numpy as np

from ..ir import Operator

_I8, _U8, _I16, _I32, _I64 = (np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.int32, np.int64))
_F16 = np.dtype(np.float16)
_BOOL = np.dtype(np.bool_)


def _in_dtype(op: Operator, i: int = 0) -> np.dtype | None:
    t = op.inputs[i] if i < len(op.inputs) else None
    return None if t is None else t.dtype


def _by_dtype(dtype: np.dtype | None, table: dict, default: int = 1) -> int:
    return table.get(dtype, default)


def operator_version(op: Operator) -> int:
    """Minimum operator version for ``op`` (1 when nothing beyond the base op is used)."""
    code = op.opcode
    x = _in_dtype(op, 0)
    if code in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
        w = _in_dtype(op, 1)
        if x == _I16:
            return {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 5, "FULLY_CONNECTED": 7, "TRANSPOSE_CONV": 3}[code]
        if x == _I8:
            return {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "TRANSPOSE_CONV": 2}[code]
        if x == np.float32 and w in (_I8, _U8):  # hybrid kernels
            return {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 4, "FULLY_CONNECTED": 3, "TRANSPOSE_CONV": 2}[code]
        if code == "DEPTHWISE_CONV_2D" and (op.options.get("dilationWFactor", 1) != 1
                                            or op.options.get("dilationHFactor", 1) != 1):
            return 2
        if code == "FULLY_CONNECTED" and op.options.get("keepNumDims"):
            return 5
        if code == "TRANSPOSE_CONV" and len(op.inputs) > 3 and op.inputs[3] is not None:
            return 3  # bias input
        if code == "TRANSPOSE_CONV" and op.options.get("fusedActivationFunction", "NONE") not in (0, "NONE"):
            return 4
        return 1
    if code == "DEQUANTIZE":
        return _by_dtype(x, {_F16: 3, _I8: 2, _I16: 4})
    if code == "QUANTIZE":
        out = op.outputs[0].dtype
        return 2 if out == _I16 else 1
    if code == "TRANSPOSE":
        rank = op.inputs[0].rank
        if rank > 5:
            return 6
        if rank == 5:
            return 4 if x != _BOOL else 5
        return _by_dtype(x, {_I8: 2, _BOOL: 3, _I16: 5})
    if code == "STRIDED_SLICE":
        if op.inputs[0].rank > 4:
            return 5
        if op.options.get("offset"):
            return 7
        return _by_dtype(x, {_I8: 2, _BOOL: 4, _I16: 6})
    if code in ("SLICE",):
        if op.inputs[0].rank > 4:
            return 5
        return _by_dtype(x, {_I8: 2, _I64: 4, _I16: 3})
    if code == "PAD" or code == "PADV2":
        if op.inputs[0].rank > 4:
            return 4
        return _by_dtype(x, {_I8: 2, _I16: 3})
    if code in ("ADD", "SUB"):
        if x == _I16:
            return 3
        if x == _I64 and code == "ADD":
            return 4
        if x == _I8:
            return 2
        if op.inputs[0].rank > 4 or (len(op.inputs) > 1 and op.inputs[1].rank > 4):
            return 2 if code == "SUB" else 1
        return 1
    if code == "MUL":
        return _by_dtype(x, {_I8: 2, _I16: 4, _I64: 7})
    if code == "CONCATENATION":
        return _by_dtype(x, {_I8: 2, _I32: 3, _I64: 3, _I16: 4, _BOOL: 4})
    if code == "GATHER":
        idx = _in_dtype(op, 1)
        if x == _I16:
            return 4
        if x == _BOOL:
            return 3
        if x == _I8:
            return 2
        return 1 if idx != _I16 else 7
    if code == "CAST":
        return 1
    if code in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
        return _by_dtype(x, {_I8: 2, _I16: 3})
    if code in ("SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX", "MAX_POOL_2D", "AVERAGE_POOL_2D",
                "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "RESIZE_BILINEAR",
                "RESIZE_NEAREST_NEIGHBOR", "MAXIMUM", "MINIMUM", "RESHAPE", "SQUEEZE",
                "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "SPLIT", "SPLIT_V", "ELU", "PRELU",
                "BATCH_MATMUL", "EXP", "LOG", "SQRT", "RSQRT", "ABS", "NEG", "GELU"):
        return _by_dtype(x, {_I8: 2, _I16: 3})
    return 1
