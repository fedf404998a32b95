"""Operator versions for the opcode table.

LiteRT's op resolver registers each builtin for a range of versions, and a version also
tells a runtime which features of the op a model uses (a dtype, a rank above 4, an option
such as ``keepNumDims`` or ``halfPixelCenters``). We assign the *minimum* version LiteRT's
published versioning rules (``tflite/tools/versioning/op_version.cc``) give an operator,
computed from the same facts those rules look at: tensor types, ranks, whether inputs
broadcast, quantization parameters and builtin options.

The rules are written here as small per-op functions over an :class:`_Sig` view of the
operator; ops whose rules only depend on the first input's dtype share a ladder table.
An op the rules do not mention is version 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir import Operator, Tensor
from .schema import ENUM_FIELDS

_I8, _U8, _I16, _U16, _I32, _U32, _I64 = (np.dtype(t) for t in (
    np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64))
_F16, _F32, _F64 = (np.dtype(t) for t in (np.float16, np.float32, np.float64))
_BOOL = np.dtype(np.bool_)
_C64 = np.dtype(np.complex64)
_STR = np.dtype(np.object_)  # LiteRT STRING; never produced by numpy arrays we emit


@dataclass(frozen=True)
class _Sig:
    """The facts LiteRT's versioning looks at (its ``OpSignature``), read from an IR op."""

    op: Operator

    def dtype(self, i: int) -> np.dtype | None:
        """Dtype of input ``i``; None when absent or omitted (LiteRT's ``kTfLiteNoType``)."""
        t = self.input(i)
        return None if t is None else t.dtype

    def out_dtype(self, i: int = 0) -> np.dtype | None:
        return self.op.outputs[i].dtype if i < len(self.op.outputs) else None

    def input(self, i: int) -> Tensor | None:
        return self.op.inputs[i] if i < len(self.op.inputs) else None

    def rank(self, i: int = 0) -> int:
        t = self.input(i)
        return 0 if t is None else t.rank

    @property
    def num_inputs(self) -> int:
        """Input count as serialized: omitted optional inputs (-1) still count."""
        return len(self.op.inputs)

    def option(self, key: str, default: object = 0) -> object:
        """A builtin option, with enum names (``"NONE"``, ``"RELU"``) mapped to their values."""
        value = self.op.options.get(key, default)
        if isinstance(value, str) and key in ENUM_FIELDS:
            value = getattr(ENUM_FIELDS[key], value)
        return value

    def quantized(self, i: int) -> bool:
        t = self.input(i)
        return t is not None and t.quantization is not None

    def num_scales(self, t: Tensor | None) -> int:
        if t is None or t.quantization is None:
            return 0
        return int(np.asarray(t.quantization.scale).size)

    def needs_broadcast(self) -> bool:
        """LiteRT's ``NeedBroadcastForBinaryInputs``: the first two input shapes differ."""
        if self.num_inputs < 2 or self.input(0) is None or self.input(1) is None:
            return False
        return self.input(0).shape != self.input(1).shape

    def max_rank(self) -> int:
        return max((t.rank for t in self.op.inputs if t is not None), default=0)

    def types(self, *dtypes: np.dtype | None) -> bool:
        """Inputs 0, 1, ... then output 0 have exactly these dtypes (``in0, in1, out``)."""
        *ins, out = dtypes
        return all(self.dtype(i) == d for i, d in enumerate(ins)) and self.out_dtype(0) == out


def _ladder(dtype: np.dtype | None, steps: tuple[tuple[tuple[np.dtype, ...], int], ...]) -> int:
    """The version of the first step whose dtypes contain ``dtype``; 1 when none does."""
    for dtypes, version in steps:
        if dtype in dtypes:
            return version
    return 1


def _per_channel(t: Tensor | None, axis: int, sig: _Sig) -> bool:
    """Per-channel quantized: one scale per element of ``axis`` (as LiteRT's signature checks)."""
    n = sig.num_scales(t)
    return t is not None and n > 0 and t.rank > axis and n == t.shape[axis]


def _conv_2d(s: _Sig) -> int:
    x, w = s.input(0), s.input(1)
    if s.types(_I16, _I8, _I16) and s.option("quantizedBiasType"):
        return 8
    if x is not None and w is not None and x.rank == 4 and w.rank == 4 and x.shape[3] != w.shape[3]:
        return 6  # grouped convolution
    if s.dtype(0) == _I16 and s.dtype(1) == _I16:
        return 4
    if s.types(_I8, _I8, _I8):
        return 3
    if s.types(_F32, _I8, _F32):
        return 5 if _per_channel(w, 0, s) else 2
    return 1


