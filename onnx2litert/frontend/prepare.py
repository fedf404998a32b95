"""Frontend: from a loaded ONNX model to a graph whose shapes and constants are known.

Steps: opset check, user-fixed input dims, Identity/Dropout removal, then ONNX shape
inference and constant folding repeated until nothing changes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ConversionError, Issue, Reason
from ..options import ConversionOptions
from .fold import fold_constants
from .load import default_opset, load_model

Shape = tuple[int, ...]


@dataclass
class PreparedGraph:
    """The normalized graph the lowering stage consumes."""

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
    """Load ``source`` and return a :class:`PreparedGraph`."""
    model = load_model(source)
    opset = default_opset(model)
    original_nodes = list(model.graph.node)
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in constants]
    _fix_input_shapes(model, inputs, options)
    _remove_passthrough_nodes(model)
    shapes, dtypes = _infer(model)
    for _ in range(4):
        changed = fold_constants(model, constants, shapes, dtypes, opset)
        if not changed:
            break
        shapes, dtypes = _infer(model, constants)
    for name, value in constants.items():
        shapes[name] = tuple(value.shape)
        dtypes[name] = value.dtype
    return PreparedGraph(
        model=model, opset=opset, nodes=list(model.graph.node), constants=constants,
        shapes=shapes, dtypes=dtypes, inputs=inputs, outputs=[o.name for o in model.graph.output],
        original_nodes=original_nodes,
        opsets={imp.domain or "": int(imp.version) for imp in model.opset_import})


def _fix_input_shapes(model: onnx.ModelProto, inputs: list[str], options: ConversionOptions) -> None:
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
        dims = vi.type.tensor_type.shape.dim
        if vi.name in overrides:
            new = overrides[vi.name]
            if len(new) != len(dims):
                problems.append(Issue(Reason.INVALID_OPTION,
                                      f"--overwrite_input_shape gives rank {len(new)} for '{vi.name}', "
                                      f"the model declares rank {len(dims)}"))
                continue
            for d, v in zip(dims, new):
                d.Clear()
                d.dim_value = v
            continue
        for axis, d in enumerate(dims):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            if axis == 0:
                d.Clear()
                d.dim_value = options.batch_size or 1
            else:
                label = d.dim_param or "?"
                problems.append(Issue(
                    Reason.DYNAMIC_SHAPE_UNSUPPORTED,
                    f"input '{vi.name}' has a symbolic dim '{label}' at axis {axis}; fix it with "
                    f"-ois {vi.name}:" + ",".join(str(x.dim_value) if x.dim_value > 0 else "N" for x in dims)))
    if problems:
        raise ConversionError(problems)


def _remove_passthrough_nodes(model: onnx.ModelProto) -> None:
    """Drop Identity and inference-mode Dropout by renaming their consumers' inputs."""
    graph = model.graph
    graph_outputs = {o.name for o in graph.output}
    keep = []
    rename: dict[str, str] = {}
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        passthrough = node.op_type == "Identity" or (
            node.op_type == "Dropout" and (len(node.output) < 2 or not node.output[1]))
        if passthrough and node.domain in ("", "ai.onnx") and node.output[0] not in graph_outputs:
            rename[node.output[0]] = node.input[0]
            continue
        keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


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


def _infer(model: onnx.ModelProto, constants: dict[str, np.ndarray] | None = None
           ) -> tuple[dict[str, Shape | None], dict[str, np.dtype]]:
    """Run ONNX shape inference (with data propagation) and collect shapes and dtypes."""
    del model.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        inferred = model
    shapes: dict[str, Shape | None] = {}
    dtypes: dict[str, np.dtype] = {}
    g = inferred.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        shape, dtype = _value_shape(vi)
        if shape is not None or vi.name not in shapes:
            shapes[vi.name] = shape
        if dtype is not None:
            dtypes[vi.name] = dtype
    for init in g.initializer:
        shapes[init.name] = tuple(init.dims)
        dtypes[init.name] = np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type))
    return shapes, dtypes
