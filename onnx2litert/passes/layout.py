"""The transpose optimizer: sink TRANSPOSE ops through layout-agnostic ops and cancel them.

Lowerings wrap every channels-last op in explicit transposes (``T(0,2,3,1) -> CONV_2D ->
T(0,3,1,2)``). This pass removes them with one general mechanism, in the spirit of ONNX
Runtime's transpose optimizer:

* An op ``f`` whose input is ``y = transpose(x, P)`` is rewritten, when ``f`` is
  layout-agnostic, as ``f(y) = transpose(g(x), Q)``: ``g`` is ``f`` with its axis-like
  parameters remapped (reduction axes, concat/split axis, paddings, slice bounds...), and
  ``Q`` is usually ``P`` (reductions that drop axes and shrink-slices derive it). Other data
  operands of ``f`` are moved into ``x``'s layout: a constant is permuted at conversion
  time (after padding its rank for broadcasting), an operand that is itself
  ``transpose(z, P)`` is unwrapped to ``z``, and any other operand gets the inverse
  transpose inserted (a RESHAPE when that only moves size-1 dims). The moved transpose ends
  up on ``f``'s outputs, where it meets the next op.
* Consecutive transposes compose; an identity transpose disappears; a transpose of a
  constant is folded; a transpose that only moves size-1 dims is a reshape (absorbed by a
  following RESHAPE, and finally emitted as RESHAPE); a transpose before a flattening
  RESHAPE into FULLY_CONNECTED with constant weights is folded into the weights.

Every push is decided by a cost rule over transposed elements: it must not add more
inverse-transposed elements than the input transposes it removes, and when the
transposes it leaves on the outputs would make the local total larger, a bounded
look-ahead must see them cancel further down. As a last guard, the pass is undone when
the graph ends with more transposed elements than it started with.

Graph outputs keep their tensor (identity, name, ONNX layout): a moved transpose writes
into the original output tensor, and the op that produced it gets a new tensor.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..ir import Operator, Subgraph, Tensor
from .graphutil import (Namer, Perm, compose_perms, inverse_perm, is_dynamic, is_identity, make_reshape,
                        make_transpose, moves_only_unit_dims, new_const, permute_shape, remap_quantization,
                        transpose_perm, untransposed_like)

# Ops applied element by element (all inputs broadcast to the output): any layout works.
UNARY_OPS = frozenset({
    "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH", "EXP", "LOG", "ABS", "NEG", "SQRT",
    "RSQRT", "SQUARE", "CAST", "HARD_SWISH", "LEAKY_RELU", "ELU", "GELU", "QUANTIZE", "DEQUANTIZE", "FLOOR",
    "CEIL", "ROUND", "SIN", "COS", "SIGN", "LOGICAL_NOT", "ZEROS_LIKE",
})
BINARY_OPS = frozenset({
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "POW", "SQUARED_DIFFERENCE", "PRELU", "FLOOR_DIV",
    "FLOOR_MOD", "EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "LOGICAL_AND",
    "LOGICAL_OR", "SELECT_V2", "ATAN2",
})
REDUCE_OPS = frozenset({"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL"})
# Ops acting along the last axis only.
LAST_AXIS_OPS = frozenset({"SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION"})

_LOOKAHEAD_BUDGET = 64
_FAN_OUT_LIMIT = 16  # ops moved together by one fan-out push


@dataclass(frozen=True)
class Plan:
    """How ``f`` becomes ``g`` when its data inputs are moved back through ``transpose(., P)``.

    ``data_inputs`` live in the permuted layout (broadcasting to the data rank);
    ``out_perms[j]`` is ``Q`` with ``old_output_j = transpose(new_output_j, Q)``;
    ``params`` replace constant parameter inputs (axes, paddings...) by index.
    """

    data_inputs: tuple[int, ...]
    out_perms: tuple[Perm, ...]
    options: dict
    params: dict[int, np.ndarray] = field(default_factory=dict)


Handler = Callable[[Operator, Perm], "Plan | None"]


# -- handlers (pure: they only read the op and return a plan) ---------------------------------------

def _int_param(op: Operator, i: int) -> np.ndarray | None:
    t = op.inputs[i] if i < len(op.inputs) else None
    if t is None or not t.is_const or t.dtype.kind not in "iu":
        return None
    return np.asarray(t.data)


def _norm_axes(values: np.ndarray, rank: int) -> list[int] | None:
    axes = [int(a) + rank if int(a) < 0 else int(a) for a in values.reshape(-1)]
    if any(a < 0 or a >= rank for a in axes):
        return None
    return sorted(set(axes))


def _dropped_axes_perm(perm: Perm, dropped_y: list[int]) -> Perm:
    """Output perm of an op that drops ``dropped_y`` (axes of the permuted input)."""
    rank = len(perm)
    kept_y = [i for i in range(rank) if i not in dropped_y]
    dropped_x = {perm[a] for a in dropped_y}
    kept_x = [i for i in range(rank) if i not in dropped_x]
    return tuple(kept_x.index(perm[i]) for i in kept_y)


def _elementwise(op: Operator, perm: Perm) -> Plan | None:
    rank = len(perm)
    data = tuple(i for i, t in enumerate(op.inputs) if t is not None)
    if any(o.rank != rank for o in op.outputs) or any(op.inputs[i].rank > rank for i in data):
        return None
    return Plan(data, (perm,) * len(op.outputs), dict(op.options))


def _last_axis(op: Operator, perm: Perm) -> Plan | None:
    if perm[-1] != len(perm) - 1:
        return None
    return _elementwise(op, perm)


def _concat(op: Operator, perm: Perm) -> Plan | None:
    rank = len(perm)
    if any(t is None or t.rank != rank for t in op.inputs):
        return None
    axis = int(op.options.get("axis", 0))
    axis = axis + rank if axis < 0 else axis
    return Plan(tuple(range(len(op.inputs))), (perm,), dict(op.options, axis=perm[axis]))


def _reduce(op: Operator, perm: Perm) -> Plan | None:
    raw = _int_param(op, 1)
    if raw is None:
        return None
    axes = _norm_axes(raw, len(perm))
    if axes is None:
        return None
    new_axes = np.asarray(sorted(perm[a] for a in axes), dtype=raw.dtype)
    if raw.ndim == 0 and new_axes.size == 1:
        new_axes = new_axes.reshape(())
    keep = bool(op.options.get("keepDims", False))
    out_perm = perm if keep else _dropped_axes_perm(perm, axes)
    return Plan((0,), (out_perm,), dict(op.options), {1: new_axes})


def _along_axes(op: Operator, perm: Perm) -> Plan | None:
    """Shape-keeping ops along constant axes (input 1): REVERSE_V2, CUMSUM."""
    raw = _int_param(op, 1)
    if raw is None:
        return None
    axes = _norm_axes(raw, len(perm))
    if axes is None or len(axes) != raw.size:
        return None
    new_axes = np.asarray([perm[int(a) % len(perm)] for a in raw.reshape(-1)], dtype=raw.dtype).reshape(raw.shape)
    return Plan((0,), (perm,), dict(op.options), {1: new_axes})


def _arg_reduce(op: Operator, perm: Perm) -> Plan | None:
    raw = _int_param(op, 1)
    if raw is None or raw.size != 1:
        return None
    axes = _norm_axes(raw, len(perm))
    if axes is None:
        return None
    return Plan((0,), (_dropped_axes_perm(perm, axes),), dict(op.options),
                {1: np.asarray(perm[axes[0]], dtype=raw.dtype).reshape(raw.shape)})


def _split(op: Operator, perm: Perm, data: int, axis_input: int) -> Plan | None:
    raw = _int_param(op, axis_input)
    if raw is None or raw.size != 1:
        return None
    axes = _norm_axes(raw, len(perm))
    if axes is None:
        return None
    return Plan((data,), (perm,) * len(op.outputs), dict(op.options),
                {axis_input: np.asarray(perm[axes[0]], dtype=raw.dtype).reshape(raw.shape)})


def _per_axis_params(op: Operator, perm: Perm, indices: tuple[int, ...]) -> Plan | None:
    """Ops whose parameters hold one row per axis (paddings, multiples, slice begin/size)."""
    params = {}
    inv = inverse_perm(perm)
    for i in indices:
        raw = _int_param(op, i)
        if raw is None or raw.ndim < 1 or raw.shape[0] != len(perm):
            return None
        params[i] = raw[list(inv)]
    return Plan((0,), (perm,), dict(op.options), params)


def _strided_slice(op: Operator, perm: Perm) -> Plan | None:
    opts = op.options
    if opts.get("ellipsisMask", 0) or opts.get("newAxisMask", 0) or opts.get("offset", False):
        return None
    rank = len(perm)
    plan = _per_axis_params(op, perm, (1, 2, 3))
    if plan is None:
        return None

    def remap(mask: int) -> int:
        return sum(1 << perm[i] for i in range(rank) if mask >> i & 1)

    shrink = int(opts.get("shrinkAxisMask", 0))
    dropped = [i for i in range(rank) if shrink >> i & 1]
    new_opts = dict(opts, beginMask=remap(int(opts.get("beginMask", 0))),
                    endMask=remap(int(opts.get("endMask", 0))), shrinkAxisMask=remap(shrink))
    return Plan((0,), (_dropped_axes_perm(perm, dropped),), new_opts, plan.params)



# -- reshapes the permutation commutes with ------------------------------------------------------

def _reshape_groups(ys: tuple[int, ...], zs: tuple[int, ...]) -> list[tuple[list[int], list[int]]] | None:
    """Pair the axes of a RESHAPE from ``ys`` to ``zs`` into groups of equal element count.

    Each group is (input axes, output axes): one input axis split into several output axes,
    several input axes merged into one, or a size-1 axis on one side only (dropped/inserted;
    a size-1 axis on both sides at once is paired). Groups are in axis order. Size-1 input
    axes met inside a merge are returned as dropped groups. None when the sizes disagree.
    """
    groups: list[tuple[list[int], list[int]]] = []
    i = j = 0
    while i < len(ys) or j < len(zs):
        unit_y, unit_z = i < len(ys) and ys[i] == 1, j < len(zs) and zs[j] == 1
        if unit_y and unit_z:
            groups.append(([i], [j]))
            i, j = i + 1, j + 1
            continue
        if unit_y:
            groups.append(([i], []))
            i += 1
            continue
        if unit_z:
            groups.append(([], [j]))
            j += 1
            continue
        if i >= len(ys) or j >= len(zs):
            return None
        ya, za, py, pz = [i], [j], ys[i], zs[j]
        i, j = i + 1, j + 1
        while py != pz:
            if py < pz:
                if i >= len(ys):
                    return None
                if ys[i] == 1:
                    groups.append(([i], []))
                else:
                    ya.append(i)
                    py *= ys[i]
                i += 1
            else:
                if j >= len(zs):
                    return None
                za.append(j)
                pz *= zs[j]
                j += 1
        groups.append((ya, za))
    return groups


def reshape_after_transpose(xs: tuple[int, ...], perm: Perm, zs: tuple[int, ...]
                            ) -> tuple[tuple[int, ...], Perm] | None:
    """``(xs2, perm2)`` with ``reshape(transpose(x, perm), zs) == transpose(reshape(x, xs2), perm2)``.

    This holds when every group of axes the RESHAPE merges stays contiguous and in order in
    ``x`` (size-1 axes aside): the RESHAPE then only splits/merges whole axis groups, which
    can be done before the permutation, and the permutation moves the groups instead of the
    axes. Splits never block it. None when the permutation does not commute.
    """
    if len(perm) != len(xs) or math.prod(xs) != math.prod(zs) or 0 in xs:
        return None
    ys = permute_shape(xs, perm)
    groups = _reshape_groups(ys, tuple(zs))
    if groups is None:
        return None
    anchored = []  # (position in x, group index) of groups with input axes and output axes
    for g, (ya, za) in enumerate(groups):
        if not ya or not za:
            continue
        x_axes = [perm[a] for a in ya]
        for lo, hi in zip(x_axes, x_axes[1:]):
            if hi <= lo or any(xs[k] != 1 for k in range(lo + 1, hi)):
                return None
        anchored.append((x_axes[0], g))
    order = [g for _, g in sorted(anchored)]
    # A size-1 output axis with no input axis goes right after the group before it in z.
    for g, (ya, za) in enumerate(groups):
        if ya or not za:
            continue
        prev = next((k for k in range(g - 1, -1, -1) if groups[k][1] and k in order), None)
        order.insert(0 if prev is None else order.index(prev) + 1, g)
    xs2: list[int] = []
    perm2 = [0] * len(zs)
    for g in order:
        for j in groups[g][1]:
            perm2[j] = len(xs2)
            xs2.append(zs[j])
    return tuple(xs2), tuple(perm2)


HANDLERS: dict[str, Handler] = {}
HANDLERS.update({code: _elementwise for code in UNARY_OPS | BINARY_OPS})
HANDLERS.update({code: _reduce for code in REDUCE_OPS})
HANDLERS.update({code: _last_axis for code in LAST_AXIS_OPS})
HANDLERS.update({
    "CONCATENATION": _concat,
    "ARG_MAX": _arg_reduce, "ARG_MIN": _arg_reduce,
    "SPLIT": lambda op, perm: _split(op, perm, data=1, axis_input=0),
    "SPLIT_V": lambda op, perm: _split(op, perm, data=0, axis_input=2),
    "PAD": lambda op, perm: _per_axis_params(op, perm, (1,)),
    "PADV2": lambda op, perm: _per_axis_params(op, perm, (1,)),
    "MIRROR_PAD": lambda op, perm: _per_axis_params(op, perm, (1,)),
    "TILE": lambda op, perm: _per_axis_params(op, perm, (1,)),
    "SLICE": lambda op, perm: _per_axis_params(op, perm, (1, 2)),
    "STRIDED_SLICE": _strided_slice,
    "REVERSE_V2": _along_axes, "CUMSUM": _along_axes,
})


# -- graph state ---------------------------------------------------------------------------------

class _Graph:
    """A subgraph with producer/consumer maps kept up to date by every edit made through it."""

    def __init__(self, sg: Subgraph):
        self.sg = sg
        self.namer = Namer(sg)
        self._producers: dict[int, Operator] = {}
        self._consumers: dict[int, list[Operator]] = defaultdict(list)
        self._alive: set[int] = set()
        self._outputs = {id(t) for t in sg.outputs}
        for op in sg.operators:
            self._register(op)

    # -- maps ------------------------------------------------------------------------------------
    def _register(self, op: Operator) -> None:
        self._alive.add(id(op))
        for t in op.outputs:
            self._producers[id(t)] = op
        for t in op.inputs:
            if t is not None:
                self._consumers[id(t)].append(op)

    def _unregister(self, op: Operator) -> None:
        self._alive.discard(id(op))
        for t in op.outputs:
            if self._producers.get(id(t)) is op:
                del self._producers[id(t)]
        for t in op.inputs:
            if t is not None:
                users = self._consumers[id(t)]
                users.remove(op)

    def alive(self, op: Operator) -> bool:
        return id(op) in self._alive

    def producer(self, t: Tensor) -> Operator | None:
        return self._producers.get(id(t))

    def consumers(self, t: Tensor) -> list[Operator]:
        return self._consumers.get(id(t), [])

    def is_output(self, t: Tensor) -> bool:
        return id(t) in self._outputs

    def unused(self, t: Tensor) -> bool:
        return not self.consumers(t) and not self.is_output(t)

    def transpose_source(self, t: Tensor) -> tuple[Operator, Perm] | None:
        """(TRANSPOSE op, perm) when ``t`` is produced by a constant-perm TRANSPOSE."""
        p = self.producer(t)
        if p is None:
            return None
        perm = transpose_perm(p)
        return None if perm is None else (p, perm)

    # -- edits -----------------------------------------------------------------------------------
    def set_io(self, op: Operator, inputs: list | None = None, outputs: list | None = None) -> None:
        self._unregister(op)
        if inputs is not None:
            op.inputs = inputs
        if outputs is not None:
            op.outputs = outputs
        self._register(op)

    def insert(self, anchor: Operator, ops: list[Operator], after: bool = False) -> None:
        i = self.sg.operators.index(anchor) + (1 if after else 0)
        self.sg.operators[i:i] = ops
        for op in ops:
            self._register(op)

    def remove(self, op: Operator) -> None:
        self._unregister(op)
        self.sg.operators.remove(op)

    def replace_uses(self, old: Tensor, new: Tensor) -> None:
        for op in list(dict.fromkeys(self.consumers(old))):
            self.set_io(op, inputs=[new if t is old else t for t in op.inputs])

    def forward(self, op: Operator, src: Tensor) -> bool:
        """Remove ``op`` whose output equals ``src`` (see graphutil.remove_forwarding_op)."""
        out = op.outputs[0]
        if out.shape != src.shape or out.dtype != src.dtype:
            return False
        if not self.is_output(out):
            self.remove(op)
            self.replace_uses(out, src)
            return True
        producer = self.producer(src)
        if producer is None or src.is_const or self.is_output(src) or any(t is src for t in self.sg.inputs):
            return False
        self.remove(op)
        self.set_io(producer, outputs=[out if t is src else t for t in producer.outputs])
        self.replace_uses(src, out)
        return True

    def drop_if_dead(self, op: Operator) -> None:
        if self.alive(op) and all(self.unused(t) for t in op.outputs):
            self.remove(op)


def transposed_elements(sg: Subgraph) -> int:
    """Total elements moved by TRANSPOSE ops that are not mere reshapes (the cost measure)."""
    total = 0
    for op in sg.operators:
        perm = transpose_perm(op) if op.opcode == "TRANSPOSE" else None
        if op.opcode == "TRANSPOSE" and (perm is None or not moves_only_unit_dims(op.inputs[0].shape, perm)):
            total += op.inputs[0].size
    return total


# -- look-ahead ----------------------------------------------------------------------------------

def _cancels_downstream(g: _Graph, start: list[tuple[Tensor, Perm]], merges: bool = False) -> bool:
    """Whether transposes placed on ``start`` tensors would meet a cancelling op downstream.

    ``(t, P)`` means ``t`` would become ``transpose(t', P)``. Following layout-agnostic ops
    (with their handlers' output perms), we look for a TRANSPOSE composing to a reshape, a
    RESHAPE absorbing a reshape-like transpose, or a FULLY_CONNECTED absorbing it. With
    ``merges``, two of the followed transposes reaching one op with the same perm (where they
    would become one) counts too.
    """
    frontier = [(t, p) for t, p in start if not is_identity(p)]
    budget = _LOOKAHEAD_BUDGET
    reached: dict[int, tuple[int, Perm]] = {}
    while frontier and budget > 0:
        t, perm = frontier.pop()
        src_shape = permute_shape(t.shape, inverse_perm(perm))
        for op in g.consumers(t):
            budget -= 1
            if merges:
                first = reached.setdefault(id(op), (id(t), perm))
                if first[0] != id(t) and first[1] == perm and op.opcode in HANDLERS:
                    return True
            if op.opcode == "TRANSPOSE":
                second = transpose_perm(op)
                if second is not None and op.inputs[0] is t and \
                        moves_only_unit_dims(src_shape, compose_perms(perm, second)):
                    return True
                continue
            if op.opcode == "RESHAPE" and op.inputs[0] is t:
                if moves_only_unit_dims(src_shape, perm) or _fc_absorbs(g, op, perm):
                    return True
                continue
            handler = HANDLERS.get(op.opcode)
            plan = handler(op, perm) if handler is not None else None
            if plan is None or any(x is t for k, x in enumerate(op.inputs) if k not in plan.data_inputs):
                continue
            frontier.extend((o, q) for o, q in zip(op.outputs, plan.out_perms) if not is_identity(q))
    return False


def _fc_absorbs(g: _Graph, reshape: Operator, perm: Perm) -> bool:
    """A flattening RESHAPE feeding only FULLY_CONNECTED ops with constant weights."""
    out = reshape.outputs[0]
    users = g.consumers(out)
    return bool(users) and perm[0] == 0 and out.rank == 2 and not g.is_output(out) and all(
        u.opcode == "FULLY_CONNECTED" and u.inputs[0] is out and u.inputs[1] is not None and u.inputs[1].is_const
        and u.inputs[1] is not out for u in users)


# -- rewrites ------------------------------------------------------------------------------------

@dataclass
class _Move:
    """A planned push of ``transpose(., perm)`` through one op, with its cost terms."""

    plan: Plan
    actions: dict[int, tuple]
    unwrapped: dict[int, Operator]
    added: int      # elements of inverse transposes inserted on other inputs
    removed: int    # elements of input transposes that die
    out_cost: int   # elements of the transposes left on the outputs


def _plan_move(g: _Graph, op: Operator, perm: Perm) -> _Move | None:
    handler = HANDLERS.get(op.opcode)
    plan = handler(op, perm) if handler is not None else None
    if plan is None:
        return None
    rank = len(perm)
    inv = inverse_perm(perm)
    actions: dict[int, tuple] = {}
    unwrapped: dict[int, Operator] = {}
    added = 0
    for i in plan.data_inputs:
        t = op.inputs[i]
        if t is None:
            continue
        if t.rank > rank:
            return None
        src = g.transpose_source(t)
        padded = (1,) * (rank - t.rank) + t.shape
        if t.is_const:
            if t.quantization is not None and t.rank != rank and np.asarray(t.quantization.scale).size > 1:
                return None
            actions[i] = ("const",)
        elif src is not None and src[1] == perm:
            actions[i] = ("unwrap", src[0].inputs[0])
            unwrapped[id(src[0])] = src[0]
        elif moves_only_unit_dims(padded, inv):
            if is_dynamic(t):
                return None
            actions[i] = ("reshape", permute_shape(padded, inv))
        else:
            if t.rank != rank and is_dynamic(t):
                return None
            actions[i] = ("transpose",)
            added += t.size
    if not unwrapped:
        return None
    removed = sum(tr.outputs[0].size for tr in unwrapped.values()
                  if not g.is_output(tr.outputs[0]) and all(c is op for c in g.consumers(tr.outputs[0])))
    out_cost = 0
    for o, q in zip(op.outputs, plan.out_perms):
        if not is_identity(q) and not moves_only_unit_dims(permute_shape(o.shape, inverse_perm(q)), q):
            out_cost += o.size
    return _Move(plan, actions, unwrapped, added, removed, out_cost)


def _push(g: _Graph, op: Operator, perm: Perm) -> bool:
    """Move ``transpose(., perm)`` from ``op``'s data inputs to its outputs, if the cost allows."""
    move = _plan_move(g, op, perm)
    if move is None or move.added > move.removed:
        return False
    if move.added + move.out_cost > move.removed and \
            not _cancels_downstream(g, list(zip(op.outputs, move.plan.out_perms))):
        return False
    _do_move(g, op, perm, move)
    return True


def _do_move(g: _Graph, op: Operator, perm: Perm, move: _Move) -> None:
    _apply(g, op, perm, move.plan, move.actions)
    for tr in move.unwrapped.values():
        g.drop_if_dead(tr)


def _push_fan_out(g: _Graph, tr: Operator) -> bool:
    """Push a TRANSPOSE read by several ops through all of them at once.

    One op at a time, each push would leave the transpose alive for the others (a cost), so
    none happens. The group moved together is closed: the users of the transposes, and the
    other same-perm transposes those users read (with their users), so every transpose in it
    dies. Allowed when no inverse transpose is needed, the transposes left on the outputs
    hold no more elements than those removed, and (unless strictly fewer) the copies meet
    again downstream (or cancel), as after a SPLIT whose parts are recombined.
    """
    perm = transpose_perm(tr)
    if perm is None or len(g.consumers(tr.outputs[0])) < 2 or g.is_output(tr.outputs[0]):
        return False
    transposes: dict[int, Operator] = {id(tr): tr}
    users: dict[int, Operator] = {}
    pending = [tr]
    while pending:
        if len(transposes) + len(users) > _FAN_OUT_LIMIT:
            return False
        t = pending.pop().outputs[0]
        if g.is_output(t):
            return False
        for op in g.consumers(t):
            if id(op) in users:
                continue
            users[id(op)] = op
            for x in op.inputs:
                src = g.transpose_source(x) if x is not None else None
                if src is not None and src[1] == perm and id(src[0]) not in transposes:
                    transposes[id(src[0])] = src[0]
                    pending.append(src[0])
    moves = []
    for op in users.values():
        move = _plan_move(g, op, perm)
        if move is None or move.added or any(
                i not in move.actions and (src := g.transpose_source(x)) is not None and id(src[0]) in transposes
                for i, x in enumerate(op.inputs) if x is not None):
            return False
        moves.append(move)
    removed = sum(t.outputs[0].size for t in transposes.values())
    out_cost = sum(m.out_cost for m in moves)
    if out_cost > removed:
        return False
    outs = [(o, q) for op, m in zip(users.values(), moves) for o, q in zip(op.outputs, m.plan.out_perms)]
    if out_cost == removed and not _cancels_downstream(g, outs, merges=True):
        return False
    for op, move in zip(list(users.values()), moves):
        _do_move(g, op, perm, move)
    for t in transposes.values():
        g.drop_if_dead(t)
    return True


def _apply(g: _Graph, op: Operator, perm: Perm, plan: Plan, actions: dict[int, tuple]) -> None:
    namer, rank, inv = g.namer, len(perm), inverse_perm(perm)
    inputs = list(op.inputs)
    before: list[Operator] = []
    after: list[Operator] = []
    for i, action in actions.items():
        t = inputs[i]
        kind = action[0]
        if kind == "const":
            data = np.transpose(t.data.reshape((1,) * (rank - t.rank) + t.shape), inv)
            lead = rank - t.rank
            if lead and all(d == 1 for d in data.shape[:lead]):
                data = data.reshape(data.shape[lead:])  # keep the constant's original rank
            q = remap_quantization(t.quantization, perm) if t.rank == rank else t.quantization
            inputs[i] = new_const(namer(f"{t.name}/permuted"), data, t.dtype, q)
        elif kind == "unwrap":
            inputs[i] = action[1]
        elif kind == "reshape":
            r = make_reshape(namer, t, action[1], origin=op.origin)
            before.append(r)
            inputs[i] = r.outputs[0]
        else:
            src = t
            if t.rank != rank:
                r = make_reshape(namer, t, (1,) * (rank - t.rank) + t.shape, origin=op.origin)
                before.append(r)
                src = r.outputs[0]
            tr = make_transpose(namer, src, inv, origin=op.origin)
            before.append(tr)
            inputs[i] = tr.outputs[0]
    for i, value in plan.params.items():
        old = op.inputs[i]
        inputs[i] = new_const(namer(f"{old.name}/permuted"), value, old.dtype)
    outputs = []
    for o, q in zip(op.outputs, plan.out_perms):
        if is_identity(q):
            outputs.append(o)
            continue
        new = untransposed_like(o, q, namer(f"{o.name}/permuted"))
        if moves_only_unit_dims(new.shape, q) and not is_dynamic(o):
            after.append(make_reshape(namer, new, o.shape, out=o, origin=op.origin))
        else:
            after.append(make_transpose(namer, new, q, out=o, origin=op.origin))
        outputs.append(new)
    op.options = plan.options
    g.set_io(op, inputs, outputs)
    g.insert(op, before)
    g.insert(op, after, after=True)


def _rewrite_transpose(g: _Graph, op: Operator) -> bool:
    """Fold, drop, or compose a TRANSPOSE with the one producing its input."""
    perm = transpose_perm(op)
    if perm is None:
        return False
    x, out = op.inputs[0], op.outputs[0]
    if x.is_const and not g.is_output(out):
        folded = new_const(g.namer(f"{out.name}/folded"), np.transpose(x.data, perm), out.dtype, out.quantization)
        g.remove(op)
        g.replace_uses(out, folded)
        return True
    if is_identity(perm):
        return g.forward(op, x)
    src = g.transpose_source(x)
    if src is not None:
        inner, first = src
        g.set_io(op, inputs=[inner.inputs[0], new_const(g.namer(f"{out.name}/perm"),
                                                        np.asarray(compose_perms(first, perm), np.int32))])
        g.drop_if_dead(inner)
        return True
    return False


def _absorb_into_reshape(g: _Graph, op: Operator) -> bool:
    """RESHAPE(transpose(x, P)) == RESHAPE(x) when P only moves size-1 dims."""
    src = g.transpose_source(op.inputs[0])
    if src is None or is_dynamic(op.outputs[0]):
        return False
    tr, perm = src
    if not moves_only_unit_dims(tr.inputs[0].shape, perm):
        return False
    g.set_io(op, inputs=[tr.inputs[0], *op.inputs[1:]])
    g.drop_if_dead(tr)
    return True


def _absorb_into_fully_connected(g: _Graph, op: Operator) -> bool:
    """FULLY_CONNECTED(RESHAPE(transpose(z, P))) with constant weights: permute the weight columns.

    With P[0] == 0 (batch kept) and the RESHAPE flattening everything after the batch, input
    column j reads z's flat element m[j]; so FC(reshape(z), W') with W'[:, m] = W is equal.
    """
    x, w = op.inputs[0], op.inputs[1]
    reshape = g.producer(x)
    if reshape is None or reshape.opcode != "RESHAPE" or w is None or not w.is_const or w.rank != 2:
        return False
    src = g.transpose_source(reshape.inputs[0])
    if src is None:
        return False
    tr, perm = src
    z = tr.inputs[0]
    k = w.shape[1]
    if perm[0] != 0 or x.rank != 2 or x.shape[1] != k or z.shape[0] != x.shape[0] or is_dynamic(x) \
            or z.size != x.size or any(t is x for t in g.sg.outputs):
        return False
    inner = tuple(p - 1 for p in perm[1:])
    m = np.transpose(np.arange(k).reshape(z.shape[1:]), inner).reshape(-1)
    weights = np.empty_like(w.data)
    weights[:, m] = w.data
    flat = make_reshape(g.namer, z, x.shape, origin=op.origin)
    g.insert(op, [flat])
    g.set_io(op, inputs=[flat.outputs[0], new_const(g.namer(f"{w.name}/permuted"), weights, w.dtype,
                                                    w.quantization), *op.inputs[2:]])
    g.drop_if_dead(reshape)
    g.drop_if_dead(tr)
    return True


def _per_axis_quantized(t: Tensor) -> bool:
    return t.quantization is not None and np.asarray(t.quantization.scale).size > 1


def _movable_reshape(g: _Graph, reshape: Operator) -> bool:
    """A static RESHAPE whose tensors carry no per-axis quantization (whose axis would move)."""
    x, out = reshape.inputs[0], reshape.outputs[0]
    return not (is_dynamic(x) or is_dynamic(out) or _per_axis_quantized(x) or _per_axis_quantized(out))


def _sink_through_reshape(g: _Graph, op: Operator) -> bool:
    """RESHAPE(transpose(x, P)) -> transpose(RESHAPE'(x), P') when P commutes with the reshape.

    The transpose (which must have no other user) moves below the RESHAPE with the same
    number of elements, where it can compose and cancel with the transposes further down:
    the layout transposes around a channel shuffle, or a flatten followed by a transpose.
    """
    src = g.transpose_source(op.inputs[0])
    if src is None or not _movable_reshape(g, op):
        return False
    tr, perm = src
    x, mid, out = tr.inputs[0], tr.outputs[0], op.outputs[0]
    if g.is_output(mid) or any(c is not op for c in g.consumers(mid)) or is_dynamic(x) or _per_axis_quantized(x):
        return False
    plan = reshape_after_transpose(x.shape, perm, out.shape)
    if plan is None:
        return False
    xs2, perm2 = plan
    if xs2 == x.shape:  # the reshape only renamed the permuted axes: one transpose does both
        g.insert(op, [make_transpose(g.namer, x, perm2, out=out, origin=op.origin)])
        g.remove(op)
    else:
        new = Tensor(g.namer(f"{out.name}/permuted"), xs2, out.dtype, quantization=out.quantization)
        g.set_io(op, inputs=[x, new_const(g.namer(f"{new.name}/shape"), np.asarray(xs2, np.int32))],
                 outputs=[new])
        op.options = {}
        g.insert(op, [make_transpose(g.namer, new, perm2, out=out, origin=op.origin)], after=True)
    g.drop_if_dead(tr)
    return True


def _hoist_above_reshape(g: _Graph, op: Operator) -> bool:
    """transpose(RESHAPE(transpose(v, P)), Q) -> RESHAPE'(transpose(transpose(v, P), R)).

    The mirror image of :func:`_sink_through_reshape`, used when the first transpose cannot
    sink (its permutation splits a merged group, as in a channel shuffle): the second one
    moves above the RESHAPE, where the two compose into one transpose.
    """
    perm = transpose_perm(op)
    reshape = g.producer(op.inputs[0]) if perm is not None else None
    if reshape is None or reshape.opcode != "RESHAPE" or not reshape.inputs or reshape.inputs[0] is None:
        return False
    mid = reshape.outputs[0]
    v, w = reshape.inputs[0], op.outputs[0]
    if g.transpose_source(v) is None or not _movable_reshape(g, reshape) or is_dynamic(w) \
            or g.is_output(mid) or any(c is not op for c in g.consumers(mid)):
        return False
    # w = transpose(z, Q) means z = transpose(w, Q^-1); v = reshape(z): sink Q^-1 through it.
    plan = reshape_after_transpose(w.shape, inverse_perm(perm), v.shape)
    if plan is None:
        return False
    ws2, back = plan  # v == transpose(reshape(w, ws2), back)
    tr = make_transpose(g.namer, v, inverse_perm(back), origin=op.origin)
    g.insert(reshape, [tr])
    g.set_io(reshape, inputs=[tr.outputs[0], new_const(g.namer(f"{w.name}/shape"), np.asarray(w.shape, np.int32))],
             outputs=[w])
    reshape.options = {}
    g.remove(op)
    return True


def _rewrite(g: _Graph, op: Operator) -> bool:
    if op.opcode == "TRANSPOSE":
        return _rewrite_transpose(g, op) or _hoist_above_reshape(g, op) or _push_fan_out(g, op)
    if op.opcode == "RESHAPE" and op.inputs and op.inputs[0] is not None:
        return _absorb_into_reshape(g, op) or _sink_through_reshape(g, op)
    if op.opcode == "FULLY_CONNECTED" and len(op.inputs) >= 2:
        return _absorb_into_fully_connected(g, op)
    if op.opcode not in HANDLERS:
        return False
    tried: list[Perm] = []
    for t in op.inputs:
        src = g.transpose_source(t) if t is not None else None
        if src is None or src[1] in tried:
            continue
        tried.append(src[1])
        if _push(g, op, src[1]):
            return True
    return False


def _finalize_reshape_like(g: _Graph) -> bool:
    """Emit transposes that only move size-1 dims as RESHAPE (no data movement)."""
    changed = False
    for op in list(g.sg.operators):
        perm = transpose_perm(op)
        if perm is None or is_identity(perm) or is_dynamic(op.outputs[0]) or is_dynamic(op.inputs[0]):
            continue
        if moves_only_unit_dims(op.inputs[0].shape, perm):
            op.opcode = "RESHAPE"
            op.options = {}
            g.set_io(op, inputs=[op.inputs[0], new_const(g.namer(f"{op.outputs[0].name}/shape"),
                                                         np.asarray(op.outputs[0].shape, np.int32))])
            changed = True
    return changed


def optimize_layout(sg: Subgraph, max_sweeps: int = 100) -> bool:
    """Sink and cancel transposes in ``sg`` in place; return True when the graph changed."""
    snapshot = ([(op, list(op.inputs), list(op.outputs), dict(op.options), op.opcode) for op in sg.operators],
                list(sg.operators), list(sg.outputs))
    cost_before = transposed_elements(sg)
    g = _Graph(sg)
    changed = False
    for _ in range(max_sweeps):
        progress = False
        for op in list(sg.operators):
            if g.alive(op) and _rewrite(g, op):
                progress = True
        if not progress:
            break
        changed = True
    changed |= _finalize_reshape_like(g)
    if transposed_elements(sg) > cost_before:
        records, operators, outputs = snapshot
        for op, ins, outs, opts, code in records:
            op.inputs, op.outputs, op.options, op.opcode = ins, outs, opts, code
        sg.operators, sg.outputs = operators, outputs
        return False
    return changed