def _depthwise_conv_2d(s: _Sig) -> int:
    if s.dtype(0) == _I16 and s.dtype(1) == _I16:
        return 5
    if s.types(_F32, _I8, _F32):
        return 6 if _per_channel(s.input(1), 3, s) else 4
    if s.types(_I8, _I8, _I8):
        return 3
    if s.option("dilationWFactor", 1) != 1 or s.option("dilationHFactor", 1) != 1:
        return 2
    return 1


def _fully_connected(s: _Sig) -> int:
    w = s.input(1)
    if s.types(_F32, _I8, _F32) and _per_channel(w, 0, s):
        return 12
    if s.types(_I16, _I8, _I16) and s.option("quantizedBiasType"):
        return 11
    if s.types(_I16, _I16, _I16):
        return 7
    if s.num_inputs == 2:
        return 6  # no bias input at all (an omitted bias serialized as -1 still counts)
    if s.option("keepNumDims", False):
        return 5
    if s.types(_I8, _I8, _I8):
        return 4
    if s.types(_F32, _I8, _F32):
        return 9 if s.option("asymmetricQuantizeInputs", False) else 3
    if s.option("weightsFormat") != 0:
        return 2
    return 1


def _transpose_conv(s: _Sig) -> int:
    # Inputs are (output_shape, weights, data, bias): LiteRT's rule reads them by index.
    if s.types(_I16, _I8, _I16) and s.option("quantizedBiasType"):
        return 5
    if s.option("fusedActivationFunction"):
        return 4
    if s.num_inputs == 4 and s.input(3) is not None:
        return 3
    if s.dtype(1) == _I8:
        return 2
    return 1


def _gather(s: _Sig) -> int:
    if s.dtype(1) == _I16:
        return 6
    if s.option("batchDims"):
        return 5
    return _ladder(s.dtype(0), (((_I16,), 4), ((_BOOL,), 3), ((_I8,), 2)))


def _mul(s: _Sig) -> int:
    x = s.dtype(0)
    if (x == _I16 and not (s.quantized(0) or s.quantized(1))) or x == _U32:
        return 7
    if x == _C64:
        return 6
    if x == _I64:
        return 5
    if x == _I16:
        return 4
    ins = [s.input(0), s.input(1), s.op.outputs[0] if s.op.outputs else None]
    if all(s.num_scales(t) for t in ins):
        s1, s2, so = (float(np.asarray(t.quantization.scale).reshape(-1)[0]) for t in ins)
        if s1 and s2 and so and s1 * s2 / so >= 1.0:
            return 3
    return 2 if x == _I8 else 1


def _pool(s: _Sig) -> int:
    if s.dtype(0) == _I16 and s.out_dtype() == _I16:
        return 3
    return 2 if s.dtype(0) == _I8 else 1


def _transpose(s: _Sig) -> int:
    if s.rank(0) > 5:
        return 6
    if s.dtype(0) == _I16:
        return 5
    if s.rank(0) > 4:
        return 4
    return _ladder(s.dtype(0), (((_BOOL,), 3), ((_I8,), 2)))


def _split(s: _Sig) -> int:
    # SPLIT's data is input 1 (input 0 is the axis).
    return _ladder(s.dtype(1), (((_I16,), 4), ((_I32,), 3), ((_I8,), 2)))


def _slice(s: _Sig) -> int:
    if s.dtype(0) == _U32:
        return 6
    if s.rank(0) > 4:
        return 5
    return _ladder(s.dtype(0), (((_I16,), 4), ((_STR,), 3), ((_I8,), 2)))


def _dequantize(s: _Sig) -> int:
    x = s.dtype(0)
    if x in (_I16, _F16):
        return 3
    if x == _I8:
        t = s.input(0)
        q = t.quantization if t is not None else None
        return 5 if q is not None and s.num_scales(t) > 1 and _per_channel(t, int(q.axis), s) else 2
    return 1


def _quantize(s: _Sig) -> int:
    out = s.op.outputs[0] if s.op.outputs else None
    q = out.quantization if out is not None else None
    if q is not None and s.num_scales(out) > 1 and _per_channel(out, int(q.axis), s):
        return 3
    return 2 if s.out_dtype() == _I16 else 1


def _abs(s: _Sig) -> int:
    x = s.dtype(0)
    if x == _I32:
        return 5
    if x == _I16:
        return 3 if s.quantized(0) else 4
    return 2 if x in (_I8, _U8) else 1


def _strided_slice(s: _Sig) -> int:
    if s.option("offset", False):
        return 8
    if s.dtype(0) == _U32:
        return 7
    if s.option("ellipsisMask") or s.option("newAxisMask"):
        return 6
    if s.dtype(0) == _STR:
        return 5
    if s.rank(0) > 4:
        return 4
    return _ladder(s.dtype(0), (((_BOOL,), 3), ((_I8,), 2)))


def _resize_bilinear(s: _Sig) -> int:
    if s.dtype(0) == _I16:
        return 4
    if s.option("halfPixelCenters", False):
        return 3
    return 2 if s.dtype(0) == _I8 else 1


