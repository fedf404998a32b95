"""Constant folding on the ONNX graph.

A node folds when every input is a constant (or, for Shape/Size, when its input's shape is
static). Evaluation uses ONNX's reference implementation at the model's own opset. Where
the reference implements only the newest semantics of an op whose meaning changed, the
old form is either rewritten into the new one (Softmax family before opset 13 flattens at
``axis``) or not folded at all (Resize before 11, Upsample), so a folded value always has
the semantics of the model's opset.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Ops never folded: random or stateful, or kept for quantization import.
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
            "Bernoulli", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "If", "Loop", "Scan"}
# Ops whose reference implementation lacks their semantics below this opset: not folded there.
_REFERENCE_SINCE = {"Resize": 11, "Upsample": 10**6}
# Ops that before opset 13 coerce the input to 2-D at ``axis`` (default 1) and normalize rows.
_FLATTENING_BEFORE_13 = {"Softmax", "LogSoftmax", "Hardmax"}
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
    """Run ``node`` alone in ONNX's reference evaluator under ``opsets``; None if it fails."""
    opset = opsets.get("", 1)
    if opset < _REFERENCE_SINCE.get(node.op_type, 0):
        return None
    if node.op_type in _FLATTENING_BEFORE_13 and opset < 13:
        return _evaluate_flattening(node, inputs[0], opsets)
    if node.domain == "ai.onnx":
        node = _copy_node(node)
        node.domain = ""
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


def _constant_tensor_value(node: onnx.NodeProto) -> list[np.ndarray] | None:
    """A ``Constant`` node's value when it is the plain ``value`` tensor attribute, else None.

    That is the value ONNX's reference ``Constant`` returns (``numpy_helper.to_array`` of the
    attribute) without building a one-node model and an evaluator for it; every other form
    (other attributes, external data, linked attributes) goes through :func:`_evaluate`.
    """
    if len(node.attribute) != 1:
        return None
    attr = node.attribute[0]
    if attr.name != "value" or attr.type != onnx.AttributeProto.TENSOR or attr.ref_attr_name:
        return None
    if attr.t.data_location == onnx.TensorProto.EXTERNAL:
        return None
    try:
        return [np.asarray(numpy_helper.to_array(attr.t))]
    except Exception:
        return None


def node_subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Outer-scope names read from inside ``node``'s subgraph attributes (If/Loop/Scan bodies)."""
    names: set[str] = set()
    for attr in node.attribute:
        for g in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
            names |= _graph_free_names(g)
    return names


def _graph_free_names(graph: onnx.GraphProto) -> set[str]:
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    free: set[str] = set()
    for node in graph.node:
        free |= {n for n in node.input if n not in defined}
        free |= node_subgraph_inputs(node) - defined
        defined |= set(node.output)
    free |= {o.name for o in graph.output if o.name not in defined}
    return free


def _copy_node(node: onnx.NodeProto) -> onnx.NodeProto:
    out = onnx.NodeProto()
    out.CopyFrom(node)
    return out


def _evaluate_flattening(node: onnx.NodeProto, x: np.ndarray | None, opsets: dict[str, int]
                         ) -> list[np.ndarray] | None:
    """Softmax-family before opset 13: rows of ``x`` reshaped to (prod(shape[:axis]), -1)."""
    if x is None or x.ndim == 0:
        return None
    axis = 1
    for a in node.attribute:
        if a.name == "axis":
            axis = a.i
    axis = axis + x.ndim if axis < 0 else axis
    if not 0 <= axis <= x.ndim:
        return None
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    flat = helper.make_node(node.op_type, [node.input[0]], [node.output[0]], axis=1)
    outs = _evaluate(flat, [x.reshape(rows, -1)], {**opsets, "": 13})
    return None if outs is None else [outs[0].reshape(x.shape)]


def replace_nodes(graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> None:
    """Make ``nodes`` the graph's node list. They are copied first: clearing the field detaches
    the messages that may be among ``nodes``."""
    copies = [onnx.NodeProto() for _ in nodes]
    for dst, src in zip(copies, nodes):
        dst.CopyFrom(src)
    del graph.node[:]
    graph.node.extend(copies)


def fold_constants(model: onnx.ModelProto, constants: dict[str, np.ndarray],
                   shapes: dict[str, tuple[int, ...] | None], dtypes: dict[str, np.dtype], opset: int) -> bool:
    """Fold what can be folded: results go to ``constants``, folded nodes leave the graph.

    Folded values are kept only in ``constants`` (not as initializer protos), so a folded
    weight exists once in memory. Nodes producing graph outputs are kept so the output
    stays computed by an operator.
    """
    graph = model.graph
    # "ai.onnx" and "" name the same domain; the reference evaluator only knows "".
    opsets = {"" if imp.domain == "ai.onnx" else imp.domain: imp.version for imp in model.opset_import}
    graph_outputs = {o.name for o in graph.output}
    keep: list[onnx.NodeProto] = []
    changed = False
    for node in graph.node:
        if any(o in graph_outputs for o in node.output if o) or _too_large(node, shapes):
            keep.append(node)
            continue
        values = _fold_node(node, constants, shapes, dtypes, opset, opsets)
        if values is None:
            keep.append(node)
            continue
        changed = True
        for name, value in zip(node.output, values):
            if name:
                constants[name] = value
    if changed:
        replace_nodes(graph, keep)
    return changed


def _too_large(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...] | None]) -> bool:
    """Known beforehand to produce more than ``_MAX_FOLDED_ELEMENTS``: do not even evaluate."""
    for out in node.output:
        shape = shapes.get(out)
        if shape is not None and int(np.prod(shape, dtype=np.int64)) > _MAX_FOLDED_ELEMENTS:
            return True
    return False


def _fold_node(node: onnx.NodeProto, constants: dict[str, np.ndarray], shapes: dict, dtypes: dict,
               opset: int, opsets: dict[str, int]) -> list[np.ndarray] | None:
    if node.domain not in ("", "ai.onnx") or node.op_type in _NO_FOLD:
        return None
    if node.op_type == "Constant":
        direct = _constant_tensor_value(node)
        return direct if direct is not None else _evaluate(node, [], opsets)
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
