"""Float16 weights: constants stored as fp16, DEQUANTIZE'd to float32 for float compute.

LiteRT's CPU kernels (and XNNPACK, which folds the DEQUANTIZE away) run this form; a model
whose compute is fp16 end to end would not load on stock CPU kernels.
"""
from __future__ import annotations

import numpy as np

from ..ir import DeferredCast, Model, Operator, Subgraph, Tensor

# Weights smaller than this stay float32: the DEQUANTIZE would cost more than it saves.
_MIN_ELEMENTS = 16


def to_float16_weights(model: Model, deferred: bool = False) -> Model:
    """Return a new model sharing ``model``'s tensors except float32 weights, now fp16.

    With ``deferred`` the fp16 data is a :class:`~onnx2litert.ir.DeferredCast` converted chunk by
    chunk while the file is written (for large models: no second copy of every weight); such a
    model is for export only.
    """
    return Model([_convert(sg, deferred) for sg in model.subgraphs], model.description, dict(model.metadata),
                 list(model.signature_inputs), list(model.signature_outputs))


def _convert(sg: Subgraph, deferred: bool) -> Subgraph:
    replaced: dict[int, Tensor] = {}
    dequant_ops: list[Operator] = []
    new_ops: list[Operator] = []
    for op in sg.operators:
        inputs = []
        for t in op.inputs:
            if t is not None and t.is_const and t.dtype == np.float32 and t.size >= _MIN_ELEMENTS:
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