def _resize_nearest(s: _Sig) -> int:
    if s.dtype(0) == _I16:
        return 4
    if s.option("halfPixelCenters", False) or s.option("alignCorners", False):
        return 3
    return 2 if s.dtype(0) == _I8 else 1


def _max_min(s: _Sig) -> int:
    if s.dtype(0) == _I16 and s.out_dtype() == _I16:
        return 4
    if s.needs_broadcast() and s.max_rank() > 4:
        return 3
    return 2 if s.dtype(0) == _I8 else 1


def _add(s: _Sig) -> int:
    x = s.dtype(0)
    if x == _I16 and not s.quantized(0):
        return 5
    if x == _I64:
        return 4
    if x == _I16 and s.out_dtype() == _I16 and not s.option("potScaleInt16", True):
        return 3
    return 2 if x == _I8 else 1


def _sub(s: _Sig) -> int:
    x = s.dtype(0)
    if x == _I16 and s.out_dtype() == _I16 and not s.option("potScaleInt16", True):
        return 5
    if x == _I64:
        return 4
    if s.needs_broadcast() and s.max_rank() > 4:
        return 3
    return 2 if x == _I8 else 1


def _div(s: _Sig) -> int:
    return 2 if s.needs_broadcast() and s.max_rank() > 4 else 1


def _tanh_logistic(s: _Sig) -> int:
    if s.dtype(0) == _I16 and s.out_dtype() == _I16:
        return 3
    return 2 if s.dtype(0) == _I8 else 1


def _fill(s: _Sig) -> int:
    return _ladder(s.dtype(1), (((_F16,), 4), ((_I8, _I16), 3), ((_BOOL, _STR), 2)))


def _batch_matmul(s: _Sig) -> int:
    x = s.dtype(0)
    if x == _I16:
        return 3
    if x == _I8:
        return 2
    if s.types(_F32, _I8, _F32) and s.option("asymmetricQuantizeInputs", False):
        return 4
    return 1


def _pad(s: _Sig) -> int:
    if s.dtype(0) == _BOOL:
        return 5
    if s.rank(0) > 4:
        return 4
    return _ladder(s.dtype(0), (((_I16,), 3), ((_I8,), 2)))


def _select(s: _Sig) -> int:
    if s.dtype(0) == _U32:
        return 4
    if any(s.rank(i) == 5 for i in range(3)):
        return 3
    return 2 if s.dtype(0) == _I8 else 1


def _topk(s: _Sig) -> int:
    if _I16 in (s.dtype(0), s.dtype(1), s.out_dtype(1)):
        return 3
    return 2 if s.dtype(0) == _I8 else 1


def _dynamic_update_slice(s: _Sig) -> int:
    if s.dtype(0) == _I16:
        return 4
    if s.dtype(0) == _F16:
        return 3
    return 2 if s.dtype(2) == _I64 else 1


def _cast(s: _Sig) -> int:
    ends = {s.dtype(0), s.out_dtype()}
    if ends & {_F64, _F16}:
        return 5
    if _U16 in ends:
        return 4
    if _I8 in ends:
        return 3
    if _U32 in ends:
        return 2
    return 1


def _first_input_ladder(steps: tuple[tuple[tuple[np.dtype, ...], int], ...]) -> Callable[[_Sig], int]:
    return lambda s: _ladder(s.dtype(0), steps)


_INT16_3_INT8_2 = _first_input_ladder((((_I16,), 3), ((_I8,), 2)))
_INT8_2 = _first_input_ladder((((_I8,), 2),))
_INT8_INT16_2 = _first_input_ladder((((_I8, _I16), 2),))

