"""Control flow the frontend can remove: an ``If`` whose condition is a known constant.

Exporters (torch.onnx in particular) emit ``If`` nodes for shape checks such as "pad the
shape when the rank is below N"; once the input shapes are fixed the condition folds to a
constant and the node is the chosen branch in disguise. Inlining the branch gives the
lowering stage plain nodes (LiteRT has an IF op, but a branch whose outcome is known at
conversion time should not cost a subgraph at run time).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .fold import replace_nodes


def inline_constant_ifs(model: onnx.ModelProto, constants: dict[str, np.ndarray]) -> bool:
    """Replace every top-level ``If`` with a constant condition by its chosen branch.

    Branch-local names get a prefix unique to the ``If`` node so they cannot clash with
    outer names (or the other branch); branch initializers become ``constants``; a branch
    output is renamed to the ``If`` output it feeds, or copied with ``Identity`` when the
    branch returns an outer-scope value. Returns True when a node was inlined.
    """
    graph = model.graph
    taken = _all_names(graph) | set(constants)
    new_nodes: list[onnx.NodeProto] = []
    changed = False
    for index, node in enumerate(graph.node):
        cond = _constant_condition(node, constants)
        if cond is None:
            new_nodes.append(node)
            continue
        branch = _branch(node, "then_branch" if cond else "else_branch")
        if branch is None or len(branch.output) != len(node.output):
            new_nodes.append(node)
            continue
        prefix = f"{node.name or 'If_' + str(index)}/{'then' if cond else 'else'}/"
        new_nodes.extend(_inline_branch(branch, list(node.output), prefix, constants, taken))
        changed = True
    if changed:
        replace_nodes(graph, new_nodes)
    return changed


def _constant_condition(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool | None:
    """The If's condition as a Python bool when it is a one-element constant, else None."""
    if node.op_type != "If" or node.domain not in ("", "ai.onnx") or not node.input:
        return None
    value = constants.get(node.input[0])
    if value is None or np.asarray(value).size != 1:
        return None
    return bool(np.asarray(value).reshape(-1)[0])


def _branch(node: onnx.NodeProto, name: str) -> onnx.GraphProto | None:
    for attr in node.attribute:
        if attr.name == name and attr.HasField("g"):
            return attr.g
    return None


def _all_names(graph: onnx.GraphProto) -> set[str]:
    """Every value name defined or read anywhere in ``graph``, subgraphs included."""
    names = {v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info)}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names |= set(node.input) | set(node.output)
        for attr in node.attribute:
            for g in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                names |= _all_names(g)
    return names


def _fresh(name: str, prefix: str, taken: set[str]) -> str:
    candidate, n = prefix + name, 1
    while candidate in taken:
        candidate, n = f"{prefix}{name}_{n}", n + 1
    taken.add(candidate)
    return candidate


def _inline_branch(branch: onnx.GraphProto, outputs: list[str], prefix: str,
                   constants: dict[str, np.ndarray], taken: set[str]) -> list[onnx.NodeProto]:
    """The branch's nodes with local names made unique and outputs renamed to ``outputs``."""
    rename: dict[str, str] = {}
    for init in branch.initializer:
        fresh = _fresh(init.name, prefix, taken)
        constants[fresh] = numpy_helper.to_array(init)
        rename[init.name] = fresh
    produced_by_branch = {o for n in branch.node for o in n.output if o}
    # A branch output produced inside the branch (once, and not also another output) takes
    # the If output's name directly; anything else is copied into it below.
    direct: dict[str, str] = {}
    for inner, outer in zip((o.name for o in branch.output), outputs):
        if inner in produced_by_branch and inner not in direct and inner not in rename:
            direct[inner] = outer
    for node in branch.node:
        for out in node.output:
            if out and out not in rename:
                rename[out] = direct.get(out) or _fresh(out, prefix, taken)
    nodes = []
    for node in branch.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [rename.get(n, n) for n in copy.input]
        copy.output[:] = [rename.get(n, n) for n in copy.output]
        if copy.name:
            copy.name = prefix + copy.name
        for attr in copy.attribute:
            for g in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                _rename_free_inputs(g, rename)
        nodes.append(copy)
    for inner, outer in zip((o.name for o in branch.output), outputs):
        if direct.get(inner) == outer or not outer:
            continue
        nodes.append(helper.make_node("Identity", [rename.get(inner, inner)], [outer], name=f"{prefix}{outer}/copy"))
    return nodes


def _rename_free_inputs(graph: onnx.GraphProto, rename: dict[str, str]) -> None:
    """Rename reads of outer-scope values inside a nested subgraph (its own names stay)."""
    local = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    local |= {o for n in graph.node for o in n.output}
    active = {k: v for k, v in rename.items() if k not in local}
    if not active:
        return
    for node in graph.node:
        node.input[:] = [active.get(n, n) for n in node.input]
        for attr in node.attribute:
            for g in list(attr.graphs) + ([attr.g] if attr.HasField("g") else []):
                _rename_free_inputs(g, active)
    for out in graph.output:
        if out.name in active:
            out.name = active[out.name]
