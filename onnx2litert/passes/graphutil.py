"""Small helpers shared by the passes: permutations, constants, naming and safe rewiring.

Every helper here is either pure or touches only the subgraph it is given. Passes never
mutate a constant's data in place (constants may be shared by several operators): they
build a new constant tensor instead.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..ir import Operator, Quantization, Subgraph, Tensor

Perm = tuple[int, ...]

# Fused activation names (the schema's ActivationFunctionType members) by enum value.
_ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


# -- permutations --------------------------------------------------------------------------------

def inverse_perm(perm: Perm) -> Perm:
    """The permutation undoing ``perm``."""
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def compose_perms(first: Perm, second: Perm) -> Perm:
    """Perm of ``transpose(transpose(x, first), second)`` as one transpose of ``x``."""
    return tuple(first[i] for i in second)


def is_identity(perm: Perm) -> bool:
    return all(i == p for i, p in enumerate(perm))


def moves_only_unit_dims(shape: tuple[int, ...], perm: Perm) -> bool:
    """True when ``transpose(x, perm)`` keeps the order of ``x``'s non-1 dims (it is a reshape)."""
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


def permute_shape(shape: tuple[int, ...], perm: Perm) -> tuple[int, ...]:
    """Shape of ``transpose(x, perm)`` for ``x`` of ``shape``."""
    return tuple(shape[p] for p in perm)


# -- operator and tensor queries -----------------------------------------------------------------

def const_value(t: Tensor | None) -> np.ndarray | None:
    return None if t is None else t.data


def transpose_perm(op: Operator) -> Perm | None:
    """The constant permutation of a TRANSPOSE op, or None (not a TRANSPOSE, dynamic perm)."""
    if op.opcode != "TRANSPOSE" or len(op.inputs) < 2 or op.inputs[1] is None or not op.inputs[1].is_const:
        return None
    perm = tuple(int(p) for p in np.asarray(op.inputs[1].data).reshape(-1))
    rank = op.inputs[0].rank
    if len(perm) != rank:
        return None
    perm = tuple(p + rank if p < 0 else p for p in perm)
    return perm if sorted(perm) == list(range(rank)) else None


def activation(op: Operator) -> str:
    """The op's fused activation as a name ('NONE' when absent)."""
    value = op.options.get("fusedActivationFunction", "NONE")
    return _ACT_NAMES.get(value, str(value)) if isinstance(value, int) else str(value)


def is_dynamic(t: Tensor) -> bool:
    """True when the tensor's shape signature has unknown (-1) dims."""
    return t.shape_signature is not None and any(d < 0 for d in t.shape_signature)


def is_plain_float(t: Tensor | None) -> bool:
    """A float32 tensor without quantization parameters."""
    return t is not None and t.dtype == np.float32 and t.quantization is None


def single_use(sg: Subgraph, t: Tensor, consumers: dict[Tensor, list[Operator]]) -> bool:
    """``t`` feeds exactly one operator input and is not a graph output."""
    return len(consumers.get(t, [])) == 1 and sum(1 for x in consumers[t][0].inputs if x is t) == 1 \
        and not any(o is t for o in sg.outputs)


def is_graph_io(sg: Subgraph, t: Tensor) -> bool:
    return any(x is t for x in sg.inputs) or any(x is t for x in sg.outputs)


# -- naming and new tensors ----------------------------------------------------------------------

class Namer:
    """Unique tensor names within one subgraph."""

    def __init__(self, sg: Subgraph):
        self._used = {t.name for t in sg.tensors()}

    def __call__(self, hint: str) -> str:
        name, n = hint, 0
        while name in self._used:
            n += 1
            name = f"{hint}_{n}"
        self._used.add(name)
        return name


def remap_quantization(q: Quantization | None, perm: Perm) -> Quantization | None:
    """Quantization for ``t'`` where ``t = transpose(t', perm)`` (per-channel axis follows)."""
    if q is None:
        return None
    axis = perm[q.axis] if q.axis < len(perm) and np.asarray(q.scale).size > 1 else q.axis
    return Quantization(q.scale, q.zero_point, axis, q.min, q.max)


def untransposed_like(t: Tensor, perm: Perm, name: str) -> Tensor:
    """A new activation tensor ``t'`` with ``t == transpose(t', perm)``."""
    inv = inverse_perm(perm)
    sig = None if t.shape_signature is None else permute_shape(t.shape_signature, inv)
    return Tensor(name, permute_shape(t.shape, inv), t.dtype, quantization=remap_quantization(t.quantization, perm),
                  shape_signature=sig)


def new_const(name: str, value: np.ndarray, dtype: np.dtype | None = None,
              quantization: Quantization | None = None) -> Tensor:
    arr = np.asarray(value, dtype=dtype)
    return Tensor(name, arr.shape, arr.dtype, data=arr, quantization=quantization)