_RULES: dict[str, Callable[[_Sig], int]] = {
    "CONV_2D": _conv_2d,
    "DEPTHWISE_CONV_2D": _depthwise_conv_2d,
    "FULLY_CONNECTED": _fully_connected,
    "TRANSPOSE_CONV": _transpose_conv,
    "GATHER": _gather,
    "MUL": _mul,
    "MAX_POOL_2D": _pool, "AVERAGE_POOL_2D": _pool,
    "TRANSPOSE": _transpose,
    "SPLIT": _split,
    "SLICE": _slice,
    "DEQUANTIZE": _dequantize,
    "QUANTIZE": _quantize,
    "FLOOR_DIV": lambda s: _ladder(s.dtype(0), (((_I16, _I8), 3), ((_F32,), 2))),
    "FLOOR_MOD": _first_input_ladder((((_I16, _I8), 2),)),
    "L2_NORMALIZATION": lambda s: 2 if s.out_dtype() == _I8 else 1,
    "ABS": _abs,
    "RELU": _first_input_ladder((((_I16,), 3), ((_I8, _U8), 2))),
    "STRIDED_SLICE": _strided_slice,
    "REVERSE_V2": _first_input_ladder((((_I8,), 3), ((_BOOL,), 2))),
    "RESIZE_BILINEAR": _resize_bilinear,
    "RESIZE_NEAREST_NEIGHBOR": _resize_nearest,
    "MAXIMUM": _max_min, "MINIMUM": _max_min,
    "PACK": lambda s: _ladder(s.dtype(0), (((_I8,), 2), ((_U32,), 4))) if s.dtype(0) != _I16
    else (3 if s.out_dtype() == _I16 else 1),
    "UNPACK": lambda s: _ladder(s.dtype(0), (((_I8, _U8), 2), ((_BOOL,), 3))) if s.dtype(0) != _I16
    else (4 if s.out_dtype() == _I16 else 1),
    "TILE": _first_input_ladder((((_I8,), 3), ((_STR,), 2))),
    "SQUEEZE": _first_input_ladder((((_STR,), 2),)),
    "SPACE_TO_BATCH_ND": lambda s: 4 if s.dtype(0) == _I16 else 3 if s.rank(0) != 4 else _INT8_2(s),
    "BATCH_TO_SPACE_ND": lambda s: 4 if s.dtype(0) == _I16 else 3 if s.rank(0) != 4 else _INT8_2(s),
    "ADD": _add,
    "SUB": _sub,
    "GATHER_ND": lambda s: 5 if s.dtype(0) == _BOOL else 4 if s.dtype(1) == _I16
    else _ladder(s.dtype(0), (((_I16,), 3), ((_STR,), 2))),
    "DIV": _div,
    "TANH": _tanh_logistic, "LOGISTIC": _tanh_logistic,
    "FILL": _fill,
    "EQUAL": _first_input_ladder((((_I16,), 4), ((_STR,), 3), ((_I8,), 2))),
    "NOT_EQUAL": _first_input_ladder((((_STR,), 3), ((_I8,), 2))),
    "LEAKY_RELU": _first_input_ladder((((_I16,), 2),)),
    "RANGE": _first_input_ladder((((_I64,), 2),)),
    "BATCH_MATMUL": _batch_matmul,
    "PAD": _pad, "PADV2": _pad,
    "CONCATENATION": _first_input_ladder((((_U32,), 4), ((_I16,), 3), ((_I8,), 2))),
    "SOFTMAX": _INT16_3_INT8_2, "MEAN": _INT16_3_INT8_2, "MIRROR_PAD": _INT16_3_INT8_2,
    "REDUCE_MAX": _INT16_3_INT8_2, "REDUCE_MIN": _INT16_3_INT8_2, "RELU6": _INT16_3_INT8_2,
    "RSQRT": _INT16_3_INT8_2,
    "ARG_MAX": _first_input_ladder((((_BOOL,), 3), ((_I8,), 2))),
    "ARG_MIN": _first_input_ladder((((_BOOL,), 3), ((_I8,), 2))),
    "SELECT": _select,
    "LESS": _INT16_3_INT8_2, "GREATER_EQUAL": _INT16_3_INT8_2,
    "SELECT_V2": _first_input_ladder((((_U32,), 2),)),
    "SPACE_TO_DEPTH": _INT8_2, "SPLIT_V": _INT8_2, "SUM": _INT8_2, "LOG_SOFTMAX": _INT8_2,
    "GREATER": _INT8_2, "LESS_EQUAL": _INT8_2, "SQUARED_DIFFERENCE": _INT8_2, "DEPTH_TO_SPACE": _INT8_2,
    "TOPK_V2": _topk,
    "EXP": _INT8_INT16_2, "LOG": _INT8_INT16_2, "REDUCE_PROD": _INT8_INT16_2,
    "DYNAMIC_UPDATE_SLICE": _dynamic_update_slice,
    # Version 1 of BROADCAST_TO was rolled back; the op starts at version 2.
    "BROADCAST_TO": lambda s: 3 if s.dtype(0) in (_I8, _I16) else 2,
    "CAST": _cast,
    "WHERE": lambda s: 1 if s.dtype(0) == _BOOL else 2,
    "GELU": _first_input_ladder((((_I8, _U8), 2),)),
    "SIGN": _first_input_ladder((((_I32,), 2),)),
}


def operator_version(op: Operator) -> int:
    """Minimum LiteRT operator version for ``op``: 1 unless a dtype, rank or option needs more.

    CUSTOM ops are always version 1. Ops LiteRT's rules do not mention (RESHAPE, CONV_3D,
    PRELU, ELU, HARD_SWISH, POW, SQRT, NEG, SHAPE, LOCAL_RESPONSE_NORMALIZATION, ...) are 1.
    """
    rule = _RULES.get(op.opcode)
    return 1 if rule is None else int(rule(_Sig(op)))
