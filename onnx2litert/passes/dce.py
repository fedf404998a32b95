"""Dead code elimination."""
from __future__ import annotations

from ..ir import Subgraph


def remove_dead_ops(sg: Subgraph) -> bool:
    """Drop operators none of whose outputs reach a graph output."""
    live = {id(t) for t in sg.outputs}
    kept = []
    for op in reversed(sg.operators):
        if any(id(t) in live for t in op.outputs):
            kept.append(op)
            live.update(id(t) for t in op.inputs if t is not None)
    changed = len(kept) != len(sg.operators)
    sg.operators = kept[::-1]
    return changed