def int32_const(namer: Namer, hint: str, values: Iterable[int]) -> Tensor:
    return new_const(namer(hint), np.asarray(list(values), dtype=np.int32))


def make_transpose(namer: Namer, x: Tensor, perm: Perm, out: Tensor | None = None, origin: str | None = None
                   ) -> Operator:
    """A TRANSPOSE op of ``x`` by ``perm`` (into ``out`` or a new tensor)."""
    if out is None:
        sig = None if x.shape_signature is None else permute_shape(x.shape_signature, perm)
        out = Tensor(namer(f"{x.name}/transposed"), permute_shape(x.shape, perm), x.dtype,
                     quantization=remap_quantization(x.quantization, inverse_perm(perm)), shape_signature=sig)
    return Operator("TRANSPOSE", [x, int32_const(namer, f"{x.name}/perm", perm)], [out], origin=origin)


def make_reshape(namer: Namer, x: Tensor, shape: tuple[int, ...], out: Tensor | None = None,
                 origin: str | None = None) -> Operator:
    """A RESHAPE op of ``x`` to the static ``shape`` (into ``out`` or a new tensor)."""
    if out is None:
        out = Tensor(namer(f"{x.name}/reshaped"), shape, x.dtype, quantization=x.quantization)
    return Operator("RESHAPE", [x, int32_const(namer, f"{out.name}/shape", shape)], [out], origin=origin)


# -- rewiring ------------------------------------------------------------------------------------

def remove_forwarding_op(sg: Subgraph, op: Operator, src: Tensor) -> bool:
    """Remove ``op``, whose single output equals ``src`` element for element (same shape).

    Uses of the output are pointed at ``src``. When the output is a graph output (whose
    identity and name must stay) the producer of ``src`` writes the output directly instead,
    which needs ``src`` to be an op result that is not itself a graph input or output.
    Returns False (graph unchanged) when neither is possible.
    """
    out = op.outputs[0]
    if out.shape != src.shape or out.dtype != src.dtype:
        return False
    if not any(t is out for t in sg.outputs):
        sg.operators.remove(op)
        sg.replace_uses(out, src)
        return True
    if src.is_const or is_graph_io(sg, src):
        return False
    producer = next((p for p in sg.operators if any(t is src for t in p.outputs)), None)
    if producer is None:
        return False
    sg.operators.remove(op)
    producer.outputs = [out if t is src else t for t in producer.outputs]
    sg.replace_uses(src, out)
    return True


def run_consumer_first(sg: Subgraph, producer: Operator, consumer: Operator, a: Tensor, mid: Tensor) -> None:
    """``consumer(producer(a))`` -> ``producer(consumer(a))`` for two single-output ops that commute.

    ``consumer`` reads ``a`` in place of ``producer``'s output and writes ``mid``; ``producer``
    reads ``mid`` in place of ``a`` and writes what ``consumer`` wrote (so that tensor keeps its
    identity). The two ops also swap places in the operator list.
    """
    between, out = producer.outputs[0], consumer.outputs[0]
    consumer.inputs = [a if t is between else t for t in consumer.inputs]
    consumer.outputs = [mid]
    producer.inputs = [mid if t is a else t for t in producer.inputs]
    producer.outputs = [out]
    i, j = sg.operators.index(producer), sg.operators.index(consumer)
    sg.operators[i], sg.operators[j] = consumer, producer


def insert_before(sg: Subgraph, anchor: Operator, ops: list[Operator]) -> None:
    i = sg.operators.index(anchor)
    sg.operators[i:i] = ops


def insert_after(sg: Subgraph, anchor: Operator, ops: list[Operator]) -> None:
    i = sg.operators.index(anchor) + 1
    sg.operators[i:i] = ops


def topo_sort(sg: Subgraph) -> None:
    """Reorder operators topologically, keeping the current order where it is already valid."""
    produced_by: dict[int, Operator] = {id(t): op for op in sg.operators for t in op.outputs}
    done: set[int] = set()
    order: list[Operator] = []
    visiting: set[int] = set()

    def visit(op: Operator) -> None:
        stack = [(op, iter([t for t in op.inputs if t is not None]))]
        visiting.add(id(op))
        while stack:
            cur, it = stack[-1]
            advanced = False
            for t in it:
                dep = produced_by.get(id(t))
                if dep is not None and id(dep) not in done and id(dep) not in visiting:
                    visiting.add(id(dep))
                    stack.append((dep, iter([x for x in dep.inputs if x is not None])))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                done.add(id(cur))
                order.append(cur)

    for op in sg.operators:
        if id(op) not in done:
            visit(op)
    sg.operators = order
