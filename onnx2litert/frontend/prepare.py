"""Frontend: from a loaded ONNX model to a graph whose shapes and constants are known.

Steps: opset check, user-fixed input dims, topological order check, Identity/Dropout
removal, then ONNX shape inference, constant folding and inlining of ``If`` nodes whose
condition folded to a constant, repeated until nothing changes; last, GELU formulas become
one node (``fuse.py``).

Weights live only in ``PreparedGraph.constants`` (numpy); ``PreparedGraph.model`` is the
graph skeleton without initializers. Shape inference runs on a light copy in which large
constants are declared as typed graph inputs, so no step serializes the weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ConversionError, Issue, Reason
from ..options import ConversionOptions
from .control import inline_constant_ifs
from .fold import fold_constants, node_subgraph_inputs, replace_nodes
from .fuse import fuse_gelu
from .load import copy_fields, default_opset, load_graph

Shape = tuple[int, ...]

# Constants up to this many elements go to shape inference as initializers (their values
# drive data propagation, e.g. a Reshape target); larger ones only as typed inputs.
_INFER_VALUE_ELEMENTS = 4096
# Constant folding is repeated while it changes something (shapes found by re-inference
# can make Shape nodes foldable); a bound keeps pathological graphs finite.
_MAX_FOLD_ROUNDS = 8
# Ops ONNX shape inference has no function for (their schema only has a context-dependent
# function body, which inference does not expand) although output 0 has input 0's type and
# shape: for inference they stand in as Identity, so the shapes after them stay known.
_SAME_AS_INPUT0 = {"GroupNormalization"}


@dataclass
class PreparedGraph:
    """The normalized graph the lowering stage consumes.

    ``original_nodes`` lists every node of the input graph, in order, for the op-coverage
    report: kept nodes appear with their final output names, nodes the frontend removed
    (Identity, inference Dropout) appear with no outputs.
    """

    model: onnx.ModelProto
    opset: int
    nodes: list[onnx.NodeProto]
    constants: dict[str, np.ndarray]
    shapes: dict[str, Shape | None]
    dtypes: dict[str, np.dtype]
    inputs: list[str]
    outputs: list[str]
    original_nodes: list[onnx.NodeProto] = field(default_factory=list)
    opsets: dict[str, int] = field(default_factory=dict)


def prepare(source: str | os.PathLike | bytes | onnx.ModelProto, options: ConversionOptions) -> PreparedGraph:
    """Load ``source`` and return a :class:`PreparedGraph`; ``source`` itself is never modified."""
    model, constants = load_graph(source)
    opset = default_opset(model)
    _check_names(model)
    inputs = [i.name for i in model.graph.input if i.name not in constants]
    _fix_input_shapes(model, inputs, options)
    _check_topology(model, constants, inputs)
    original_nodes = _remove_passthrough_nodes(model, constants, opset)
    shapes, dtypes = _infer(model, constants)
    for _ in range(_MAX_FOLD_ROUNDS):
        folded = fold_constants(model, constants, shapes, dtypes, opset)
        # An If whose condition just folded to a constant becomes its chosen branch.
        inlined = inline_constant_ifs(model, constants)
        if not (folded or inlined):
            break
        shapes, dtypes = _infer(model, constants)
    # After the last inference: the fused nodes' output shapes are those already inferred.
    keep = {o.name for o in model.graph.output}.union(*(node_subgraph_inputs(n) for n in model.graph.node))
    fuse_gelu(model, constants, dtypes, keep)
    _drop_unused_initializers(model, constants, original_nodes)
    for name, value in constants.items():
        shapes[name] = tuple(value.shape)
        dtypes[name] = value.dtype
    return PreparedGraph(
        model=model, opset=opset, nodes=list(model.graph.node), constants=constants,
        shapes=shapes, dtypes=dtypes, inputs=inputs, outputs=[o.name for o in model.graph.output],
        original_nodes=original_nodes,
        opsets={imp.domain or "": int(imp.version) for imp in model.opset_import})


def _check_names(model: onnx.ModelProto) -> None:
    """Graph inputs and outputs need names: they become the signature's names."""
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for i, vi in enumerate(values):
            if not vi.name:
                raise ConversionError(Issue(Reason.INVALID_MODEL, f"graph {kind} #{i} has no name"))


