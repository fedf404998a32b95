"""Float16 weights: constants stored as fp16, DEQUANTIZE'd to float32 for float compute.

LiteRT's CPU kernels (and XNNPACK, which folds the DEQUANTIZE away) run this form; a model
whose compute is fp16 end to end would not load on stock CPU kernels.
"""
from __future__ import annotations

import numpy as np

from ..ir import DeferredCast, Model, Operator, Subgraph, Tensor

# Weights smaller than this stay float32: the DEQUANTIZE would cost more than it saves.
_MIN_ELEMENTS = 16
_FP16_MAX = float(np.finfo(np.float16).max)  # 65504
# Elements scanned at a time when a tensor may overflow (bounds the temporary copies).
_CHUNK = 1 << 20


def to_float16_weights(model: Model, deferred: bool = False) -> Model:
    """Return a new model sharing ``model``'s tensors except float32 weights, now fp16.

    With ``deferred`` the fp16 data is a :class:`~onnx2litert.ir.DeferredCast` converted chunk by
    chunk while the file is written (for large models: no second copy of every weight); such a
    model is for export only. Weights with values beyond the float16 range stay float32
    (:func:`float16_variant` also names them).
    """
    return float16_variant(model, deferred)[0]


def float16_variant(model: Model, deferred: bool = False) -> tuple[Model, list[str]]:
    """:func:`to_float16_weights` plus the names of the float32 constants kept float32 because a
    finite value would overflow float16 (|x| > 65504 rounds to inf: NaN/inf outputs downstream)."""
    kept: dict[int, str] = {}
    subgraphs = [_convert(sg, deferred, kept) for sg in model.subgraphs]
    fp16 = Model(subgraphs, model.description, dict(model.metadata), list(model.signature_inputs),
                 list(model.signature_outputs))
    return fp16, list(kept.values())


def overflows_float16(data: np.ndarray) -> bool:
    """Whether a finite element of ``data`` becomes inf in float16.

    Two reductions (no copy) settle the usual case; only a tensor with values beyond the
    range or with infinities is scanned element-wise, chunk by chunk (it may be memory-mapped).
    """
    flat = np.asarray(data).reshape(-1)
    if flat.size == 0:
        return False
    hi, lo = np.fmax.reduce(flat), np.fmin.reduce(flat)  # fmax/fmin skip NaN
    if not (hi > _FP16_MAX or lo < -_FP16_MAX):
        return False
    # Beyond 65504, but values below 65520 still round to 65504 and infinities stay inf: cast to be exact.
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start:start + _CHUNK]
        with np.errstate(over="ignore"):
            if np.any(np.isinf(chunk.astype(np.float16)) & np.isfinite(chunk)):
                return True
    return False


def _is_fp16_candidate(t: Tensor | None, replaced: dict[int, Tensor], kept: dict[int, str]) -> bool:
    """A float32 weight worth storing as fp16 whose values fit; records the ones that do not in ``kept``."""
    if t is None or not t.is_const or t.dtype != np.float32 or t.size < _MIN_ELEMENTS or id(t) in kept:
        return False
    if id(t) in replaced:
        return True
    if overflows_float16(t.data):
        kept[id(t)] = t.name
        return False
    return True


def _convert(sg: Subgraph, deferred: bool, kept: dict[int, str]) -> Subgraph:
    replaced: dict[int, Tensor] = {}
    dequant_ops: list[Operator] = []
    new_ops: list[Operator] = []
    for op in sg.operators:
        inputs = []
        for t in op.inputs:
            if _is_fp16_candidate(t, replaced, kept):
                if id(t) not in replaced:
                    if deferred:
                        half = Tensor(f"{t.name}/fp16", t.shape, np.float16)
                        half.data = DeferredCast(t.data, np.float16)  # after __post_init__, which would convert
                    else:
                        half = Tensor(f"{t.name}/fp16", t.shape, np.float16, data=t.data.astype(np.float16))
                    restored = Tensor(f"{t.name}/dequantized", t.shape, np.float32)
                    dequant_ops.append(Operator("DEQUANTIZE", [half], [restored], origin=op.origin))
                    replaced[id(t)] = restored
                t = replaced[id(t)]
            inputs.append(t)
        new_ops.append(Operator(op.opcode, inputs, list(op.outputs), dict(op.options), op.custom_code,
                                op.custom_options, op.origin))
    return Subgraph(list(sg.inputs), list(sg.outputs), dequant_ops + new_ops, sg.name)
