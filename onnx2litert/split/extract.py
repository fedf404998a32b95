"""Turn one op range of the main subgraph into a complete, runnable LiteRT model."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from ..evaluate.runtime import LAYOUT_METADATA
from ..ir import Model, Subgraph, Tensor
from .planner import SUBGRAPH_OPS


@dataclass
class PartIO:
    """One input or output of a part: its signature name and the tensor behind it."""

    name: str
    tensor: Tensor
    layout: dict


@dataclass
class Part:
    """A part model and its signature I/O (names are unique across the whole split)."""

    model: Model
    inputs: list[PartIO]
    outputs: list[PartIO]


def signature_names(model: Model) -> dict[int, str]:
    """A unique signature name for every non-constant value of the main subgraph.

    Original inputs and outputs keep their ONNX names (the model's signature names); every
    other value uses its tensor name, made unique with a ``:N`` suffix if needed.
    """
    sg = model.main
    names: dict[int, str] = {}
    for name, t in zip(model.signature_inputs, sg.inputs):
        names[id(t)] = name
    for name, t in zip(model.signature_outputs, sg.outputs):
        names.setdefault(id(t), name)
    used = set(names.values())
    for op in sg.operators:
        for t in op.outputs:
            if id(t) in names:
                continue
            name, k = t.name, 1
            while name in used:
                name, k = f"{t.name}:{k}", k + 1
            used.add(name)
            names[id(t)] = name
    return names


def _io_entry(t: Tensor, layout: dict | None) -> dict:
    if layout is not None:
        return dict(layout)
    # An internal value: passed between parts exactly as LiteRT holds it.
    return {"layout": "internal", "perm_from_onnx": None, "shape": list(t.shape)}


def _uses_subgraphs(ops: list) -> bool:
    return any(op.opcode in SUBGRAPH_OPS for op in ops)


def build_part(model: Model, start: int, end: int, names: dict[int, str], io_layout: dict) -> Part:
    """Ops ``[start, end)`` as a model whose inputs are the values flowing into the range
    and whose outputs are the values leaving it (read later, or original graph outputs).

    Tensor and constant objects are shared with ``model`` (export never mutates them).
    Non-main subgraphs are carried only when a control-flow op in the range needs them,
    in their original order so subgraph indices stay valid.
    """
    sg = model.main
    ops = sg.operators[start:end]
    produced = {id(t) for op in ops for t in op.outputs}
    inputs: dict[int, Tensor] = {}
    for op in ops:
        for t in op.inputs:
            if t is not None and not t.is_const and id(t) not in produced:
                inputs.setdefault(id(t), t)
    # Original inputs first, in model order; then values from earlier parts in first-use order.
    original_in = [t for t in sg.inputs if id(t) in inputs]
    original_ids = {id(t) for t in original_in}
    ordered_in = original_in + [t for tid, t in inputs.items() if tid not in original_ids]
    read_later = {id(t) for op in sg.operators[end:] for t in op.inputs if t is not None}
    graph_out = {id(t) for t in sg.outputs}
    outputs = [t for op in ops for t in op.outputs if id(t) in read_later or id(t) in graph_out]
    if not outputs:
        raise AssertionError(f"ops [{start}, {end}) produce nothing used later (dead code left by the passes?)")

    in_layout = io_layout.get("inputs", {})
    out_layout = io_layout.get("outputs", {})
    orig_in_names = {id(t): n for n, t in zip(model.signature_inputs, sg.inputs)}
    orig_out_names = {id(t): n for n, t in zip(model.signature_outputs, sg.outputs)}
    part_in = [PartIO(names[id(t)], t, _io_entry(t, in_layout.get(orig_in_names[id(t)])
                                                  if id(t) in orig_in_names else None)) for t in ordered_in]
    part_out = [PartIO(names[id(t)], t, _io_entry(t, out_layout.get(orig_out_names[id(t)])
                                                   if id(t) in orig_out_names else None)) for t in outputs]
    layout = {"inputs": {p.name: p.layout for p in part_in}, "outputs": {p.name: p.layout for p in part_out}}
    metadata = {k: v for k, v in model.metadata.items() if k != LAYOUT_METADATA}
    metadata[LAYOUT_METADATA] = json.dumps(layout, sort_keys=True).encode()
    main = Subgraph([p.tensor for p in part_in], [p.tensor for p in part_out], list(ops), sg.name)
    subgraphs = [main] + (list(model.subgraphs[1:]) if _uses_subgraphs(ops) else [])
    part_model = Model(subgraphs, model.description, metadata,
                       [p.name for p in part_in], [p.name for p in part_out])
    return Part(part_model, part_in, part_out)


def io_record(p: PartIO) -> dict:
    """The manifest entry of one part input/output."""
    t = p.tensor
    rec = {"name": p.name, "tensor": t.name, "shape": list(t.shape), "dtype": np.dtype(t.dtype).name,
           "layout": p.layout.get("layout", "internal"), "perm_from_onnx": p.layout.get("perm_from_onnx")}
    if "onnx_shape" in p.layout:
        rec["onnx_shape"] = list(p.layout["onnx_shape"])
    if t.shape_signature is not None:
        rec["shape_signature"] = list(t.shape_signature)
    return rec