def _fix_input_shapes(model: onnx.ModelProto, inputs: list[str], options: ConversionOptions) -> None:
    """Apply ``-ois`` shapes and ``-b``; any other unknown dim is an error naming the input."""
    overrides = options.input_shape_overrides()
    unknown = sorted(set(overrides) - set(inputs))
    if unknown:
        raise ConversionError(Issue(Reason.INVALID_OPTION,
                                    f"--overwrite_input_shape names unknown input(s): {', '.join(unknown)}; "
                                    f"the model's inputs are: {', '.join(inputs)}"))
    problems = []
    for vi in model.graph.input:
        if vi.name not in inputs:
            continue
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            problems.append(Issue(Reason.UNSUPPORTED_DTYPE,
                                  f"input '{vi.name}' is not a tensor (sequence/map/optional inputs are not supported)"))
            continue
        if vi.name in overrides:
            new = overrides[vi.name]
            if tt.HasField("shape") and len(new) != len(tt.shape.dim):
                problems.append(Issue(Reason.INVALID_OPTION,
                                      f"--overwrite_input_shape gives rank {len(new)} for '{vi.name}', "
                                      f"the model declares rank {len(tt.shape.dim)}"))
                continue
            del tt.shape.dim[:]
            for v in new:
                tt.shape.dim.add().dim_value = int(v)
            continue
        if not tt.HasField("shape"):
            problems.append(Issue(Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                                  f"input '{vi.name}' has no declared shape (unknown rank); give it with "
                                  f"-ois {vi.name}:D0,D1,..."))
            continue
        dims = tt.shape.dim
        for axis, d in enumerate(dims):
            # dim_value 0 is a declared zero-sized dim (ONNX allows them), not an unknown one.
            if d.HasField("dim_value") and d.dim_value >= 0:
                continue
            if axis == 0:
                d.Clear()
                d.dim_value = options.batch_size or 1
            else:
                label = d.dim_param or "?"
                problems.append(Issue(
                    Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                    f"input '{vi.name}' has a symbolic dim '{label}' at axis {axis}; fix it with "
                    f"-ois {vi.name}:" + ",".join(str(x.dim_value) if x.HasField("dim_value") else "N"
                                                  for x in dims)))
    if problems:
        raise ConversionError(problems)


def _check_topology(model: onnx.ModelProto, constants: dict[str, np.ndarray], inputs: list[str]) -> None:
    """Every node input must come from a graph input, a constant or an earlier node.

    A graph that is merely out of order is sorted (stable topological order); an input
    nothing produces, or a cycle, is an invalid model.
    """
    nodes = list(model.graph.node)
    known = set(constants) | set(inputs) | {""}
    producer = {}
    for i, node in enumerate(nodes):
        for out in node.output:
            if out:
                producer.setdefault(out, i)
    needs = [[n for n in list(node.input) + sorted(node_subgraph_inputs(node)) if n not in known] for node in nodes]
    for i, node in enumerate(nodes):
        for name in needs[i]:
            if name not in producer:
                where = node.name or f"{node.op_type} #{i}"
                raise ConversionError(Issue(Reason.INVALID_MODEL,
                                            f"node '{where}' reads '{name}', which no input, initializer or node "
                                            "defines", node.name or None, node.op_type))
    for out in model.graph.output:
        if out.name not in known and out.name not in producer:
            raise ConversionError(Issue(Reason.INVALID_MODEL,
                                        f"graph output '{out.name}' is not produced by any node, input or initializer"))
    if all(producer[n] < i for i, names in enumerate(needs) for n in names):
        return
    order, done, placed = [], set(known), [False] * len(nodes)
    progress = True
    while progress:
        progress = False
        for i, node in enumerate(nodes):
            if not placed[i] and all(n in done for n in needs[i]):
                placed[i] = progress = True
                order.append(node)
                done.update(o for o in node.output if o)
    if len(order) != len(nodes):
        raise ConversionError(Issue(Reason.INVALID_MODEL, "the graph has a cycle"))
    replace_nodes(model.graph, order)


def _is_passthrough(node: onnx.NodeProto, constants: dict[str, np.ndarray], used: set[str], opset: int) -> bool:
    """Identity, or Dropout that is the identity at inference (mask unused, not training)."""
    if node.domain not in ("", "ai.onnx") or not node.input or not node.input[0]:
        return False
    if node.op_type == "Identity":
        return True
    if node.op_type != "Dropout":
        return False
    if len(node.output) > 1 and node.output[1] and node.output[1] in used:
        return False  # the mask is read by someone
    if opset < 7:  # Dropout-1..6: is_test=0 (the default) with a non-zero ratio is training mode (random)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if not attrs.get("is_test", 0) and attrs.get("ratio", 0.5) != 0:
            return False
    if len(node.input) > 2 and node.input[2]:
        mode = constants.get(node.input[2])
        if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
            return False  # training_mode true or unknown: Dropout is random
    return True


