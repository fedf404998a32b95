"""Size-based split planning over the optimized IR.

The main subgraph's operators are already in topological order. A *cut* ``k`` (``1 <= k < n``)
separates ops ``[0, k)`` from ``[k, n)``; the tensors crossing it are the non-constant values
defined before it (by an op or as a graph input) and read at or after it. A partition is a
contiguous op range; its estimated size is the bytes of every distinct constant its ops read
(a constant shared by two partitions is stored in both) plus a per-op and per-tensor allowance
for the flatbuffer tables.

Partitions are chosen greedily from the front: a partition grows while it stays within the
target; then, among the cuts that keep at least :data:`_MIN_FILL` of the largest fitting
partition, the cut with the fewest and then smallest crossing tensors wins. A single op whose
constants alone exceed the hard maximum makes the split impossible.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConversionError, Issue, Reason
from ..ir import Model, Operator, Tensor

# Flatbuffer bytes per tensor table (shape, type, buffer index, name header) and per
# operator table (opcode, in/out vectors, options); deliberately generous.
TENSOR_OVERHEAD = 96
OPERATOR_OVERHEAD = 128
# Fixed per-file cost: header, opcode table, signature, layout metadata.
MODEL_OVERHEAD = 4096
# Constant data is 16-byte aligned inside the file.
_CONST_ALIGN = 16
# A chosen partition must hold at least this share of the largest partition that fits,
# so that preferring light cuts never produces a flood of tiny parts.
_MIN_FILL = 0.5
# Control-flow ops carry their branch/body subgraphs into every part that contains them.
SUBGRAPH_OPS = {"IF": ("thenSubgraphIndex", "elseSubgraphIndex"),
                 "WHILE": ("condSubgraphIndex", "bodySubgraphIndex"),
                 "CALL_ONCE": ("initSubgraphIndex",)}


@dataclass
class CutPoint:
    """A place between op ``index - 1`` and op ``index`` and the values crossing it."""

    index: int
    tensors: list[Tensor]

    @property
    def num_tensors(self) -> int:
        return len(self.tensors)

    @property
    def bytes(self) -> int:
        return sum(tensor_bytes(t) for t in self.tensors)


@dataclass
class Partition:
    """Ops ``[start, end)`` of the main subgraph and their estimated file size."""

    start: int
    end: int
    estimated_bytes: int
    constant_bytes: int


@dataclass
class SplitPlan:
    """The chosen partitions plus every candidate cut (for the plan report)."""

    partitions: list[Partition]
    cuts: list[CutPoint]
    chosen_cuts: list[int]
    target_bytes: int
    max_bytes: int
    estimated_total_bytes: int
    num_ops: int
    needs_split: bool = field(default=True)


def tensor_bytes(t: Tensor) -> int:
    """Bytes of one value of ``t`` (its static shape times its item size)."""
    return int(np.prod(t.shape, dtype=np.int64)) * np.dtype(t.dtype).itemsize


def _aligned(n: int) -> int:
    return (n + _CONST_ALIGN - 1) // _CONST_ALIGN * _CONST_ALIGN


def _subgraph_bytes(model: Model) -> dict[int, int]:
    """Estimated bytes each non-main subgraph adds to a part that references it."""
    out = {}
    for i, sg in enumerate(model.subgraphs[1:], start=1):
        tensors = sg.tensors()
        out[i] = (sum(_aligned(t.data.nbytes) for t in tensors if t.is_const)
                  + TENSOR_OVERHEAD * len(tensors) + OPERATOR_OVERHEAD * len(sg.operators))
    return out


def _op_costs(model: Model) -> list[tuple[list[tuple[object, int]], int]]:
    """Per op: its (key, bytes) storage items (constants, referenced subgraphs) and fixed overhead."""
    sub_bytes = _subgraph_bytes(model)
    costs = []
    for op in model.main.operators:
        items: list[tuple[object, int]] = [(id(t), _aligned(t.data.nbytes)) for t in op.inputs
                                           if t is not None and t.is_const]
        for key in SUBGRAPH_OPS.get(op.opcode, ()):
            idx = op.options.get(key)
            if isinstance(idx, int) and idx in sub_bytes:
                # Parts carry all non-main subgraphs so indices stay valid; count them all once.
                items.extend((("subgraph", j), b) for j, b in sub_bytes.items())
        n_tensors = sum(1 for t in op.inputs if t is not None) + len(op.outputs)
        costs.append((items, OPERATOR_OVERHEAD + TENSOR_OVERHEAD * n_tensors))
    return costs


def _liveness(model: Model) -> tuple[dict[int, int], dict[int, int], dict[int, Tensor]]:
    """Definition index (-1 for graph inputs) and last-use index of every non-constant value."""
    sg = model.main
    defined: dict[int, int] = {id(t): -1 for t in sg.inputs}
    last_use: dict[int, int] = {}
    by_id: dict[int, Tensor] = {id(t): t for t in sg.inputs}
    for i, op in enumerate(sg.operators):
        for t in op.inputs:
            if t is not None and not t.is_const:
                last_use[id(t)] = i
                by_id.setdefault(id(t), t)
        for t in op.outputs:
            defined.setdefault(id(t), i)
            by_id.setdefault(id(t), t)
    return defined, last_use, by_id


def cut_points(model: Model) -> list[CutPoint]:
    """Every cut ``1..n-1`` with the values crossing it, in definition order."""
    n = len(model.main.operators)
    defined, last_use, by_id = _liveness(model)
    starts: dict[int, list[int]] = {}
    for tid, d in defined.items():
        lu = last_use.get(tid)
        if lu is not None and lu > d:
            # crosses cuts d+1 .. lu
            starts.setdefault(max(d + 1, 1), []).append(tid)
    live: dict[int, None] = {}
    cuts = []
    for k in range(1, n):
        for tid in starts.get(k, ()):
            live[tid] = None
        for tid in [t for t in live if last_use[t] < k]:
            del live[tid]
        ordered = sorted(live, key=lambda t: (defined[t], t))
        cuts.append(CutPoint(k, [by_id[t] for t in ordered]))
    return cuts


def _single_op_check(model: Model, costs: list[tuple[list[tuple[object, int]], int]], max_bytes: int) -> None:
    for i, (items, overhead) in enumerate(costs):
        size = sum(dict(items).values()) + overhead + MODEL_OVERHEAD
        if size > max_bytes:
            op: Operator = model.main.operators[i]
            raise ConversionError(Issue(
                Reason.SPLIT_IMPOSSIBLE,
                f"op {i} ({op.opcode}, from ONNX node '{op.origin}') alone needs about {size} bytes, "
                f"above --tflite_split_max_bytes {max_bytes}; no split can make a part small enough"))


def plan_split(model: Model, target_bytes: int, max_bytes: int) -> SplitPlan:
    """Choose contiguous partitions of the main subgraph (see the module docstring).

    Raises :class:`ConversionError` with ``split_impossible`` when one op cannot fit ``max_bytes``.
    """
    ops = model.main.operators
    n = len(ops)
    costs = _op_costs(model)
    cuts = cut_points(model)
    total = _range_bytes(costs, 0, n)
    if total <= target_bytes or n <= 1:
        if total > max_bytes:
            _single_op_check(model, costs, max_bytes)
        return SplitPlan([Partition(0, n, total, _range_const_bytes(costs, 0, n))], cuts, [],
                         target_bytes, max_bytes, total, n, needs_split=False)
    _single_op_check(model, costs, max_bytes)
    cut_rank = {c.index: (c.num_tensors, c.bytes) for c in cuts}
    partitions: list[Partition] = []
    chosen: list[int] = []
    start = 0
    while start < n:
        sizes = _prefix_sizes(costs, start, n, max_bytes)  # sizes[j] = size of [start, start+j+1)
        fit_target = [j for j, s in enumerate(sizes) if s <= target_bytes]
        # Largest end within the target; a lone op above the target may still use the max.
        longest = (fit_target[-1] if fit_target else 0) + 1
        end_cap = start + longest
        if end_cap >= n:
            end = n
        else:
            floor = _MIN_FILL * sizes[longest - 1]
            candidates = [start + j + 1 for j in range(longest) if sizes[j] >= floor]
            end = min(candidates, key=lambda e: (cut_rank[e][0], cut_rank[e][1], -e))
            chosen.append(end)
        size = sizes[end - start - 1]
        partitions.append(Partition(start, end, size, _range_const_bytes(costs, start, end)))
        start = end
    return SplitPlan(partitions, cuts, chosen, target_bytes, max_bytes, total, n, needs_split=len(partitions) > 1)


def _prefix_sizes(costs: list[tuple[list[tuple[object, int]], int]], start: int, n: int, limit: int) -> list[int]:
    """Estimated size of ``[start, start + j + 1)`` for growing j, stopping past ``limit``."""
    seen: set = set()
    size = MODEL_OVERHEAD
    out = []
    for i in range(start, n):
        items, overhead = costs[i]
        size += overhead
        for key, b in items:
            if key not in seen:
                seen.add(key)
                size += b
        if out and size > limit:
            break
        out.append(size)
    return out


def _range_bytes(costs: list[tuple[list[tuple[object, int]], int]], start: int, end: int) -> int:
    seen: set = set()
    size = MODEL_OVERHEAD
    for items, overhead in costs[start:end]:
        size += overhead
        for key, b in items:
            if key not in seen:
                seen.add(key)
                size += b
    return size


def _range_const_bytes(costs: list[tuple[list[tuple[object, int]], int]], start: int, end: int) -> int:
    seen: dict = {}
    for items, _ in costs[start:end]:
        for key, b in items:
            seen[key] = b
    return sum(seen.values())
