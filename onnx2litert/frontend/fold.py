"""Constant folding on the ONNX graph.

A node folds when every input is a constant (or, for Shape/Size, when its input's shape is
static). Evaluation uses ONNX's reference implementation at the model's own opset, so the
folded value has exactly ONNX semantics.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Ops never folded: random or stateful, or kept for quantization import.
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
            "Bernoulli", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "If", "Loop", "Scan"}
# A folded result larger than this many elements is kept as a computation, not stored.
_MAX_FOLDED_ELEMENTS = 1 << 24


def _shape_value(node: onnx.NodeProto, shape: tuple[int, ...], opset: int) -> np.ndarray:
    start, end = 0, None
    for a in node.attribute:
        if a.name == "start":
            start = a.i
        elif a.name == "end":
            end = a.i
    return np.array(shape[start:end] if opset >= 15 else shape, dtype=np.int64)


def _evaluate(node: onnx.NodeProto, inputs: list[np.ndarray | None], opsets: dict[str, int]
              ) -> list[np.ndarray] | None:
    names = [n for n in node.input]
    feeds = {n: v for n, v in zip(names, inputs) if n}
    graph = helper.make_graph(
        [node], "fold",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in feeds.items()],
        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    try:
        outs = ReferenceEvaluator(model).run(None, feeds)
    except Exception:
        return None
    return [np.asarray(o) for o in outs]


def fold_constants(model: onnx.ModelProto, constants: dict[str, np.ndarray],
                   shapes: dict[str, tuple[int, ...] | None], dtypes: dict[str, np.dtype], opset: int) -> bool:
    """Fold what can be folded; update ``constants`` and the model's initializers in place."""
    graph = model.graph
    opsets = {imp.domain: imp.version for imp in model.opset_import}
    graph_outputs = {o.name for o in graph.output}
    keep: list[onnx.NodeProto] = []
    new_inits: list[onnx.TensorProto] = []
    changed = False
    for node in graph.node:
        values = _fold_node(node, constants, shapes, dtypes, opset, opsets)
        if values is None or any(o in graph_outputs for o in node.output if o):
            keep.append(node)
            continue
        changed = True
        for name, value in zip(node.output, values):
            if name:
                constants[name] = value
                new_inits.append(numpy_helper.from_array(value, name))
    if changed:
        del graph.node[:]
        graph.node.extend(keep)
        graph.initializer.extend(new_inits)
    return changed


def _fold_node(node: onnx.NodeProto, constants: dict[str, np.ndarray], shapes: dict, dtypes: dict,
               opset: int, opsets: dict[str, int]) -> list[np.ndarray] | None:
    if node.domain not in ("", "ai.onnx") or node.op_type in _NO_FOLD:
        return None
    if node.op_type == "Constant":
        return _evaluate(node, [], opsets)
    if node.op_type in ("Shape", "Size"):
        shape = constants[node.input[0]].shape if node.input[0] in constants else shapes.get(node.input[0])
        if shape is None:
            return None
        if node.op_type == "Size":
            return [np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)]
        return [_shape_value(node, tuple(shape), opset)]
    if not node.input or any(n and n not in constants for n in node.input):
        return None
    outs = _evaluate(node, [constants.get(n) if n else None for n in node.input], opsets)
    if outs is None or any(o.size > _MAX_FOLDED_ELEMENTS for o in outs):
        return None
    result = []
    for name, value in zip(node.output, outs):
        want = dtypes.get(name)
        result.append(value.astype(want) if want is not None and value.dtype != want else value)
    return result