def _remove_passthrough_nodes(model: onnx.ModelProto, constants: dict[str, np.ndarray], opset: int
                              ) -> list[onnx.NodeProto]:
    """Drop Identity and inference Dropout; return the record list for ``original_nodes``.

    Consumers are rewired to the pass-through node's input. When the node produces a graph
    output, the producer of its input is renamed to the graph output's name instead, so the
    output keeps its ONNX name. Values read from inside subgraphs are never renamed (those
    nodes stay).
    """
    graph = model.graph
    nodes = [_copy(n) for n in graph.node]
    graph_outputs = {o.name for o in graph.output}
    graph_inputs = {i.name for i in graph.input}
    used = {n for node in nodes for n in node.input} | graph_outputs
    sub_used = set().union(*(node_subgraph_inputs(n) for n in nodes)) if nodes else set()
    producer = {o: node for node in nodes for o in node.output if o}
    removed: set[int] = set()
    rename: dict[str, str] = {}

    def resolve(name: str) -> str:
        while name in rename:
            name = rename[name]
        return name

    for i, node in enumerate(nodes):
        if not _is_passthrough(node, constants, used, opset):
            continue
        src, dst = resolve(node.input[0]), node.output[0]
        if dst in sub_used:
            continue
        if dst not in graph_outputs:
            rename[dst] = src
            removed.add(i)
            continue
        # dst is a graph output: hand its name to the node producing src, if that is safe.
        prod = producer.get(src)
        if prod is None or src in graph_outputs or src in graph_inputs or src in sub_used or src in constants:
            continue
        for k, out in enumerate(prod.output):
            if out == src:
                prod.output[k] = dst
        producer[dst] = prod
        rename[src] = dst
        removed.add(i)
    kept = []
    for i, node in enumerate(nodes):
        if i in removed:
            continue
        node.input[:] = [resolve(n) if n else n for n in node.input]
        kept.append(node)
    records = []
    for i, node in enumerate(nodes):
        if i in removed:
            rec = _copy(node)
            del rec.output[:]  # removed: matches no lowered node in the coverage report
            records.append(rec)
        else:
            records.append(_copy(node))
    del graph.node[:]
    graph.node.extend(kept)
    return records


def _copy(node: onnx.NodeProto) -> onnx.NodeProto:
    out = onnx.NodeProto()
    out.CopyFrom(node)
    return out


def _drop_unused_initializers(model: onnx.ModelProto, constants: dict[str, np.ndarray],
                              original_nodes: list[onnx.NodeProto]) -> None:
    """Forget weights nothing reads any more (e.g. W after Transpose(W) was folded)."""
    used = {n for node in model.graph.node for n in node.input} | {o.name for o in model.graph.output}
    for node in model.graph.node:
        used |= node_subgraph_inputs(node)
    produced = {o for node in original_nodes for o in node.output}
    for name in [n for n in constants if n not in used and n not in produced]:
        del constants[name]


def _value_shape(vi: onnx.ValueInfoProto) -> tuple[Shape | None, np.dtype | None]:
    tt = vi.type.tensor_type
    dtype = None
    if tt.elem_type:
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except Exception:
            dtype = None
    if not tt.HasField("shape"):
        return None, dtype
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            return None, dtype
    return tuple(dims), dtype


def _inference_model(model: onnx.ModelProto, constants: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A weight-free copy for shape inference: big constants become typed graph inputs."""
    light = onnx.ModelProto()
    copy_fields(model, light, skip=("graph",))
    copy_fields(model.graph, light.graph, skip=("value_info", "initializer", "sparse_initializer"))
    g = light.graph
    # Declared output shapes may predate -ois/-b (or be symbolic) and would clash with what
    # inference derives from the fixed inputs: let inference decide, keep the element type.
    for out in g.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    for node in g.node:
        if node.op_type in _SAME_AS_INPUT0 and node.domain in ("", "ai.onnx") and node.input:
            node.op_type = "Identity"
            del node.input[1:]
            del node.output[1:]
            del node.attribute[:]
    declared = {i.name for i in model.graph.input}
    for name, value in constants.items():
        if value.size <= _INFER_VALUE_ELEMENTS and value.dtype != object:
            g.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        elif name not in declared:
            g.input.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
    if light.ir_version < 4:
        light.ir_version = 4  # initializers that are not graph inputs need IR >= 4
    return light


def _infer(model: onnx.ModelProto, constants: dict[str, np.ndarray]
           ) -> tuple[dict[str, Shape | None], dict[str, np.dtype]]:
    """Run ONNX shape inference (with data propagation) and collect shapes and dtypes."""
    del model.graph.value_info[:]
    light = _inference_model(model, constants)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, strict_mode=False, data_prop=True)
    except Exception:
        inferred = light
    shapes: dict[str, Shape | None] = {}
    dtypes: dict[str, np.dtype] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shape, dtype = _value_shape(vi)
        if shape is not None or vi.name not in shapes:
            shapes[vi.name] = shape
        if dtype is not None:
            dtypes[vi.name] = dtype
    for out in model.graph.output:  # inference could not tell: trust a static declaration
        shape, dtype = _value_shape(out)
        if shapes.get(out.name) is None and shape is not None:
            shapes[out.name] = shape
        if out.name not in dtypes and dtype is not None:
            dtypes[out.name] = dtype
    for name, value in constants.items():
        shapes[name] = tuple(value.shape)
        dtypes[name] = value.dtype
    return shapes, dtypes
